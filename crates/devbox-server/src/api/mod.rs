//! The HTTP surface: routes, the JSON extractor that turns every malformed
//! body into a precise 4xx, and the OpenAPI document.

mod auth;
mod commits;
mod convert;
mod devboxes;
pub mod error;
mod events;
mod exec;
mod images;
mod keys;
mod logs;
mod openapi;
mod ports;
mod push;
mod releases;
mod session;
mod ssh;

use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use devbox_model::DevboxName;
use devbox_model::api::Health;

use self::auth::require_token;
use self::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Largest JSON body any route accepts.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// All routes of the server.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/devboxes", get(devboxes::list).post(devboxes::create))
        .route(
            "/devboxes/{name}",
            get(devboxes::show)
                .patch(devboxes::update)
                .delete(devboxes::delete),
        )
        .route("/devboxes/{name}/start", post(devboxes::start))
        .route("/devboxes/{name}/stop", post(devboxes::stop))
        .route("/devboxes/{name}/restart", post(devboxes::restart))
        .route(
            "/devboxes/{name}/commits",
            get(commits::history).post(commits::commit),
        )
        .route("/devboxes/{name}/rollback", post(commits::rollback))
        .route("/devboxes/{name}/diff", get(commits::diff))
        .route("/gc", post(commits::gc))
        .route("/devboxes/{name}/exec", post(exec::exec))
        .route("/devboxes/{name}/exec/ws", get(exec::exec_ws))
        .route("/devboxes/{name}/logs", get(logs::logs))
        .route("/events", get(events::events))
        .route("/devboxes/{name}/ports", get(ports::list))
        .route(
            "/devboxes/{name}/ports/{port}",
            axum::routing::put(ports::set),
        )
        .route(
            "/devboxes/{name}/ports/{port}/share",
            post(ports::share).delete(ports::revoke),
        )
        .route("/images", get(images::list))
        .route(
            "/images/import",
            post(images::import).layer(DefaultBodyLimit::disable()),
        )
        .route("/images/pull", post(images::pull))
        .route("/images/push", post(push::push))
        .route(
            "/images/{reference}",
            get(images::show).delete(images::delete),
        )
        .route("/keys", get(keys::list).post(keys::add))
        .route("/ssh", get(ssh::info))
        .route("/devboxes/{name}/ssh", get(ssh::tunnel))
        .route("/devboxes/{name}/open", get(ssh::open))
        .route("/keys/{id}", axum::routing::delete(keys::remove))
        .route(
            "/devboxes/{name}/releases",
            get(releases::list).post(releases::create),
        )
        .route(
            "/devboxes/{name}/releases/{version}",
            axum::routing::delete(releases::delete),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY));
    Router::new()
        .merge(crate::web::routes())
        .route(
            "/api/v1/session",
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .route("/healthz", get(health))
        .route("/api/v1/openapi.json", get(openapi::document))
        .nest("/api/v1", api)
        .merge(crate::registry::router())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state)
}

/// A route that exists, asked with a method it does not take: JSON like
/// every other error, naming what the route does take.
async fn method_not_allowed(
    method: axum::http::Method,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> ApiError {
    ApiError::new(
        devbox_model::api::ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

/// `axum::Json` whose rejections become [`ApiError`]s.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(Self(v))
    }
}

/// Parses a devbox name from a path segment.
pub fn devbox_name(raw: &str) -> ApiResult<DevboxName> {
    Ok(raw.parse()?)
}
