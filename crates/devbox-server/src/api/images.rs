//! Image routes: list, show, delete, import (upload) and pull, the last two
//! answering with a newline-delimited JSON stream of progress events.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use devbox_image::Origin;
use devbox_model::ImageRef;
use devbox_model::api::{
    ErrorBody, ErrorCode, ErrorDetail, Image, ImportQuery, ProgressEvent, PullRequest,
};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::ApiJson;
use super::error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::ops;
use crate::state::AppState;

fn image_ref(raw: &str) -> ApiResult<ImageRef> {
    Ok(raw.parse()?)
}

#[utoipa::path(get, path = "/api/v1/images", responses((status = 200, body = [Image])), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<Image>>> {
    Ok(Json(ops::images::list(&state, &caller).await?))
}

#[utoipa::path(get, path = "/api/v1/images/{reference}", params(("reference" = String, Path, description = "percent-encoded image reference")),
    responses((status = 200, body = Image), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> ApiResult<Json<Image>> {
    Ok(Json(
        ops::images::show(&state, &caller, &image_ref(&raw)?).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/images/{reference}", params(("reference" = String, Path, description = "percent-encoded image reference")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    // The image store refuses to drop the last name of a manifest a devbox
    // starts from, in the same transaction as the removal, so a create
    // cannot slip in between a check and the removal.
    ops::images::remove(&state, &caller, &image_ref(&raw)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Answers with the events `work` reports, one JSON object per line; the
/// last line is `done` or `error`.
pub(super) fn ndjson_stream<F, Fut>(work: F) -> Response
where
    F: FnOnce(mpsc::UnboundedSender<ProgressEvent>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ApiResult<Image>> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel::<ProgressEvent>();
    let done_tx = tx.clone();
    // The work runs in its own task, so it finishes (and cleans up) even when
    // the client stops reading.
    tokio::spawn(async move {
        let last = match work(tx).await {
            Ok(image) => ProgressEvent::Done { image },
            Err(e) => ProgressEvent::Error {
                error: ErrorDetail {
                    code: e.code,
                    message: e.message,
                },
            },
        };
        let _ = done_tx.send(last);
    });
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        let ev = rx.recv().await?;
        let mut line = serde_json::to_vec(&ev).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, std::convert::Infallible>(line), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// Removes the spooled upload when dropped, whatever path the import took.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes the request body to `file`; returns the bytes written.
///
/// When the disk fills up, the rest of the body is still read (and
/// dropped) before answering: a client still sending would otherwise see
/// its connection break and never read the answer, and the user would get
/// a broken pipe instead of the server's `No space left on device`.
async fn spool_body<W>(file: &mut W, body: Body) -> ApiResult<u64>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    let mut failed: Option<std::io::Error> = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("upload interrupted: {e}")))?;
        if failed.is_some() {
            continue;
        }
        match file.write_all(&chunk).await {
            Ok(()) => size += chunk.len() as u64,
            Err(e) => failed = Some(e),
        }
    }
    if failed.is_none()
        && let Err(e) = file.flush().await
    {
        failed = Some(e);
    }
    match failed {
        None => Ok(size),
        Some(e) => Err(spool_error(e)),
    }
}

fn spool_error(e: std::io::Error) -> ApiError {
    let code = if super::error::is_disk_full(&e) {
        ErrorCode::InsufficientStorage
    } else {
        ErrorCode::Internal
    };
    ApiError::new(
        code,
        format!("the server cannot store the upload: {e}; free space in its data directory"),
    )
}

#[utoipa::path(post, path = "/api/v1/images/import", params(ImportQuery),
    request_body(content = Vec<u8>, content_type = "application/x-tar", description = "an OCI image layout, a docker save archive, or a rootfs tarball (optionally gzip or zstd)"),
    responses((status = 200, content_type = "application/x-ndjson", body = ProgressEvent), (status = 400, body = ErrorBody), (status = 507, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn import(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let reference = image_ref(&q.name)?;
    if reference.digest().is_some() {
        return Err(ApiError::invalid(format!(
            "cannot import under a digest reference {reference}: name a tag"
        )));
    }
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix)
        .map_err(|e| ApiError::internal(format!("cannot get random bytes: {e}")))?;
    let spool = Spool(
        state
            .tmp_dir
            .join(format!("upload-{}", hex::encode(suffix))),
    );
    let mut file = tokio::fs::File::create(&spool.0)
        .await
        .map_err(spool_error)?;
    let size = spool_body(&mut file, body).await?;
    file.sync_all().await.map_err(spool_error)?;
    drop(file);
    if size == 0 {
        return Err(ApiError::invalid(
            "the upload is empty: send an image archive or rootfs tarball",
        ));
    }
    // Errors of the first step (the format) get their own status; later
    // ones end the progress stream.
    let pending = ops::images::begin_import(
        &state,
        &caller,
        &reference,
        &spool.0,
        Origin::new(q.source.as_deref()),
    )
    .await?;
    Ok(ndjson_stream(move |tx| async move {
        let spool = spool;
        let progress = move |ev: ProgressEvent| {
            let _ = tx.send(ev);
        };
        let image = pending.finish(&progress).await;
        drop(spool);
        Ok(image?)
    }))
}

#[utoipa::path(post, path = "/api/v1/images/pull", request_body = PullRequest,
    responses((status = 200, content_type = "application/x-ndjson", body = ProgressEvent), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pull(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<PullRequest>,
) -> ApiResult<Response> {
    // Reaching the registry and fetching the manifest runs before the
    // stream, so an unreachable registry, refused credentials or an unknown
    // manifest get their own status; layer errors end the stream.
    let pending = ops::images::begin_pull(&state, &caller, &req).await?;
    Ok(ndjson_stream(move |tx| async move {
        let progress = move |ev: ProgressEvent| {
            let _ = tx.send(ev);
        };
        Ok(pending.finish(&progress).await?)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_disk_answers_507_after_reading_the_whole_upload() {
        // /dev/full fails every write with ENOSPC, as a full data directory does.
        let mut full = tokio::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .await
            .expect("/dev/full exists on Linux");
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..64)
            .map(|_| Ok(bytes::Bytes::from(vec![7u8; 64 * 1024])))
            .collect();
        let consumed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = consumed.clone();
        let stream = futures::stream::iter(chunks).inspect(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let e = spool_body(&mut full, Body::from_stream(stream))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InsufficientStorage);
        assert_eq!(e.code.http_status(), 507);
        assert!(
            e.message.contains("No space left on device"),
            "{}",
            e.message
        );
        assert_eq!(
            consumed.load(std::sync::atomic::Ordering::Relaxed),
            64,
            "the whole body is read before answering"
        );
    }

    #[tokio::test]
    async fn an_upload_is_spooled_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        let mut file = tokio::fs::File::create(&path).await.unwrap();
        let size = spool_body(&mut file, Body::from(vec![1u8; 300_000]))
            .await
            .unwrap();
        drop(file);
        assert_eq!(size, 300_000);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 300_000);
    }
}
