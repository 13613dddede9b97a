//! SSH key routes: list, add, remove the caller's public keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use devbox_model::api::{AddSshKey, ErrorBody, SshKey};
use devbox_store::KeyRecord;

use super::ApiJson;
use super::error::ApiResult;
use crate::auth::Caller;
use crate::ops;
use crate::state::AppState;

fn view(k: KeyRecord) -> SshKey {
    SshKey {
        id: k.id,
        name: k.name,
        algorithm: k.algorithm,
        fingerprint: k.fingerprint,
        public_key: k.public_key,
        created_at: k.created_at,
    }
}

#[utoipa::path(get, path = "/api/v1/keys", responses((status = 200, body = [SshKey])), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<SshKey>>> {
    let keys = ops::keys::list(&state, &caller).await?;
    Ok(Json(keys.into_iter().map(view).collect()))
}

#[utoipa::path(post, path = "/api/v1/keys", request_body = AddSshKey,
    responses((status = 201, body = SshKey), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<AddSshKey>,
) -> ApiResult<(StatusCode, Json<SshKey>)> {
    let key = ops::keys::add(&state, &caller, &req.public_key, req.name).await?;
    Ok((StatusCode::CREATED, Json(view(key))))
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", params(("id" = String, Path, description = "ID or fingerprint")),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ops::keys::remove(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
