//! The HTTP ingress: requests for `<port>-<devbox>.<domain>` (by `Host`)
//! or `/proxy/<devbox>/<port>/` (by path) go to that port inside the
//! devbox, through a connection the runtime opens in the devbox's own
//! network namespace (so they reach nothing of the node's or another
//! devbox's). Each port's access level is checked first; a request for a
//! stopped devbox that passes it wakes the devbox: browsers get a page
//! that reloads until it runs, other clients wait for it.

mod access;
mod error;
mod pages;
mod proxy;
mod route;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use devbox_model::{DevboxId, State};
use devbox_runtime::{Connection, RuntimeError};
use devbox_store::DevboxRecord;

pub use access::{LINK_PARAM, cookie, sign_link};
pub use error::IngressError;
pub use proxy::ConnCtx;
pub use route::{By, PATH_PREFIX, Routed, Target, route};

use crate::state::AppState;

/// Ports of every devbox the ingress never reaches: those the agent serves
/// for the node alone (its SSH server, which the gateway reaches with the
/// devbox's credential). Listing, settings and links refuse them too.
pub const RESERVED: &[u16] = &[devbox_runtime::AGENT_SSH_PORT];

/// How often a waiting request looks at a waking devbox again.
const POLL: Duration = Duration::from_millis(50);

/// The ingress's settings and what it remembers of devboxes it woke.
#[derive(Debug)]
pub struct Ingress {
    /// Devboxes are reached as `<port>-<devbox>.<domain>`.
    pub domain: String,
    /// How long a request that woke a devbox waits for its port.
    pub wake_timeout: Duration,
    woken: Mutex<HashMap<DevboxId, Instant>>,
}

impl Ingress {
    pub fn new(domain: String, wake_timeout: Duration) -> Self {
        Self {
            domain: domain.trim_matches('.').to_ascii_lowercase(),
            wake_timeout,
            woken: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the devbox was woken so recently that a port not listening
    /// yet means "still starting" rather than "nothing there".
    fn recently_woken(&self, id: &DevboxId) -> bool {
        let mut woken = self.woken.lock().unwrap_or_else(|p| p.into_inner());
        woken.retain(|_, at| at.elapsed() < self.wake_timeout);
        woken.contains_key(id)
    }

    fn mark_woken(&self, id: &DevboxId) {
        let mut woken = self.woken.lock().unwrap_or_else(|p| p.into_inner());
        woken.insert(id.clone(), Instant::now());
    }
}

/// Answers a request the router gave the ingress.
pub async fn handle<B>(
    state: &AppState,
    ctx: &ConnCtx,
    routed: Routed,
    req: Request<B>,
) -> Response<Body>
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let browser = pages::wants_html(req.headers()) && req.method() == axum::http::Method::GET;
    let result = match routed {
        Routed::Invalid(e) => Err(e),
        Routed::AddSlash => Ok(add_slash(&req)),
        Routed::Target(t) => serve(state, ctx, t, req, browser).await,
    };
    result.unwrap_or_else(|e| pages::error_response(&e, browser))
}

/// `/proxy/<devbox>/<port>` to `/proxy/<devbox>/<port>/`, keeping the query.
fn add_slash<B>(req: &Request<B>) -> Response<Body> {
    let uri = req.uri();
    let location = match uri.query() {
        Some(q) => format!("{}/?{q}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn serve<B>(
    state: &AppState,
    ctx: &ConnCtx,
    target: Target,
    mut req: Request<B>,
    browser: bool,
) -> Result<Response<Body>, IngressError>
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let unknown = || IngressError::UnknownDevbox {
        name: target.devbox.to_string(),
    };
    let devbox = state
        .store
        .get_devbox(&target.devbox)
        .await?
        .ok_or_else(unknown)?;
    if RESERVED.contains(&target.port) {
        return Err(IngressError::UnknownPort {
            what: target.port.to_string(),
        });
    }
    let (query, link) = access::split_link(req.uri().query().unwrap_or(""));
    let record = state.store.get_port(&devbox.id, target.port).await?;
    let grant = access::check(
        state,
        &target,
        &devbox,
        record.as_ref(),
        link.as_deref(),
        &req,
    )
    .await?;
    state.activity.touch(&devbox.id);

    let upgrade = proxy::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let sender = match (upgrade, ctx.reuse(&devbox.id, target.port).await) {
        (false, Some(sender)) => sender,
        _ => {
            let conn = open(state, &devbox, target.port, browser).await?;
            proxy::handshake(conn, (target.devbox.as_str(), target.port)).await?
        }
    };
    let backend_req = proxy::backend_request(req, &target, &query, ctx.peer, upgrade)?;
    // An upgraded connection is a session for as long as it stays open.
    let session = upgrade.then(|| state.activity.session(&devbox.id));
    let mut resp = proxy::send(
        ctx,
        &devbox.id,
        &target,
        sender,
        backend_req,
        client_upgrade,
        session,
    )
    .await?;
    if let access::Grant::Link {
        set_cookie: Some(c),
    } = grant
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// A connection to `port` of the devbox, waking it when it is stopped.
/// A browser is answered at once with the starting page while the devbox
/// is not ready; other clients wait up to the wake timeout.
async fn open(
    state: &AppState,
    devbox: &DevboxRecord,
    port: u16,
    browser: bool,
) -> Result<Box<dyn Connection>, IngressError> {
    let name = devbox.name.to_string();
    let deadline = Instant::now() + state.ingress.wake_timeout;
    let mut wake: Option<tokio::task::JoinHandle<crate::ops::OpResult<DevboxRecord>>> = None;
    let starting = || IngressError::Starting {
        devbox: name.clone(),
    };
    loop {
        let current = state
            .store
            .get_devbox_by_id(&devbox.id)
            .await?
            .ok_or_else(|| IngressError::UnknownDevbox { name: name.clone() })?;
        if wake.as_ref().is_some_and(|h| h.is_finished())
            && let Some(Err(e)) = wake
                .take()
                .and_then(futures::FutureExt::now_or_never)
                .and_then(Result::ok)
        {
            return Err(IngressError::WakeFailed {
                devbox: name,
                message: e.to_string(),
            });
        }
        match current.state {
            State::Running => match state.runtime.connect(&current.id, port).await {
                Ok(conn) => return Ok(conn),
                Err(RuntimeError::Connect { .. }) => {
                    if !state.ingress.recently_woken(&current.id) {
                        return Err(IngressError::NothingListens { devbox: name, port });
                    }
                    if browser {
                        return Err(starting());
                    }
                }
                // It stopped meanwhile: the next round wakes it.
                Err(RuntimeError::NotRunning { .. }) => {}
                Err(e) => {
                    return Err(IngressError::Upstream {
                        devbox: name,
                        port,
                        message: e.to_string(),
                    });
                }
            },
            State::Stopped | State::Error => {
                if wake.is_none() {
                    tracing::info!(devbox = %current.name, port, "a request wakes the devbox");
                    state.ingress.mark_woken(&current.id);
                    wake = Some(crate::ops::ports::wake(state, &current.name));
                }
                if browser {
                    return Err(starting());
                }
            }
            State::Deleting => {
                return Err(IngressError::NotServing {
                    devbox: name,
                    state: current.state,
                });
            }
            State::Creating | State::Starting | State::Stopping | State::Committing => {
                if browser {
                    return Err(starting());
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(IngressError::WakeTimeout {
                devbox: name,
                port,
                secs: state.ingress.wake_timeout.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
