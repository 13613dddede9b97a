//! `POST /api/v1/images/push`: a stored image to another registry, answered
//! with a newline-delimited JSON stream of progress events.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use devbox_model::api::{ErrorBody, ProgressEvent, PushRequest};

use super::ApiJson;
use super::error::ApiResult;
use super::images::ndjson_stream;
use crate::auth::Caller;
use crate::ops;
use crate::state::AppState;

#[utoipa::path(post, path = "/api/v1/images/push", request_body = PushRequest,
    responses((status = 200, content_type = "application/x-ndjson", body = ProgressEvent), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn push(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<PushRequest>,
) -> ApiResult<Response> {
    // Finding the image and reaching the registry run before the stream,
    // so a missing image, an unreachable registry or refused credentials
    // get their own status; upload errors end the stream.
    let pending = ops::push::begin(&state, &caller, &req).await?;
    Ok(ndjson_stream(move |tx| async move {
        let progress = move |ev: ProgressEvent| {
            let _ = tx.send(ev);
        };
        Ok(pending.finish(&progress).await?)
    }))
}
