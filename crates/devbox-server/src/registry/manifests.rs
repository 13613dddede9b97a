//! `/v2/<name>/manifests/<reference>`: GET, HEAD, PUT, DELETE.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use devbox_image::distribution::Reference;
use futures::StreamExt;

use super::error::{SpecError, SpecResult};
use super::{Ctx, located, set};
use crate::auth::Caller;
use crate::ops;

/// Largest manifest body read, as the image store accepts it.
const MAX_MANIFEST: usize = 4 << 20;

pub async fn get(req: &Ctx, caller: &Caller, name: &str, reference: &str) -> SpecResult<Response> {
    let reference = Reference::parse(reference)?;
    let m = ops::registry::pull::manifest(&req.state, caller, name, &reference).await?;
    let len = m.content.len();
    let mut resp = if req.method == axum::http::Method::HEAD {
        Body::empty().into_response()
    } else {
        Body::from(m.content).into_response()
    };
    set(&mut resp, header::CONTENT_TYPE, &m.media_type);
    set(&mut resp, header::CONTENT_LENGTH, &len.to_string());
    set(&mut resp, header::ETAG, &format!("\"{}\"", m.digest));
    set(
        &mut resp,
        header::HeaderName::from_static("docker-content-digest"),
        m.digest.as_str(),
    );
    Ok(resp)
}

/// Reads a manifest body, refusing more than the image store would take
/// before holding it all.
async fn read_body(body: Body) -> SpecResult<bytes::Bytes> {
    let mut stream = body.into_data_stream();
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            SpecError::bad_request(
                "MANIFEST_INVALID",
                format!("the manifest upload broke off: {e}"),
            )
        })?;
        if out.len() + chunk.len() > MAX_MANIFEST {
            return Err(SpecError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "SIZE_INVALID",
                format!("a manifest may be at most {MAX_MANIFEST} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

pub async fn put(
    req: &Ctx,
    caller: &Caller,
    name: &str,
    reference: &str,
    body: Body,
) -> SpecResult<Response> {
    let reference = Reference::parse(reference)?;
    let body = read_body(body).await?;
    let content_type = req.header(header::CONTENT_TYPE);
    let pushed =
        ops::registry::push::manifest(&req.state, caller, name, &reference, content_type, body)
            .await?;
    let mut resp = located(
        StatusCode::CREATED,
        &format!("/v2/{name}/manifests/{}", pushed.digest),
    );
    set(
        &mut resp,
        header::HeaderName::from_static("docker-content-digest"),
        pushed.digest.as_str(),
    );
    if let Some(subject) = &pushed.subject {
        set(
            &mut resp,
            header::HeaderName::from_static("oci-subject"),
            subject.as_str(),
        );
    }
    Ok(resp)
}

pub async fn delete(
    req: &Ctx,
    caller: &Caller,
    name: &str,
    reference: &str,
) -> SpecResult<Response> {
    let reference = Reference::parse(reference)?;
    ops::registry::delete::manifest(&req.state, caller, name, &reference).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
