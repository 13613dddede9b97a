//! Devbox routes: list, create, show, update, start, stop, restart, delete.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use devbox_model::api::{CreateDevbox, Devbox, ErrorBody, StopQuery, UpdateDevbox};

use super::error::{ApiError, ApiResult};
use super::{ApiJson, convert, devbox_name};
use crate::auth::Caller;
use crate::ops;
use crate::state::AppState;

/// The longest grace a stop may ask for.
const MAX_STOP_TIMEOUT: u64 = 3600;

pub(super) fn grace(
    q: Result<Query<StopQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Duration> {
    let Query(q) = q?;
    match q.timeout {
        None => Ok(ops::STOP_GRACE),
        Some(s) if s <= MAX_STOP_TIMEOUT => Ok(Duration::from_secs(s)),
        Some(s) => Err(ApiError::invalid(format!(
            "timeout {s}s is too long: at most {MAX_STOP_TIMEOUT}s"
        ))),
    }
}

#[utoipa::path(get, path = "/api/v1/devboxes", responses((status = 200, body = [Devbox])), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<Devbox>>> {
    let all = ops::read::list(&state, &caller).await?;
    let mut out = Vec::with_capacity(all.len());
    for d in all {
        out.push(view(&state, d).await?);
    }
    Ok(Json(out))
}

/// A record as the API shows it, with its commit state.
pub(super) async fn view(state: &AppState, d: devbox_store::DevboxRecord) -> ApiResult<Devbox> {
    let cs = state.store.commit_state(&d.id).await?;
    let auto_stop = state.store.auto_stop(&d.id).await?;
    let last_activity = state.activity.seen(&d.id).last;
    let mut out = convert::devbox_with(d, &cs);
    out.auto_stop = auto_stop.map(|w| w.as_secs());
    out.last_activity = last_activity;
    Ok(out)
}

#[utoipa::path(post, path = "/api/v1/devboxes", request_body = CreateDevbox,
    responses((status = 201, body = Devbox), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<CreateDevbox>,
) -> ApiResult<(StatusCode, Json<Devbox>)> {
    let devbox = ops::create::create(&state, &caller, req).await?;
    Ok((StatusCode::CREATED, Json(view(&state, devbox).await?)))
}

#[utoipa::path(get, path = "/api/v1/devboxes/{name}", params(("name" = String, Path)),
    responses((status = 200, body = Devbox), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Devbox>> {
    let devbox = ops::read::get(&state, &caller, &devbox_name(&name)?).await?;
    Ok(Json(view(&state, devbox).await?))
}

#[utoipa::path(patch, path = "/api/v1/devboxes/{name}", params(("name" = String, Path)), request_body = UpdateDevbox,
    responses((status = 200, body = Devbox), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<UpdateDevbox>,
) -> ApiResult<Json<Devbox>> {
    let devbox = ops::update::update(&state, &caller, &devbox_name(&name)?, req).await?;
    Ok(Json(view(&state, devbox).await?))
}

#[utoipa::path(post, path = "/api/v1/devboxes/{name}/start", params(("name" = String, Path)),
    responses((status = 200, body = Devbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn start(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Devbox>> {
    let devbox = ops::start::start(&state, &caller, &devbox_name(&name)?).await?;
    Ok(Json(view(&state, devbox).await?))
}

#[utoipa::path(post, path = "/api/v1/devboxes/{name}/stop", params(("name" = String, Path), StopQuery),
    responses((status = 200, body = Devbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn stop(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: Result<Query<StopQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Devbox>> {
    let devbox = ops::stop::stop(&state, &caller, &devbox_name(&name)?, grace(query)?).await?;
    Ok(Json(view(&state, devbox).await?))
}

#[utoipa::path(post, path = "/api/v1/devboxes/{name}/restart", params(("name" = String, Path), StopQuery),
    responses((status = 200, body = Devbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn restart(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: Result<Query<StopQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Devbox>> {
    let devbox =
        ops::restart::restart(&state, &caller, &devbox_name(&name)?, grace(query)?).await?;
    Ok(Json(view(&state, devbox).await?))
}

#[utoipa::path(delete, path = "/api/v1/devboxes/{name}", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ops::delete::delete(&state, &caller, &devbox_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
