//! Web page sessions: `POST /api/v1/session` trades an API token for a
//! session cookie and the session's CSRF token, `GET` gives the CSRF token
//! of the current session again (after a reload), `DELETE` signs out.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use devbox_model::api::{ErrorBody, SessionInfo, SignIn};

use super::ApiJson;
use super::error::{ApiError, ApiResult};
use crate::auth::{AuthError, authenticate, hash_token};
use crate::session;
use crate::state::AppState;

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[utoipa::path(post, path = "/api/v1/session", request_body = SignIn,
    responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody)))]
pub async fn sign_in(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SignIn>,
) -> ApiResult<Response> {
    let token = req.token.trim();
    let caller = authenticate(&state.store, Some(&format!("Bearer {token}"))).await?;
    let now = Utc::now();
    let (value, expires) = session::issue(&state.secret, &hash_token(token), now);
    let info = SessionInfo {
        csrf: session::csrf(&state.secret, &value),
        caller: caller.to_string(),
        expires_at: expires,
    };
    tracing::info!(%caller, "signed in on the web page");
    Ok(with_cookie(
        Json(info).into_response(),
        &session::set_cookie(&value, expires, now),
    ))
}

#[utoipa::path(get, path = "/api/v1/session",
    responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody)))]
pub async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<SessionInfo>> {
    let value = crate::ingress::cookie(&headers, session::COOKIE).ok_or(AuthError::Missing)?;
    let caller = session::verify(&state, value)
        .await
        .ok_or(AuthError::Invalid)?;
    let expires_at = session::expiry(value).ok_or(AuthError::Invalid)?;
    Ok(Json(SessionInfo {
        csrf: session::csrf(&state.secret, value),
        caller: caller.to_string(),
        expires_at,
    }))
}

#[utoipa::path(delete, path = "/api/v1/session", responses((status = 204)))]
pub async fn sign_out() -> Result<Response, ApiError> {
    Ok(with_cookie(
        StatusCode::NO_CONTENT.into_response(),
        &session::clear_cookie(),
    ))
}
