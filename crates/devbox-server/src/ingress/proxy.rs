//! Forwarding one request to a devbox's port over a connection the
//! runtime opened inside the devbox, and its answer back: bodies stream
//! both ways without being buffered, an upgrade (WebSocket and others)
//! becomes a byte pipe between the two connections, and a client
//! connection keeps its connection to the devbox for its next request
//! (HTTP/1.1 keep-alive on both sides).

use std::net::SocketAddr;
use std::sync::Mutex;

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Request, Response, StatusCode, Uri};
use devbox_model::DevboxId;
use devbox_runtime::Connection;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use super::{By, IngressError, Target};

/// What a client connection keeps between its requests.
#[derive(Debug)]
pub struct ConnCtx {
    /// The client's address, for `X-Forwarded-For`.
    pub peer: SocketAddr,
    backend: Mutex<Option<Backend>>,
}

#[derive(Debug)]
struct Backend {
    key: (DevboxId, u16),
    sender: SendRequest<Body>,
}

impl ConnCtx {
    pub fn new(peer: SocketAddr) -> Self {
        Self {
            peer,
            backend: Mutex::new(None),
        }
    }

    /// The connection to that port this client used last, if it is still
    /// open and idle.
    pub async fn reuse(&self, devbox: &DevboxId, port: u16) -> Option<SendRequest<Body>> {
        let kept = self
            .backend
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        if kept.key.0 != *devbox || kept.key.1 != port || kept.sender.is_closed() {
            return None;
        }
        let mut sender = kept.sender;
        sender.ready().await.ok()?;
        Some(sender)
    }

    fn keep(&self, devbox: &DevboxId, port: u16, sender: SendRequest<Body>) {
        *self.backend.lock().unwrap_or_else(|p| p.into_inner()) = Some(Backend {
            key: (devbox.clone(), port),
            sender,
        });
    }
}

/// Headers that belong to one hop, never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether the request asks to switch protocols (a WebSocket handshake).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers, and the headers the `Connection` header
/// names; an upgrade keeps `Connection: upgrade` and `Upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| *n != header::UPGRADE)
        .collect();
    for n in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(n);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Adds the `X-Forwarded-*` headers (RFC 7239's de facto forms).
fn forwarded(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    host: Option<HeaderValue>,
    target: &Target,
) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let ip = peer.ip().to_string();
    let chain = match headers.get(&xff).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&chain) {
        headers.insert(xff, v);
    }
    if let Some(h) = host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), h);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    );
    if let By::Path { prefix } = &target.by
        && let Ok(v) = HeaderValue::from_str(prefix)
    {
        headers.insert(HeaderName::from_static("x-forwarded-prefix"), v);
    }
}

/// The request the devbox receives: the target's path with `query`, our
/// headers adjusted.
pub fn backend_request<B>(
    req: Request<B>,
    target: &Target,
    query: &str,
    peer: SocketAddr,
    upgrade: bool,
) -> Result<Request<Body>, IngressError>
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let (mut parts, body) = req.into_parts();
    let path = target
        .path
        .split_once('?')
        .map_or(target.path.as_str(), |(p, _)| p);
    let pq = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    parts.uri = pq.parse::<Uri>().map_err(|_| IngressError::UnknownPort {
        what: pq.chars().take(64).collect(),
    })?;
    let host = parts.headers.get(header::HOST).cloned();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    super::access::strip_credentials(&mut parts.headers);
    forwarded(&mut parts.headers, peer, host, target);
    Ok(Request::from_parts(parts, Body::new(body)))
}

/// Speaks HTTP/1.1 over a new connection to the devbox.
pub async fn handshake(
    conn: Box<dyn Connection>,
    who: (&str, u16),
) -> Result<SendRequest<Body>, IngressError> {
    let (sender, connection) =
        http1::handshake(TokioIo::new(conn))
            .await
            .map_err(|e| IngressError::Upstream {
                devbox: who.0.to_owned(),
                port: who.1,
                message: e.to_string(),
            })?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!("a connection into a devbox ended: {e}");
        }
    });
    Ok(sender)
}

/// Sends the request and streams the answer back. An upgrade that the
/// devbox accepts joins the client's connection to the devbox's.
pub async fn send(
    ctx: &ConnCtx,
    devbox: &DevboxId,
    target: &Target,
    mut sender: SendRequest<Body>,
    mut req: Request<Body>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    session: Option<crate::activity::SessionGuard>,
) -> Result<Response<Body>, IngressError> {
    let upstream = |e: hyper::Error| IngressError::Upstream {
        devbox: target.devbox.to_string(),
        port: target.port,
        message: e.to_string(),
    };
    let upgrade = client_upgrade.is_some();
    if upgrade {
        // The upgrade is the connection's last request: the connection
        // becomes the pipe.
        req.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let mut resp = sender.send_request(req).await.map_err(upstream)?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client) = client_upgrade
    {
        let backend = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let _session = session;
            match tokio::try_join!(client, backend) {
                Ok((c, b)) => {
                    let (mut c, mut b) = (TokioIo::new(c), TokioIo::new(b));
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut b).await;
                }
                Err(e) => tracing::debug!("an upgrade through the ingress failed: {e}"),
            }
        });
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    if !upgrade {
        ctx.keep(devbox, target.port, sender);
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    Ok(Response::from_parts(parts, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            devbox: "web".parse().unwrap(),
            port: 8080,
            by: By::Path {
                prefix: "/proxy/web/8080".into(),
            },
            path: "/a/b?devbox_link=1.x&q=1".into(),
        }
    }

    #[test]
    fn the_devbox_gets_the_rest_of_the_path_and_forwarding_headers() {
        let req = Request::builder()
            .uri("/proxy/web/8080/a/b?devbox_link=1.x&q=1")
            .header(header::HOST, "127.0.0.1:7070")
            .header(header::CONNECTION, "keep-alive, x-private")
            .header("x-private", "1")
            .header("x-forwarded-for", "10.0.0.9")
            .header(header::AUTHORIZATION, "Bearer dbx_abc")
            .body(Body::empty())
            .unwrap();
        let peer: SocketAddr = "127.0.0.2:5000".parse().unwrap();
        let out = backend_request(req, &target(), "q=1", peer, false).unwrap();
        assert_eq!(out.uri(), "/a/b?q=1");
        let h = out.headers();
        assert!(h.get("x-private").is_none() && h.get(header::CONNECTION).is_none());
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert_eq!(h["x-forwarded-for"], "10.0.0.9, 127.0.0.2");
        assert_eq!(h["x-forwarded-host"], "127.0.0.1:7070");
        assert_eq!(h["x-forwarded-prefix"], "/proxy/web/8080");
        assert_eq!(h[header::HOST], "127.0.0.1:7070");
    }

    #[test]
    fn an_upgrade_keeps_its_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
        let mut plain = h.clone();
        strip_hop_by_hop(&mut plain, false);
        assert!(plain.get(header::UPGRADE).is_none());
    }
}
