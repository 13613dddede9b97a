//! Image routes: list, show, delete, import (upload) and pull, the last two
//! answering with a newline-delimited JSON stream of progress events.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use devbox_model::ImageRef;
use devbox_model::api::{ErrorBody, ErrorDetail, Image, ImportQuery, ProgressEvent, PullRequest};
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
    ops::images::remove(&state, &caller, &image_ref(&raw)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Answers with the events `work` reports, one JSON object per line; the
/// last line is `done` or `error`.
fn ndjson_stream<F, Fut>(work: F) -> Response
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

#[utoipa::path(post, path = "/api/v1/images/import", params(ImportQuery),
    request_body(content = Vec<u8>, content_type = "application/x-tar", description = "an OCI image layout, a docker save archive, or a rootfs tarball (optionally gzip or zstd)"),
    responses((status = 200, content_type = "application/x-ndjson", body = ProgressEvent), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn import(
    State(state): State<AppState>,
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
    let mut file = tokio::fs::File::create(&spool.0).await?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("upload interrupted: {e}")))?;
        size += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.sync_all().await?;
    drop(file);
    if size == 0 {
        return Err(ApiError::invalid(
            "the upload is empty: send an image archive or rootfs tarball",
        ));
    }
    Ok(ndjson_stream(move |tx| async move {
        let spool = spool;
        let progress = move |ev: ProgressEvent| {
            let _ = tx.send(ev);
        };
        Ok(state.images.import(&reference, &spool.0, &progress).await?)
    }))
}

#[utoipa::path(post, path = "/api/v1/images/pull", request_body = PullRequest,
    responses((status = 200, content_type = "application/x-ndjson", body = ProgressEvent), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pull(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PullRequest>,
) -> ApiResult<Response> {
    Ok(ndjson_stream(move |tx| async move {
        let progress = move |ev: ProgressEvent| {
            let _ = tx.send(ev);
        };
        Ok(state.images.pull(&req, &progress).await?)
    }))
}
