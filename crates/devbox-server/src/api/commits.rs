//! Commit routes: commit, history, rollback, diff, and garbage collection.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use devbox_model::api::{
    Commit, CommitRequest, Devbox, Diff, ErrorBody, GcReport, GcRequest, RollbackRequest, StopQuery,
};

use super::devboxes::{grace, view};
use super::error::ApiResult;
use super::{ApiJson, convert, devbox_name};
use crate::auth::Caller;
use crate::ops;
use crate::state::AppState;

#[utoipa::path(post, path = "/api/v1/devboxes/{name}/commits", params(("name" = String, Path)), request_body = CommitRequest,
    responses((status = 201, body = Commit), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn commit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<CommitRequest>,
) -> ApiResult<(StatusCode, Json<Commit>)> {
    let name = devbox_name(&name)?;
    let c = ops::commit::commit(&state, &caller, &name, req).await?;
    let id = c.id.clone();
    Ok((
        StatusCode::CREATED,
        Json(convert::commit(c, &name, Some(&id))),
    ))
}

#[utoipa::path(get, path = "/api/v1/devboxes/{name}/commits", params(("name" = String, Path)),
    responses((status = 200, body = [Commit]), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Commit>>> {
    let name = devbox_name(&name)?;
    let (commits, cs) = ops::history::history(&state, &caller, &name).await?;
    Ok(Json(
        commits
            .into_iter()
            .map(|c| convert::commit(c, &name, cs.head.as_deref()))
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/devboxes/{name}/rollback", params(("name" = String, Path), StopQuery), request_body = RollbackRequest,
    responses((status = 200, body = Devbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rollback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: Result<Query<StopQuery>, axum::extract::rejection::QueryRejection>,
    ApiJson(req): ApiJson<RollbackRequest>,
) -> ApiResult<Json<Devbox>> {
    let name = devbox_name(&name)?;
    let d = ops::rollback::rollback(&state, &caller, &name, &req.commit, grace(query)?).await?;
    Ok(Json(view(&state, d).await?))
}

#[utoipa::path(get, path = "/api/v1/devboxes/{name}/diff", params(("name" = String, Path)),
    responses((status = 200, body = Diff), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn diff(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Diff>> {
    let name = devbox_name(&name)?;
    Ok(Json(ops::diff::diff(&state, &caller, &name).await?))
}

#[utoipa::path(post, path = "/api/v1/gc", request_body = GcRequest,
    responses((status = 200, body = GcReport)), security(("bearer" = [])))]
pub async fn gc(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<GcRequest>,
) -> ApiResult<Json<GcReport>> {
    Ok(Json(ops::gc::gc(&state, &caller, req.dry_run).await?))
}
