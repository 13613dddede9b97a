//! A scripted distribution registry for cases the reference registry cannot
//! produce: the Docker token flow, corrupt blobs, image indexes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use devbox_image::ImageStore;
use devbox_layer::digest::Digest;

use crate::common::r;

/// The token the fake token service hands out.
const TOKEN: &str = "good-token";

#[derive(Default)]
pub struct FakeState {
    /// `Some((user, password))`: every `/v2/` request needs a Bearer token,
    /// which `/token` gives for these Basic credentials.
    pub bearer: Option<(String, String)>,
    pub addr: String,
    /// Keyed by repository and then tag or digest.
    pub manifests: Mutex<HashMap<String, (String, Vec<u8>)>>,
    pub blobs: Mutex<HashMap<String, Vec<u8>>>,
    /// Blobs served with one byte flipped.
    pub corrupt: Mutex<HashSet<String>>,
    pub token_queries: Mutex<Vec<String>>,
    pub blob_requests: Mutex<Vec<String>>,
}

pub struct FakeRegistry {
    pub addr: String,
    pub state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeRegistry {
    pub async fn start(bearer: Option<(&str, &str)>) -> FakeRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(FakeState {
            bearer: bearer.map(|(u, p)| (u.to_owned(), p.to_owned())),
            addr: addr.clone(),
            ..Default::default()
        });
        let app = Router::new()
            .route("/token", get(token))
            .route("/v2/", get(root))
            .route("/v2/{*rest}", get(v2))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeRegistry {
            addr,
            state,
            server,
        }
    }

    pub fn add_manifest(&self, repo: &str, reference: &str, media_type: &str, content: &[u8]) {
        self.state.manifests.lock().unwrap().insert(
            format!("{repo}/{reference}"),
            (media_type.to_owned(), content.to_vec()),
        );
    }

    pub fn add_blob(&self, content: &[u8]) -> Digest {
        let d = Digest::of(content);
        self.state
            .blobs
            .lock()
            .unwrap()
            .insert(d.to_string(), content.to_vec());
        d
    }

    /// Serves an image of `store` as `repo:tag` (and by digest). Returns
    /// the manifest digest, config bytes and manifest bytes.
    pub async fn serve_image(
        &self,
        store: &ImageStore,
        reference: &str,
        repo: &str,
        tag: &str,
    ) -> (Digest, Vec<u8>, Vec<u8>) {
        let resolved = store.resolve(&r(reference)).await.unwrap();
        let m = store
            .metadata()
            .get_manifest(&resolved.digest)
            .await
            .unwrap()
            .unwrap();
        let config = store
            .blobs()
            .read_blob(&m.config_digest, 1 << 24)
            .await
            .unwrap();
        self.add_blob(&config);
        for l in &resolved.layers {
            let bytes = store.blobs().read_blob(&l.digest, 1 << 30).await.unwrap();
            self.add_blob(&bytes);
        }
        self.add_manifest(repo, tag, &m.media_type, &m.content);
        self.add_manifest(repo, m.digest.as_str(), &m.media_type, &m.content);
        (m.digest, config.to_vec(), m.content)
    }
}

async fn root(State(s): State<Arc<FakeState>>, headers: HeaderMap) -> Response {
    if let Some(denied) = check_auth(&s, &headers, "") {
        return denied;
    }
    StatusCode::OK.into_response()
}

fn check_auth(s: &FakeState, headers: &HeaderMap, repo: &str) -> Option<Response> {
    s.bearer.as_ref()?;
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if ok {
        return None;
    }
    let challenge = format!(
        r#"Bearer realm="http://{}/token",service="fake-registry",scope="repository:{repo}:pull""#,
        s.addr
    );
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
        )
            .into_response(),
    )
}

async fn token(
    State(s): State<Arc<FakeState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    s.token_queries
        .lock()
        .unwrap()
        .push(query.unwrap_or_default());
    let Some((user, password)) = &s.bearer else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    axum::Json(serde_json::json!({ "token": TOKEN, "expires_in": 300 })).into_response()
}

async fn v2(
    State(s): State<Arc<FakeState>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (repo, kind, reference) = if let Some((repo, r)) = rest.split_once("/manifests/") {
        (repo, "manifests", r)
    } else if let Some((repo, r)) = rest.split_once("/blobs/") {
        (repo, "blobs", r)
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(denied) = check_auth(&s, &headers, repo) {
        return denied;
    }
    if kind == "manifests" {
        let found = s
            .manifests
            .lock()
            .unwrap()
            .get(&format!("{repo}/{reference}"))
            .cloned();
        return match found {
            Some((media_type, content)) => (
                [
                    (header::CONTENT_TYPE, media_type),
                    (
                        header::HeaderName::from_static("docker-content-digest"),
                        Digest::of(&content).to_string(),
                    ),
                ],
                content,
            )
                .into_response(),
            None => (
                StatusCode::NOT_FOUND,
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#,
            )
                .into_response(),
        };
    }
    s.blob_requests.lock().unwrap().push(reference.to_owned());
    let Some(mut content) = s.blobs.lock().unwrap().get(reference).cloned() else {
        return (
            StatusCode::NOT_FOUND,
            r#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#,
        )
            .into_response();
    };
    if s.corrupt.lock().unwrap().contains(reference) {
        let mid = content.len() / 2;
        content[mid] ^= 0xff;
    }
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        content,
    )
        .into_response()
}
