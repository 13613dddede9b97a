//! SSH routes: the gateway's host key and port, the HTTPS tunnel to a
//! devbox's SSH, and the links that open a devbox in an IDE.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::{Extension, Json};
use devbox_model::api::{ErrorBody, IdeLink, IdeQuery, SshInfo};

use super::devbox_name;
use super::error::{ApiError, ApiResult};
use crate::auth::Caller;
use crate::ops;
use crate::state::AppState;

fn gateway(state: &AppState) -> ApiResult<crate::ssh::Gateway> {
    state
        .gateway
        .get()
        .cloned()
        .ok_or_else(|| ApiError::internal("the SSH gateway is not running yet"))
}

#[utoipa::path(get, path = "/api/v1/ssh", responses((status = 200, body = SshInfo)), security(("bearer" = [])))]
pub async fn info(State(state): State<AppState>) -> ApiResult<Json<SshInfo>> {
    let g = gateway(&state)?;
    Ok(Json(SshInfo {
        host_key: g.host_public_key.clone(),
        port: g.port,
    }))
}

#[utoipa::path(get, path = "/api/v1/devboxes/{name}/ssh", params(("name" = String, Path)),
    responses((status = 101, description = "a WebSocket carrying the raw SSH stream in binary messages"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn tunnel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    let name = devbox_name(&name)?;
    // An unknown devbox is refused before the upgrade; a stopped one is
    // woken by the gateway once the user logged in.
    ops::read::get(&state, &caller, &name).await?;
    let g = gateway(&state)?;
    let peer = format!("https-tunnel:{caller}");
    Ok(ws.on_upgrade(move |socket| crate::ssh::tunnel::serve(g, socket, peer, name)))
}

#[utoipa::path(get, path = "/api/v1/devboxes/{name}/open", params(("name" = String, Path), IdeQuery),
    responses((status = 200, body = IdeLink), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn open(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    q: Result<Query<IdeQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<IdeLink>> {
    let Query(q) = q?;
    let name = devbox_name(&name)?;
    let g = gateway(&state)?;
    // The host the client reached the API at reaches the gateway too.
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| match h.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host.to_owned(),
            _ => h.to_owned(),
        })
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let link = ops::open::link(&state, &caller, &name, &q.ide, &host, g.port).await?;
    Ok(Json(link))
}
