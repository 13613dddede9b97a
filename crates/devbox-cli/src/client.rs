//! The HTTP side of the CLI: building API URLs, sending requests with the
//! bearer token, and turning error answers into [`ApiError`]s.

pub mod error;
pub mod token;

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use devbox_model::api::API_PREFIX;
use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

pub use error::{ApiError, ExitWith, Unreachable, UsageError};
pub use token::Token;

/// Where the server listens unless `--url` or `DEVBOX_URL` says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7070";

/// A client of one server with one token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Token,
}

/// A decoded JSON answer together with the bytes it came from, which `--json`
/// prints unchanged.
#[derive(Debug)]
pub struct Json<T> {
    pub value: T,
    pub raw: Bytes,
}

impl Client {
    pub fn new(url: &str, token: Token) -> anyhow::Result<Self> {
        let base = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                UsageError(format!(
                    "invalid server URL {url:?}: expected http://HOST[:PORT] or https://HOST[:PORT]"
                ))
            })?;
        // HTTP/1.1 only: the exec WebSocket is an HTTP/1.1 upgrade, and the
        // server speaks nothing else.
        let http = reqwest::Client::builder()
            .http1_only()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("devbox-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self { http, base, token })
    }

    /// The server's URL, as given.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The API token, when one was found.
    pub fn token(&self) -> Option<&str> {
        self.token.value.as_deref()
    }

    /// `BASE/api/v1/<segments...>`, each segment percent-encoded as one path
    /// segment, so an image reference with `/` and `:` stays one segment.
    pub fn api_url(&self, segments: &[&str]) -> Url {
        let mut path = String::from(API_PREFIX);
        for s in segments {
            path.push('/');
            path.push_str(&encode_segment(s));
        }
        self.url(&path)
    }

    /// `BASE<path>`, keeping a path prefix the base URL may have (a server
    /// behind a reverse proxy at `https://host/devbox`).
    pub fn url(&self, path: &str) -> Url {
        let base = self.base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path}")).expect("a valid base URL joined with an encoded path")
    }

    /// A request with the bearer token, if there is one.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let rb = self.http.request(method, url);
        match &self.token.value {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends a request; an answer with an error status becomes an [`ApiError`].
    pub async fn send(&self, rb: RequestBuilder) -> anyhow::Result<Response> {
        let resp = rb.send().await.map_err(|e| self.transport_error(e))?;
        self.check(resp).await
    }

    /// Passes a successful answer through and turns any other into an [`ApiError`].
    pub async fn check(&self, resp: Response) -> anyhow::Result<Response> {
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::SWITCHING_PROTOCOLS {
            return Ok(resp);
        }
        let body = resp.bytes().await.unwrap_or_default();
        Err(ApiError::from_response(status.as_u16(), &body, &self.token).into())
    }

    /// Names an unreachable server plainly; other transport errors keep their cause.
    pub fn transport_error(&self, e: reqwest::Error) -> anyhow::Error {
        if e.is_connect() {
            return Unreachable {
                url: self.base.as_str().trim_end_matches('/').to_owned(),
                source: e,
            }
            .into();
        }
        anyhow::Error::new(e).context("the request to the devbox server failed")
    }

    pub async fn get_json<T: DeserializeOwned>(&self, url: Url) -> anyhow::Result<Json<T>> {
        let resp = self.send(self.request(Method::GET, url)).await?;
        read_json(resp).await
    }

    pub async fn post_json<T: DeserializeOwned>(
        &self,
        url: Url,
        body: &impl Serialize,
    ) -> anyhow::Result<Json<T>> {
        let resp = self
            .send(self.request(Method::POST, url).json(body))
            .await?;
        read_json(resp).await
    }

    /// A PATCH with a JSON body, such as `update`.
    pub async fn patch_json<T: DeserializeOwned>(
        &self,
        url: Url,
        body: &impl Serialize,
    ) -> anyhow::Result<Json<T>> {
        let resp = self
            .send(self.request(Method::PATCH, url).json(body))
            .await?;
        read_json(resp).await
    }

    /// A POST without a body, such as `start`.
    pub async fn post_empty<T: DeserializeOwned>(&self, url: Url) -> anyhow::Result<Json<T>> {
        let resp = self.send(self.request(Method::POST, url)).await?;
        read_json(resp).await
    }

    pub async fn delete(&self, url: Url) -> anyhow::Result<()> {
        self.send(self.request(Method::DELETE, url)).await?;
        Ok(())
    }
}

async fn read_json<T: DeserializeOwned>(resp: Response) -> anyhow::Result<Json<T>> {
    let url = resp.url().clone();
    let raw = resp
        .bytes()
        .await
        .with_context(|| format!("cannot read the answer of {url}"))?;
    let value = serde_json::from_slice(&raw)
        .with_context(|| format!("the answer of {url} is not what this client expects"))?;
    Ok(Json { value, raw })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use token::TokenSource;

    fn client(url: &str) -> Client {
        Client::new(
            url,
            Token {
                value: Some("t".into()),
                source: TokenSource::Given,
            },
        )
        .unwrap()
    }

    #[test]
    fn references_are_one_path_segment() {
        assert_eq!(
            encode_segment("localhost:5000/busybox:1"),
            "localhost%3A5000%2Fbusybox%3A1"
        );
        assert_eq!(encode_segment("web-1"), "web-1");
        let c = client("http://127.0.0.1:7070");
        assert_eq!(
            c.api_url(&["images", "localhost:5000/busybox:1"]).as_str(),
            "http://127.0.0.1:7070/api/v1/images/localhost%3A5000%2Fbusybox%3A1"
        );
    }

    #[test]
    fn a_base_path_is_kept() {
        let c = client("https://example.com/devbox/");
        assert_eq!(
            c.api_url(&["devboxes", "web", "start"]).as_str(),
            "https://example.com/devbox/api/v1/devboxes/web/start"
        );
        assert_eq!(
            c.url("/healthz").as_str(),
            "https://example.com/devbox/healthz"
        );
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        for bad in ["127.0.0.1:7070", "ftp://host", "nonsense", "http://"] {
            let e = Client::new(
                bad,
                Token {
                    value: None,
                    source: TokenSource::Given,
                },
            )
            .unwrap_err();
            assert_eq!(error::exit_code(&e), error::EXIT_USAGE, "{bad}");
            assert!(e.to_string().contains("invalid server URL"), "{e}");
        }
    }
}
