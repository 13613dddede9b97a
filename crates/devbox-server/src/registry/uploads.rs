//! `/v2/<name>/blobs/uploads/`: starting an upload (plain, monolithic with
//! `?digest=`, or a mount with `?mount=&from=`), then for one session
//! `PATCH` (a chunk, `Content-Range` optional), `PUT ?digest=` (the last
//! chunk, and the check), `GET` (where it stands) and `DELETE` (cancel).

use axum::body::Body;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use devbox_image::distribution::{UploadStatus, parse_digest};
use devbox_model::Digest;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::error::{SpecError, SpecResult};
use super::{Ctx, located, set};
use crate::auth::Caller;
use crate::ops;

const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");

/// The request body as the upload sessions read it.
fn stream(body: Body) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    body.into_data_stream()
        .map_err(std::io::Error::other)
        .boxed()
}

/// The `Range` an upload answers with: the bytes it holds, `0-0` for none
/// (as registries write it).
fn held(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// `202 Accepted` (or `204 No Content` for a status) naming the session.
fn session_answer(status: StatusCode, name: &str, upload: &UploadStatus) -> Response {
    let mut resp = located(status, &format!("/v2/{name}/blobs/uploads/{}", upload.id));
    set(&mut resp, header::RANGE, &held(upload.size));
    set(&mut resp, UPLOAD_UUID, &upload.id);
    set(&mut resp, header::CONTENT_LENGTH, "0");
    resp
}

/// `201 Created` for a stored blob.
fn created(name: &str, digest: &Digest) -> Response {
    let mut resp = located(StatusCode::CREATED, &format!("/v2/{name}/blobs/{digest}"));
    set(&mut resp, CONTENT_DIGEST, digest.as_str());
    set(&mut resp, header::CONTENT_LENGTH, "0");
    resp
}

/// Refuses a body the server would refuse anyway before reading it.
fn check_length(req: &Ctx) -> SpecResult<()> {
    let max = req.state.registry.uploads.limits().max_blob_size;
    if let Some(n) = req
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok())
        && n > max
    {
        return Err(SpecError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("a blob may be at most {max} bytes (a server setting); this one is {n}"),
        ));
    }
    Ok(())
}

/// The `?digest=` of a request that completes an upload.
fn digest_param(req: &Ctx) -> SpecResult<Digest> {
    let raw = req.param("digest").ok_or_else(|| {
        SpecError::bad_request(
            "DIGEST_INVALID",
            "completing an upload needs ?digest=sha256:<hex> naming the blob",
        )
    })?;
    Ok(parse_digest(&raw)?)
}

/// Where a chunk's `Content-Range: <start>-<end>` says it starts; the
/// body's `Content-Length`, when given, must agree with it.
fn chunk_start(req: &Ctx) -> SpecResult<Option<u64>> {
    let Some(range) = req.header(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        SpecError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!("invalid Content-Range {range:?}: expected <start>-<end>"),
        )
    };
    let spec = range
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches([' ', '=']);
    let spec = spec.split('/').next().unwrap_or(spec);
    let (start, end) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end: u64 = end.trim().parse().map_err(|_| bad())?;
    if end < start {
        return Err(bad());
    }
    if let Some(n) = req
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok())
        && n != end - start + 1
    {
        return Err(SpecError::bad_request(
            "SIZE_INVALID",
            format!(
                "Content-Range {range} is {} bytes but Content-Length is {n}",
                end - start + 1
            ),
        ));
    }
    Ok(Some(start))
}

pub async fn start(req: &Ctx, caller: &Caller, name: &str, body: Body) -> SpecResult<Response> {
    let state = &req.state;
    if let Some(mount) = req.param("mount") {
        let digest = parse_digest(&mount)?;
        let from = req.param("from");
        if ops::registry::push::mount(state, caller, name, &digest, from.as_deref())
            .await?
            .is_some()
        {
            return Ok(created(name, &digest));
        }
        // Not there to mount: the client uploads it in this session.
        let upload = ops::registry::push::start_upload(state, caller, name).await?;
        return Ok(session_answer(StatusCode::ACCEPTED, name, &upload));
    }
    if req.param("digest").is_some() {
        let digest = digest_param(req)?;
        check_length(req)?;
        let upload = ops::registry::push::start_upload(state, caller, name).await?;
        ops::registry::push::finish(state, caller, name, &upload.id, &digest, stream(body)).await?;
        return Ok(created(name, &digest));
    }
    let upload = ops::registry::push::start_upload(state, caller, name).await?;
    Ok(session_answer(StatusCode::ACCEPTED, name, &upload))
}

pub async fn status(req: &Ctx, caller: &Caller, name: &str, id: &str) -> SpecResult<Response> {
    let upload = ops::registry::push::upload_status(&req.state, caller, name, id).await?;
    Ok(session_answer(StatusCode::NO_CONTENT, name, &upload))
}

pub async fn append(
    req: &Ctx,
    caller: &Caller,
    name: &str,
    id: &str,
    body: Body,
) -> SpecResult<Response> {
    check_length(req)?;
    let start = chunk_start(req)?;
    let upload =
        ops::registry::push::append(&req.state, caller, name, id, start, stream(body)).await?;
    Ok(session_answer(StatusCode::ACCEPTED, name, &upload))
}

pub async fn finish(
    req: &Ctx,
    caller: &Caller,
    name: &str,
    id: &str,
    body: Body,
) -> SpecResult<Response> {
    let digest = digest_param(req)?;
    check_length(req)?;
    if let Some(start) = chunk_start(req)? {
        // A last chunk with a range must continue the upload.
        let at = ops::registry::push::upload_status(&req.state, caller, name, id).await?;
        if start != at.size {
            return Err(
                devbox_image::distribution::DistributionError::RangeInvalid {
                    start,
                    size: at.size,
                }
                .into(),
            );
        }
    }
    ops::registry::push::finish(&req.state, caller, name, id, &digest, stream(body)).await?;
    Ok(created(name, &digest))
}

pub async fn cancel(req: &Ctx, caller: &Caller, name: &str, id: &str) -> SpecResult<Response> {
    ops::registry::push::cancel(&req.state, caller, name, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
