//! The credential check every API route goes through: a bearer token, or
//! the web page's session cookie (with its CSRF token on every request
//! that changes something, and a WebSocket only from the server's own
//! pages). It hands the operations their [`Caller`].

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use crate::auth::{AuthError, authenticate};
use crate::session;
use crate::state::AppState;

/// Whether the request's `Origin` (sent by browsers with every WebSocket
/// handshake) is the server itself as the client reached it.
fn same_origin(req: &Request) -> bool {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(o), Some(h)) => o.split_once("://").is_some_and(|(_, rest)| rest == h),
        (None, _) => true,
        _ => false,
    }
}

/// Middleware: valid credentials or 401. The caller they stand for goes
/// into the request's extensions.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let cookie = crate::ingress::cookie(req.headers(), session::COOKIE).map(str::to_owned);
    let caller = match (header, cookie) {
        (None, Some(value)) => {
            let caller = session::verify(&state, &value)
                .await
                .ok_or(AuthError::Invalid)?;
            let reads = matches!(*req.method(), Method::GET | Method::HEAD);
            let csrf = req
                .headers()
                .get(session::CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !reads && !session::csrf_ok(&state.secret, &value, csrf) {
                return Err(AuthError::Csrf.into());
            }
            if !same_origin(&req) {
                return Err(AuthError::Csrf.into());
            }
            caller
        }
        (header, _) => authenticate(&state.store, header).await?,
    };
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}
