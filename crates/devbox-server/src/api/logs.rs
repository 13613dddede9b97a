//! The devbox's console log: what its init and startup command wrote.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use devbox_model::api::{ErrorBody, LogsQuery};
use devbox_runtime::LogOptions;
use futures::StreamExt;

use super::devbox_name;
use super::error::ApiResult;
use crate::auth::Caller;
use crate::ops;
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/devboxes/{name}/logs", params(("name" = String, Path), LogsQuery),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let opts = LogOptions {
        follow: q.follow,
        tail: q.tail,
    };
    let stream = ops::logs::logs(&state, &caller, &devbox_name(&name)?, opts).await?;
    // A read error mid-stream ends the response early; the client sees a
    // cut body rather than a second status.
    let body = stream.map(|chunk| chunk.map_err(std::io::Error::other));
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(body),
    )
        .into_response())
}
