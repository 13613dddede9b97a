//! The bearer check every API route goes through; it hands the operations
//! their [`Caller`].

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use crate::auth::authenticate;
use crate::state::AppState;

/// Middleware: a valid `Authorization: Bearer <token>` or 401. The caller
/// it stands for goes into the request's extensions.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = authenticate(&state.store, header).await?;
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}
