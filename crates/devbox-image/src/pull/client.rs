//! An HTTP client for one repository of a distribution registry, handling
//! authentication: anonymous access, the Docker token flow (Bearer) and HTTP
//! Basic.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use url::Url;

use super::auth::{Challenge, parse_challenges};
use super::naming::Remote;
use crate::ImageError;

/// Longest part of an error body quoted in messages.
const BODY_SNIPPET: usize = 512;
/// How long the plain-HTTP probe after a failed TLS handshake may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for one remote repository.
#[derive(Debug)]
pub(crate) struct RegistryClient {
    http: reqwest::Client,
    remote: Remote,
    credentials: Option<(String, String)>,
    /// The `Authorization` value that last worked, shared by concurrent
    /// requests.
    authorization: Mutex<Option<String>>,
    /// The actions asked of a token service whose challenge names no scope:
    /// `pull`, or `pull,push` for a client that pushes.
    actions: &'static str,
}

impl RegistryClient {
    pub fn new(
        remote: Remote,
        credentials: Option<(String, String)>,
        insecure: bool,
    ) -> Result<Self, ImageError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("devbox/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .danger_accept_invalid_certs(insecure)
            .build()
            .map_err(|e| ImageError::Http {
                url: remote.base.to_string(),
                source: e,
            })?;
        Ok(Self {
            http,
            remote,
            credentials,
            authorization: Mutex::new(None),
            actions: "pull",
        })
    }

    /// The same client, asking token services for push rights too.
    pub fn for_push(mut self) -> Self {
        self.actions = "pull,push";
        self
    }

    /// Sends the request `build` makes (again, once, after authenticating
    /// when the registry answers 401), and returns whatever the registry
    /// answered but a second 401 or a 403, which are
    /// [`ImageError::Unauthorized`]. `build` must make a request without a
    /// streamed body, since it may be sent twice.
    pub async fn send(
        &self,
        url: &Url,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Response, ImageError> {
        let mut authenticated = false;
        loop {
            let auth = self.authorization.lock().expect("not poisoned").clone();
            let mut req = build(&self.http);
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = match req.send().await {
                Ok(resp) => resp,
                Err(e) => return Err(send_error(url, e).await),
            };
            match resp.status() {
                StatusCode::UNAUTHORIZED if !authenticated => {
                    let fresh = self.authenticate(resp.headers()).await?;
                    *self.authorization.lock().expect("not poisoned") = Some(fresh);
                    authenticated = true;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let body = snippet(resp).await;
                    return Err(self.unauthorized(format!("access to {what} denied: {body}")));
                }
                _ => return Ok(resp),
            }
        }
    }

    /// Sends a request with a streamed body, with the authorization earlier
    /// requests established (a body cannot be sent twice). A 401 or 403 is
    /// [`ImageError::Unauthorized`].
    pub async fn send_once(
        &self,
        url: &Url,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<Response, ImageError> {
        let auth = self.authorization.lock().expect("not poisoned").clone();
        let req = match auth {
            Some(a) => req.header(AUTHORIZATION, a),
            None => req,
        };
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => return Err(send_error(url, e).await),
        };
        if matches!(
            resp.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            let body = snippet(resp).await;
            return Err(self.unauthorized(format!("access to {what} denied: {body}")));
        }
        Ok(resp)
    }

    /// [`ImageError::Upstream`] for an answer the caller did not expect.
    pub async fn unexpected(&self, url: &Url, resp: Response) -> ImageError {
        ImageError::Upstream {
            url: url.to_string(),
            status: resp.status().as_u16(),
            body: snippet(resp).await,
        }
    }

    /// The HTTP client, for requests [`Self::send_once`] sends.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// GETs `url`, authenticating when the registry asks to. A 401 after
    /// authenticating, or a 403, is [`ImageError::Unauthorized`]; a 404 is
    /// [`ImageError::NotFound`] naming `what`; other failures are
    /// [`ImageError::Upstream`].
    pub async fn get(
        &self,
        url: &Url,
        accept: Option<&str>,
        what: &str,
    ) -> Result<Response, ImageError> {
        let mut authenticated = false;
        loop {
            let auth = self.authorization.lock().expect("not poisoned").clone();
            let mut req = self.http.get(url.clone());
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = match req.send().await {
                Ok(resp) => resp,
                Err(e) => return Err(send_error(url, e).await),
            };
            match resp.status() {
                s if s.is_success() => return Ok(resp),
                StatusCode::UNAUTHORIZED if !authenticated => {
                    let fresh = self.authenticate(resp.headers()).await?;
                    *self.authorization.lock().expect("not poisoned") = Some(fresh);
                    authenticated = true;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let body = snippet(resp).await;
                    return Err(self.unauthorized(format!("access to {what} denied: {body}")));
                }
                StatusCode::NOT_FOUND => {
                    return Err(ImageError::NotFound {
                        what: format!("{what} on {}", self.remote.registry),
                    });
                }
                status => {
                    return Err(ImageError::Upstream {
                        url: url.to_string(),
                        status: status.as_u16(),
                        body: snippet(resp).await,
                    });
                }
            }
        }
    }

    /// A GET whose body is read whole, refusing more than `max` bytes.
    /// Returns the body and the response headers.
    pub async fn get_bounded(
        &self,
        url: &Url,
        accept: Option<&str>,
        what: &str,
        max: u64,
    ) -> Result<(Bytes, HeaderMap), ImageError> {
        let resp = self.get(url, accept, what).await?;
        let too_big = || ImageError::document(what, format!("larger than {max} bytes"));
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(too_big());
        }
        let headers = resp.headers().clone();
        let mut body = BytesMut::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ImageError::Http {
                url: url.to_string(),
                source: e,
            })?;
            if body.len() as u64 + chunk.len() as u64 > max {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body.freeze(), headers))
    }

    /// A GET streaming its body.
    pub async fn get_stream(
        &self,
        url: &Url,
        what: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ImageError>>, ImageError> {
        let resp = self.get(url, None, what).await?;
        let url = url.to_string();
        Ok(resp
            .bytes_stream()
            .map(move |c| {
                c.map_err(|e| ImageError::Http {
                    url: url.clone(),
                    source: e,
                })
            })
            .boxed())
    }

    /// Answers the registry's challenge: a Bearer token from its token
    /// service, or Basic credentials.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<String, ImageError> {
        let challenges: Vec<Challenge> = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let bearer = challenges.iter().find_map(|c| match c {
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => Some((realm, service, scope)),
            Challenge::Basic { .. } => None,
        });
        if let Some((realm, service, scope)) = bearer {
            return self
                .token(realm, service.as_deref(), scope.as_deref())
                .await
                .map(|t| format!("Bearer {t}"));
        }
        if challenges
            .iter()
            .any(|c| matches!(c, Challenge::Basic { .. }))
        {
            return match &self.credentials {
                Some((user, password)) => Ok(basic(user, password)),
                None => Err(self.unauthorized("the registry requires credentials".into())),
            };
        }
        Err(self.unauthorized(
            "the registry refused anonymous access without a usable challenge".into(),
        ))
    }

    /// Fetches a token from the token service named by a Bearer challenge.
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String, ImageError> {
        let mut url = Url::parse(realm)
            .map_err(|e| ImageError::document("token realm", format!("{realm:?}: {e}")))?;
        let default_scope = format!("repository:{}:{}", self.remote.repository, self.actions);
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope.unwrap_or(&default_scope));
        }
        let mut req = self.http.get(url.clone());
        if let Some((user, password)) = &self.credentials {
            req = req.header(AUTHORIZATION, basic(user, password));
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => return Err(send_error(&url, e).await),
        };
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let body = snippet(resp).await;
                return Err(self.unauthorized(format!("the token service refused: {body}")));
            }
            status => {
                return Err(ImageError::Upstream {
                    url: url.to_string(),
                    status: status.as_u16(),
                    body: snippet(resp).await,
                });
            }
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let is_json = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.contains("json"));
        let body = resp.bytes().await.map_err(|e| ImageError::Http {
            url: url.to_string(),
            source: e,
        })?;
        let parsed: Option<TokenResponse> = is_json
            .then(|| serde_json::from_slice(&body).ok())
            .flatten();
        parsed
            .and_then(|t| t.token.or(t.access_token))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ImageError::document("token response", "no token in it"))
    }

    fn unauthorized(&self, detail: String) -> ImageError {
        ImageError::Unauthorized {
            registry: self.remote.registry.clone(),
            detail,
        }
    }
}

/// `host:port` of a URL, the port filled in from the scheme.
fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Says why a request could not be sent: the registry is not listening
/// (connection refused), cannot be found or reached, or answers in plain
/// HTTP where TLS was expected; anything else stays [`ImageError::Http`].
async fn send_error(url: &Url, e: reqwest::Error) -> ImageError {
    let registry = host_port(url);
    if !e.is_connect() {
        return ImageError::Http {
            url: url.to_string(),
            source: e,
        };
    }
    let refused = sources(&e).any(|s| {
        s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    if refused {
        return ImageError::Unreachable {
            registry,
            reason: "connection refused; is the registry running there?".into(),
        };
    }
    let reason = sources(&e)
        .last()
        .map(ToString::to_string)
        .unwrap_or_else(|| e.to_string());
    // A certificate the handshake refused is a TLS server after all; an
    // HTTPS server may well answer a plain request too (with a 400), so it
    // must not be probed.
    let certificate = sources(&e).any(|s| s.to_string().contains("certificate"));
    if certificate {
        return ImageError::Unreachable {
            registry,
            reason: format!("{reason}; pass --insecure to accept any certificate"),
        };
    }
    if url.scheme() == "https" && answers_plain_http(url).await {
        return ImageError::PlainHttp { registry };
    }
    ImageError::Unreachable { registry, reason }
}

/// The error's causes, outermost first.
fn sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(e.source(), |s| s.source())
}

/// Whether the server at the URL's address answers a plain HTTP request
/// with an HTTP response: the sign of a registry without TLS when the
/// handshake failed. Bounded in time, so a silent peer costs a few seconds.
async fn answers_plain_http(url: &Url) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(host) = url.host_str() else {
        return false;
    };
    let Some(port) = url.port_or_known_default() else {
        return false;
    };
    let probe = async {
        let mut conn = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: {host}\r\n\r\n");
        conn.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 5];
        conn.read_exact(&mut head).await.ok()?;
        Some(&head == b"HTTP/")
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The start of an error body, as one line of text.
async fn snippet(resp: Response) -> String {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while body.len() < BODY_SNIPPET {
        match stream.next().await {
            Some(Ok(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_SNIPPET)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
