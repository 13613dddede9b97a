//! Port routes: the ports of a devbox with their URLs and access levels,
//! setting a port's access, and signed links (make, revoke).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use devbox_model::DevboxName;
use devbox_model::api::{ErrorBody, Port, PortAccess, SetPort, ShareLink, ShareRequest};

use super::error::{ApiError, ApiResult};
use super::{ApiJson, devbox_name};
use crate::auth::Caller;
use crate::ops;
use crate::state::AppState;

/// Default lifetime of a signed link.
const DEFAULT_LINK_SECS: u64 = 3600;

fn to_api(a: devbox_store::PortAccess) -> PortAccess {
    match a {
        devbox_store::PortAccess::Private => PortAccess::Private,
        devbox_store::PortAccess::Public => PortAccess::Public,
    }
}

fn to_store(a: PortAccess) -> devbox_store::PortAccess {
    match a {
        PortAccess::Private => devbox_store::PortAccess::Private,
        PortAccess::Public => devbox_store::PortAccess::Public,
    }
}

fn port_number(raw: &str) -> ApiResult<u16> {
    match raw.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ApiError::invalid(format!(
            "invalid port {raw:?}: use a number from 1 to 65535"
        ))),
    }
}

/// The two URLs of a port, as the client reached the server (its `Host`).
pub fn urls(
    state: &AppState,
    headers: &HeaderMap,
    name: &DevboxName,
    port: u16,
) -> (String, String) {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let server_port = host
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map(|(_, p)| format!(":{p}"))
        .unwrap_or_default();
    let by_host = format!(
        "http://{port}-{name}.{}{server_port}/",
        state.ingress.domain
    );
    let by_path = format!("http://{host}{}{name}/{port}/", crate::ingress::PATH_PREFIX);
    (by_host, by_path)
}

#[utoipa::path(get, path = "/api/v1/devboxes/{name}/ports", params(("name" = String, Path)),
    responses((status = 200, body = [Port]), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Port>>> {
    let name = devbox_name(&name)?;
    let ports = ops::ports::list(&state, &caller, &name).await?;
    Ok(Json(
        ports
            .into_iter()
            .map(|p| {
                let (url, path_url) = urls(&state, &headers, &name, p.port);
                Port {
                    port: p.port,
                    access: to_api(p.access),
                    listening: p.listening,
                    url,
                    path_url,
                }
            })
            .collect(),
    ))
}

#[utoipa::path(put, path = "/api/v1/devboxes/{name}/ports/{port}", params(("name" = String, Path), ("port" = u16, Path)),
    request_body = SetPort,
    responses((status = 200, body = Port), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((name, port)): Path<(String, String)>,
    ApiJson(req): ApiJson<SetPort>,
) -> ApiResult<Json<Port>> {
    let (name, port) = (devbox_name(&name)?, port_number(&port)?);
    let (devbox, record) =
        ops::ports::set_access(&state, &caller, &name, port, to_store(req.access)).await?;
    let listening = if devbox.state == devbox_model::State::Running {
        state
            .runtime
            .listening_ports(&devbox.id)
            .await
            .map(|p| p.contains(&port))
            .unwrap_or(false)
    } else {
        false
    };
    let (url, path_url) = urls(&state, &headers, &name, port);
    Ok(Json(Port {
        port,
        access: to_api(record.access),
        listening,
        url,
        path_url,
    }))
}

#[utoipa::path(post, path = "/api/v1/devboxes/{name}/ports/{port}/share", params(("name" = String, Path), ("port" = u16, Path)),
    request_body = ShareRequest,
    responses((status = 200, body = ShareLink), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn share(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((name, port)): Path<(String, String)>,
    ApiJson(req): ApiJson<ShareRequest>,
) -> ApiResult<Json<ShareLink>> {
    let (name, port) = (devbox_name(&name)?, port_number(&port)?);
    let secs = req.expires_in.unwrap_or(DEFAULT_LINK_SECS);
    let max = ops::ports::MAX_LINK_LIFETIME.as_secs();
    if secs == 0 || secs > max {
        return Err(ApiError::invalid(format!(
            "a link lasts from 1 second to {} days, not {secs}s",
            max / 86400
        )));
    }
    let (value, expires_at) = ops::ports::share(
        &state,
        &caller,
        &name,
        port,
        std::time::Duration::from_secs(secs),
    )
    .await?;
    let (url, path_url) = urls(&state, &headers, &name, port);
    let param = format!("?{}={value}", crate::ingress::LINK_PARAM);
    Ok(Json(ShareLink {
        url: format!("{url}{param}"),
        path_url: format!("{path_url}{param}"),
        expires_at,
    }))
}

#[utoipa::path(delete, path = "/api/v1/devboxes/{name}/ports/{port}/share", params(("name" = String, Path), ("port" = u16, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, port)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (name, port) = (devbox_name(&name)?, port_number(&port)?);
    ops::ports::revoke(&state, &caller, &name, port).await?;
    Ok(StatusCode::NO_CONTENT)
}
