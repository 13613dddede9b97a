//! Devbox routes: list, create, show, start, stop, restart, delete.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use devbox_model::Operation;
use devbox_model::api::{CreateDevbox, Devbox, ErrorBody};

use super::{ApiJson, devbox_name, view};
use crate::error::{ApiError, ApiResult};
use crate::lifecycle;
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/devboxes", responses((status = 200, body = [Devbox])), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Devbox>>> {
    let records = state.store.list_devboxes().await?;
    Ok(Json(records.into_iter().map(view::devbox).collect()))
}

#[utoipa::path(post, path = "/api/v1/devboxes", request_body = CreateDevbox,
    responses((status = 201, body = Devbox), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateDevbox>,
) -> ApiResult<(StatusCode, Json<Devbox>)> {
    let devbox = lifecycle::create(state, req).await?;
    Ok((StatusCode::CREATED, Json(view::devbox(devbox))))
}

#[utoipa::path(get, path = "/api/v1/devboxes/{name}", params(("name" = String, Path)),
    responses((status = 200, body = Devbox), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Devbox>> {
    let record = lifecycle::get(&state, &devbox_name(&name)?).await?;
    Ok(Json(view::devbox(record)))
}

async fn operate(state: AppState, name: &str, op: Operation) -> ApiResult<Json<Devbox>> {
    let name = devbox_name(name)?;
    lifecycle::operate(state, name.clone(), op)
        .await?
        .map(|record| Json(view::devbox(record)))
        .ok_or_else(|| ApiError::not_found(format!("devbox {name} not found")))
}

#[utoipa::path(post, path = "/api/v1/devboxes/{name}/start", params(("name" = String, Path)),
    responses((status = 200, body = Devbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Devbox>> {
    operate(state, &name, Operation::Start).await
}

#[utoipa::path(post, path = "/api/v1/devboxes/{name}/stop", params(("name" = String, Path)),
    responses((status = 200, body = Devbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn stop(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Devbox>> {
    operate(state, &name, Operation::Stop).await
}

#[utoipa::path(post, path = "/api/v1/devboxes/{name}/restart", params(("name" = String, Path)),
    responses((status = 200, body = Devbox), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn restart(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Devbox>> {
    operate(state, &name, Operation::Restart).await
}

#[utoipa::path(delete, path = "/api/v1/devboxes/{name}", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    lifecycle::operate(state, devbox_name(&name)?, Operation::Delete).await?;
    Ok(StatusCode::NO_CONTENT)
}
