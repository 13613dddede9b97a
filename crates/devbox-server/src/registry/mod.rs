//! The OCI distribution API (v1.1) under `/v2/`, on the server's listener:
//! the HTTP side of the registry. Handlers parse a request, authenticate it
//! (`auth`), call one operation of `ops::registry` with the caller, and turn
//! the result or error into the spec's answer (`error`, the registry's own
//! single mapping). What is stored and checked is `devbox-image`'s business.

mod auth;
mod blobs;
mod error;
mod listing;
mod manifests;
mod paths;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

pub use auth::TokenKey;
use devbox_image::ImageStore;
use devbox_image::distribution::{UploadLimits, Uploads};

use self::auth::{Authenticated, authenticate_request, challenge, request_host};
use self::error::{SpecError, SpecResult};
use self::paths::Route;
use crate::ops::registry::Action;
use crate::state::AppState;

/// Header every registry answer carries, by which clients recognize a
/// registry of this API version.
const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

/// The registry's settings.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Largest blob a client may upload, in bytes.
    pub max_blob_size: u64,
    /// An upload session untouched for this long is removed.
    pub upload_timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        let d = UploadLimits::default();
        Self {
            max_blob_size: d.max_blob_size,
            upload_timeout: d.idle_timeout,
        }
    }
}

/// What the registry keeps for the server's life.
#[derive(Debug, Clone)]
pub struct Registry {
    /// Signs the registry tokens of the Docker token flow.
    pub key: TokenKey,
    /// Blob upload sessions.
    pub uploads: Arc<Uploads>,
}

impl Registry {
    pub fn new(images: &ImageStore, config: &RegistryConfig) -> anyhow::Result<Self> {
        let limits = UploadLimits {
            max_blob_size: config.max_blob_size,
            idle_timeout: config.upload_timeout,
        };
        Ok(Self {
            key: TokenKey::random()?,
            uploads: Arc::new(Uploads::new(images, limits)?),
        })
    }

    /// Removes abandoned upload sessions for as long as the server runs.
    pub fn spawn_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let uploads = self.uploads.clone();
        let every = (uploads.limits().idle_timeout / 2)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                uploads.sweep().await;
            }
        })
    }
}

/// The registry's routes, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2", get(version))
        .route("/v2/", get(version))
        .route("/v2/token", get(token_get).post(token_post))
        .route("/v2/{*rest}", any(dispatch))
}

/// Every answer says which API it speaks.
fn versioned(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    resp
}

fn finish(result: SpecResult<Response>) -> Response {
    versioned(result.unwrap_or_else(IntoResponse::into_response))
}

/// Authenticates a request and checks its credentials cover `action` on
/// `repository` (the catalog for `None`); a refusal carries the challenge
/// for exactly that scope.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    repository: Option<&str>,
    action: Action,
) -> SpecResult<Authenticated> {
    let scope = match repository {
        Some(r) => {
            let actions = match action {
                Action::Pull => "pull",
                Action::Push => "pull,push",
                Action::Delete => "delete",
            };
            Some(format!("repository:{r}:{actions}"))
        }
        None => Some("registry:catalog:*".to_owned()),
    };
    let host = request_host(headers);
    let auth = authenticate_request(state, headers)
        .await
        .map_err(|r| SpecError::unauthorized(r, challenge(&host, scope.as_deref(), false)))?;
    auth.check_scope(repository, action)
        .map_err(|r| SpecError::unauthorized(r, challenge(&host, scope.as_deref(), true)))?;
    Ok(auth)
}

/// `GET /v2/`: the API version check, which is also where clients learn
/// how to authenticate.
async fn version(State(state): State<AppState>, headers: HeaderMap) -> Response {
    finish(
        async {
            let host = request_host(&headers);
            authenticate_request(&state, &headers)
                .await
                .map_err(|r| SpecError::unauthorized(r, challenge(&host, None, false)))?;
            Ok(axum::Json(serde_json::json!({})).into_response())
        }
        .await,
    )
}

/// The scopes and, for the OAuth2 form, the password of a token request.
fn token_params(query: &str) -> (Vec<String>, Option<String>) {
    let mut scopes = Vec::new();
    let mut password = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "scope" => scopes.push(v.into_owned()),
            "password" => password = Some(v.into_owned()),
            _ => {}
        }
    }
    (scopes, password)
}

async fn answer_token(
    state: &AppState,
    headers: &HeaderMap,
    scopes: Vec<String>,
    password: Option<String>,
) -> Response {
    let requested = auth::parse_scopes(scopes.iter().map(String::as_str));
    let host = request_host(headers);
    finish(
        auth::issue(state, headers, password.as_deref(), requested)
            .await
            .map(|t| axum::Json(t).into_response())
            .map_err(|r| SpecError::unauthorized(r, format!("Basic realm=\"{host}\""))),
    )
}

/// `GET /v2/token?service=...&scope=...` with Basic credentials.
async fn token_get(State(state): State<AppState>, req: Request) -> Response {
    let (scopes, _) = token_params(req.uri().query().unwrap_or_default());
    answer_token(&state, req.headers(), scopes, None).await
}

/// `POST /v2/token` with an OAuth2 password grant form (containerd's way).
async fn token_post(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let form = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => b,
        Err(e) => {
            return finish(Err(SpecError::bad_request(
                "UNSUPPORTED",
                format!("cannot read the token request: {e}"),
            )));
        }
    };
    let (scopes, password) = token_params(&String::from_utf8_lossy(&form));
    answer_token(&state, &parts.headers, scopes, password).await
}

/// Every other `/v2/...` request.
async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let route_path = path.clone();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let method = parts.method.clone();
    let headers = parts.headers;
    let Some(route) = route_path.strip_prefix("/v2/").and_then(Route::parse) else {
        return finish(Err(SpecError::no_route(&method, &path)));
    };
    let action = match method {
        Method::GET | Method::HEAD => Action::Pull,
        Method::DELETE => Action::Delete,
        _ => Action::Push,
    };
    let sends_body = matches!(method, Method::PUT | Method::PATCH | Method::POST);
    let req = Ctx {
        state,
        method,
        headers,
        query,
        path,
    };
    let result = handle(req, route, action, body).await;
    if let (Err(_), true) = (&result, sends_body) {
        // A refusal may come before the body was read (a size over the
        // limit, refused credentials); the connection cannot carry another
        // request then, and saying so keeps clients from reusing it.
        let mut resp = finish(result);
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    finish(result)
}

/// One request on its way through a handler.
#[derive(Debug)]
struct Ctx {
    state: AppState,
    method: Method,
    headers: HeaderMap,
    query: String,
    path: String,
}

impl Ctx {
    /// The value of query parameter `key`.
    fn param(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn wrong_method(&self) -> SpecError {
        SpecError::method(&self.method, &self.path)
    }
}

async fn handle(req: Ctx, route: Route<'_>, action: Action, body: Body) -> SpecResult<Response> {
    let auth = admit(&req.state, &req.headers, route.repository(), action).await?;
    let caller = &auth.caller;
    match (route, &req.method) {
        (Route::Catalog, &Method::GET) => listing::catalog(&req, caller).await,
        (Route::Tags { name }, &Method::GET) => listing::tags(&req, caller, name).await,
        (Route::Referrers { name, digest }, &Method::GET) => {
            listing::referrers(&req, caller, name, digest).await
        }
        (Route::Manifest { name, reference }, &Method::GET | &Method::HEAD) => {
            manifests::get(&req, caller, name, reference).await
        }
        (Route::Manifest { name, reference }, &Method::PUT) => {
            manifests::put(&req, caller, name, reference, body).await
        }
        (Route::Manifest { name, reference }, &Method::DELETE) => {
            manifests::delete(&req, caller, name, reference).await
        }
        (Route::Blob { name, digest }, &Method::GET | &Method::HEAD) => {
            blobs::get(&req, caller, name, digest).await
        }
        (Route::Blob { name, digest }, &Method::DELETE) => {
            blobs::delete(&req, caller, name, digest).await
        }
        (Route::Uploads { name }, &Method::POST) => uploads::start(&req, caller, name, body).await,
        (Route::Upload { name, id }, &Method::GET) => uploads::status(&req, caller, name, id).await,
        (Route::Upload { name, id }, &Method::PATCH) => {
            uploads::append(&req, caller, name, id, body).await
        }
        (Route::Upload { name, id }, &Method::PUT) => {
            uploads::finish(&req, caller, name, id, body).await
        }
        (Route::Upload { name, id }, &Method::DELETE) => {
            uploads::cancel(&req, caller, name, id).await
        }
        _ => Err(req.wrong_method()),
    }
}

/// Sets a header from a string known to be a valid value.
fn set(resp: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// A `201 Created` or `202 Accepted` with a `Location`.
fn located(status: StatusCode, location: &str) -> Response {
    let mut resp = status.into_response();
    set(&mut resp, header::LOCATION, location);
    resp
}
