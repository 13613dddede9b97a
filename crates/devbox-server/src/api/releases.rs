//! Release routes: publish a devbox's commit as a version, list and remove
//! its releases.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use devbox_model::api::{CreateRelease, ErrorBody, Release};
use devbox_store::ReleaseRecord;

use super::error::ApiResult;
use super::{ApiJson, devbox_name};
use crate::auth::Caller;
use crate::ops;
use crate::state::{AppState, repository};

/// A release as the API shows it.
fn view(r: ReleaseRecord, devbox: &devbox_model::DevboxName) -> Release {
    Release {
        reference: format!("{}:{}", repository(devbox), r.version),
        version: r.version,
        commit: r.commit,
        digest: r.digest,
        notes: r.notes,
        created_at: r.created_at,
    }
}

#[utoipa::path(post, path = "/api/v1/devboxes/{name}/releases", params(("name" = String, Path)), request_body = CreateRelease,
    responses((status = 201, body = Release), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<CreateRelease>,
) -> ApiResult<(StatusCode, Json<Release>)> {
    let name = devbox_name(&name)?;
    let r = ops::release::release(&state, &caller, &name, req).await?;
    Ok((StatusCode::CREATED, Json(view(r, &name))))
}

#[utoipa::path(get, path = "/api/v1/devboxes/{name}/releases", params(("name" = String, Path)),
    responses((status = 200, body = [Release]), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Release>>> {
    let name = devbox_name(&name)?;
    let list = ops::release::list(&state, &caller, &name).await?;
    Ok(Json(list.into_iter().map(|r| view(r, &name)).collect()))
}

#[utoipa::path(delete, path = "/api/v1/devboxes/{name}/releases/{version}",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let name = devbox_name(&name)?;
    ops::release::delete(&state, &caller, &name, &version).await?;
    Ok(StatusCode::NO_CONTENT)
}
