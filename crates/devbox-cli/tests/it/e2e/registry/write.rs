//! The write side over plain HTTP: monolithic, chunked and resumed uploads,
//! mounts, manifests, indexes and referrers pushed, deletes, and bad input
//! that is refused with the spec's codes and leaves nothing visible.

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use serde_json::json;

use super::super::harness::Server;
use super::{Moto, spec_error};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn digest(bytes: &[u8]) -> String {
    devbox_layer::digest::Digest::of(bytes).to_string()
}

struct Reg {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Reg {
    fn new(s: &Server) -> Self {
        Reg {
            client: reqwest::Client::new(),
            base: s.url.clone(),
            token: s.token(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.client
            .request(method, url)
            .basic_auth("anyone", Some(&self.token))
    }

    /// Uploads a blob monolithically; its digest.
    async fn blob(&self, repo: &str, content: &[u8]) -> String {
        let d = digest(content);
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            )
            .body(content.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(resp.headers()["docker-content-digest"], d.as_str());
        assert_eq!(
            resp.headers()[LOCATION],
            format!("/v2/{repo}/blobs/{d}").as_str()
        );
        d
    }

    async fn head_blob(&self, repo: &str, d: &str) -> StatusCode {
        self.req(reqwest::Method::HEAD, &format!("/v2/{repo}/blobs/{d}"))
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> reqwest::Response {
        self.req(
            reqwest::Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
        )
        .header(CONTENT_TYPE, media_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
    }
}

fn desc(media_type: &str, d: &str, size: usize) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": d, "size": size})
}

/// Sends a PATCH whose body stops short of its Content-Length, then
/// closes the connection, as a client that dies mid-upload does.
fn truncated_patch(addr: &str, location: &str, token: &str, sent: &[u8], claimed: usize) {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let auth = base64_basic(token);
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nContent-Type: application/octet-stream\r\nContent-Length: {claimed}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(sent).unwrap();
    conn.flush().unwrap();
    // Give the server the bytes, then hang up without the rest.
    std::thread::sleep(Duration::from_millis(200));
    drop(conn);
}

fn base64_basic(token: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("x:{token}").into_bytes();
    let mut out = String::new();
    for c in raw.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_follow_the_spec_and_bad_input_leaves_nothing() {
    writes(&Server::start_with_env(
        &["--registry-max-blob-size", "1m"],
        &[],
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_follow_the_spec_and_bad_input_leaves_nothing_on_s3() {
    let s3 = Moto::start();
    writes(&s3.server_with(&["--registry-max-blob-size", "1m"])).await;
}

async fn writes(s: &Server) {
    let r = Reg::new(s);
    use reqwest::Method as M;

    // Monolithic: one POST with the digest.
    let small = r.blob("alice/app", b"monolithic").await;
    assert_eq!(r.head_blob("alice/app", &small).await, StatusCode::OK);

    // Chunked: POST, PATCH with ranges, a status, PUT with the last chunk.
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let d = digest(&content);
    let resp = r
        .req(M::POST, "/v2/alice/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(resp.headers()[RANGE], "0-0");
    let id = resp.headers()["docker-upload-uuid"]
        .to_str()
        .unwrap()
        .to_owned();
    let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(location, format!("/v2/alice/app/blobs/uploads/{id}"));
    let resp = r
        .req(M::PATCH, &location)
        .header(CONTENT_RANGE, "0-99999")
        .body(content[..100_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(resp.headers()[RANGE], "0-99999");
    let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    // A chunk that does not continue the upload is refused and changes nothing.
    let resp = r
        .req(M::PATCH, &location)
        .header(CONTENT_RANGE, "5-9")
        .body(vec![0u8; 5])
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (416, "BLOB_UPLOAD_INVALID".into()));
    // A client that dies mid-chunk: what arrived is kept, nothing is visible,
    // and the upload resumes where its status says.
    truncated_patch(
        &s.listen,
        &location,
        &r.token,
        &content[100_000..150_000],
        100_000,
    );
    let status = r.req(M::GET, &location).send().await.unwrap();
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    let held = status.headers()[RANGE].to_str().unwrap().to_owned();
    let next: usize = held.strip_prefix("0-").unwrap().parse::<usize>().unwrap() + 1;
    assert!((100_000..=150_000).contains(&next), "{held}");
    assert_eq!(r.head_blob("alice/app", &d).await, StatusCode::NOT_FOUND);
    let resp = r
        .req(M::PATCH, &location)
        .header(CONTENT_RANGE, format!("{next}-{}", 199_999))
        .body(content[next..200_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = r
        .req(M::PUT, &format!("{location}?digest={d}"))
        .body(content[200_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["docker-content-digest"], d.as_str());
    let back = r
        .req(M::GET, &format!("/v2/alice/app/blobs/{d}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(back == content, "the blob reads back differently");
    let resp = r.req(M::GET, &location).send().await.unwrap();
    assert_eq!(spec_error(resp).await, (404, "BLOB_UPLOAD_UNKNOWN".into()));

    // A wrong digest stores nothing, under either digest.
    let resp = r
        .req(M::POST, "/v2/alice/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    let claimed = digest(b"something else");
    let resp = r
        .req(M::PUT, &format!("{location}?digest={claimed}"))
        .body(b"what was sent".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (400, "DIGEST_INVALID".into()));
    assert_eq!(
        r.head_blob("alice/app", &claimed).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        r.head_blob("alice/app", &digest(b"what was sent")).await,
        StatusCode::NOT_FOUND
    );
    for bad in ["", "?digest=sha256:xyz"] {
        let resp = r
            .req(M::POST, "/v2/alice/app/blobs/uploads/")
            .send()
            .await
            .unwrap();
        let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
        let resp = r
            .req(M::PUT, &format!("{location}{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            spec_error(resp).await,
            (400, "DIGEST_INVALID".into()),
            "{bad}"
        );
        // Cancelled, the session is gone.
        let resp = r.req(M::DELETE, &location).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let resp = r.req(M::GET, &location).send().await.unwrap();
        assert_eq!(spec_error(resp).await, (404, "BLOB_UPLOAD_UNKNOWN".into()));
    }
    // A session belongs to its repository.
    let resp = r
        .req(M::POST, "/v2/alice/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["docker-upload-uuid"]
        .to_str()
        .unwrap()
        .to_owned();
    let resp = r
        .req(M::GET, &format!("/v2/bob/app/blobs/uploads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (404, "BLOB_UPLOAD_UNKNOWN".into()));
    // Larger than the server's limit, announced or not.
    let big = vec![7u8; 1 << 20 | 1];
    let resp = r
        .req(
            M::POST,
            &format!("/v2/alice/app/blobs/uploads/?digest={}", digest(&big)),
        )
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (413, "SIZE_INVALID".into()));
    let resp = r
        .req(M::POST, "/v2/alice/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    let chunked = futures::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let resp = r
        .req(M::PATCH, &location)
        .body(reqwest::Body::wrap_stream(chunked))
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (400, "SIZE_INVALID".into()));
    assert_eq!(
        r.head_blob("alice/app", &digest(&big)).await,
        StatusCode::NOT_FOUND
    );

    // A mount of a stored blob is immediate; of a missing one, an upload.
    let resp = r
        .req(
            M::POST,
            &format!("/v2/bob/app/blobs/uploads/?mount={d}&from=alice/app"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        resp.headers()[LOCATION],
        format!("/v2/bob/app/blobs/{d}").as_str()
    );
    let resp = r
        .req(
            M::POST,
            &format!(
                "/v2/bob/app/blobs/uploads/?mount={}&from=alice/app",
                digest(b"nope")
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(resp.headers().contains_key("docker-upload-uuid"));

    // Manifests: refused unless every blob they name is stored and their
    // media type is one the registry stores.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_d = r.blob("alice/app", config).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &config_d, config.len()),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", &d, content.len())],
    }))
    .unwrap();
    let manifest_d = digest(&manifest);
    let missing = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &config_d, config.len()),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", &digest(b"absent"), 6)],
    }))
    .unwrap();
    let resp = r
        .put_manifest("alice/app", "1", OCI_MANIFEST, &missing)
        .await;
    assert_eq!(
        spec_error(resp).await,
        (400, "MANIFEST_BLOB_UNKNOWN".into())
    );
    for (content_type, body, code) in [
        ("text/plain", &manifest[..], "MANIFEST_INVALID"),
        (DOCKER_MANIFEST, &manifest[..], "MANIFEST_INVALID"),
        (OCI_MANIFEST, b"not json", "MANIFEST_INVALID"),
        (OCI_MANIFEST, br#"{"schemaVersion":1}"#, "MANIFEST_INVALID"),
    ] {
        let resp = r.put_manifest("alice/app", "1", content_type, body).await;
        assert_eq!(
            spec_error(resp).await,
            (400, code.to_owned()),
            "{content_type}"
        );
    }
    let resp = r
        .put_manifest("alice/app", &digest(b"other"), OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(spec_error(resp).await, (400, "DIGEST_INVALID".into()));
    let resp = r
        .put_manifest("alice/app", "-x", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(spec_error(resp).await, (400, "TAG_INVALID".into()));
    let resp = r
        .req(M::GET, "/v2/alice/app/tags/list")
        .send()
        .await
        .unwrap();
    assert_eq!(
        spec_error(resp).await,
        (404, "NAME_UNKNOWN".into()),
        "nothing was stored"
    );

    let resp = r
        .put_manifest("alice/app", "1", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["docker-content-digest"], manifest_d.as_str());
    assert_eq!(
        resp.headers()[LOCATION],
        format!("/v2/alice/app/manifests/{manifest_d}").as_str()
    );
    let resp = r
        .put_manifest("alice/app", &manifest_d, OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    // A Docker schema 2 manifest is served under its own media type.
    let docker = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": desc("application/vnd.docker.container.image.v1+json", &config_d, config.len()),
        "layers": [desc("application/vnd.docker.image.rootfs.diff.tar.gzip", &d, content.len())],
    }))
    .unwrap();
    let resp = r
        .put_manifest("alice/app", "docker", DOCKER_MANIFEST, &docker)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Indexes and lists need the repository to hold what they name.
    for (media_type, child_type, tag) in [
        (OCI_INDEX, OCI_MANIFEST, "multi"),
        (DOCKER_LIST, DOCKER_MANIFEST, "list"),
    ] {
        let child = if child_type == OCI_MANIFEST {
            &manifest
        } else {
            &docker
        };
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [{"mediaType": child_type, "digest": digest(child), "size": child.len(),
                           "platform": {"architecture": "amd64", "os": "linux"}}],
        }))
        .unwrap();
        let resp = r.put_manifest("bob/app", tag, media_type, &index).await;
        assert_eq!(
            spec_error(resp).await,
            (400, "MANIFEST_BLOB_UNKNOWN".into()),
            "{media_type}"
        );
        let resp = r.put_manifest("alice/app", tag, media_type, &index).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{media_type}");
        let resp = r
            .req(M::GET, &format!("/v2/alice/app/manifests/{tag}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()[CONTENT_TYPE], media_type);
        assert_eq!(resp.bytes().await.unwrap(), index);
    }

    // Referrers: a manifest naming another as its subject.
    let sig = r.blob("alice/app", b"signature").await;
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": desc("application/vnd.oci.empty.v1+json", &r.blob("alice/app", b"{}").await, 2),
        "layers": [desc("application/vnd.example.signature", &sig, 9)],
        "subject": desc(OCI_MANIFEST, &manifest_d, manifest.len()),
        "annotations": {"org.example.note": "signed"},
    }))
    .unwrap();
    let referrer_d = digest(&referrer);
    let resp = r
        .put_manifest("alice/app", &referrer_d, OCI_MANIFEST, &referrer)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["oci-subject"], manifest_d.as_str());
    let index: serde_json::Value = r
        .req(M::GET, &format!("/v2/alice/app/referrers/{manifest_d}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    assert_eq!(index["manifests"][0]["digest"], referrer_d.as_str());
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.example.signature"
    );
    assert_eq!(
        index["manifests"][0]["annotations"]["org.example.note"],
        "signed"
    );
    let resp = r
        .req(
            M::GET,
            &format!("/v2/alice/app/referrers/{manifest_d}?artifactType=application/other"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["oci-filters-applied"], "artifactType");
    let filtered: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(filtered["manifests"], json!([]));

    // Deletes: a blob a manifest names stays; tags and manifests go.
    let resp = r
        .req(M::DELETE, &format!("/v2/alice/app/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (405, "UNSUPPORTED".into()));
    assert_eq!(r.head_blob("alice/app", &d).await, StatusCode::OK);
    let resp = r
        .req(M::DELETE, &format!("/v2/alice/app/blobs/{small}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.head_blob("alice/app", &small).await,
        StatusCode::NOT_FOUND
    );
    let resp = r
        .req(M::DELETE, "/v2/alice/app/manifests/docker")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let tags: serde_json::Value = r
        .req(M::GET, "/v2/alice/app/tags/list")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["1", "list", "multi"]));
    let resp = r
        .req(M::DELETE, &format!("/v2/alice/app/manifests/{referrer_d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = r
        .req(M::GET, &format!("/v2/alice/app/manifests/{referrer_d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (404, "MANIFEST_UNKNOWN".into()));
    let resp = r
        .req(M::DELETE, &format!("/v2/alice/app/manifests/{referrer_d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (404, "MANIFEST_UNKNOWN".into()));

    // A token for pulls cannot push.
    let token: serde_json::Value = r
        .req(
            M::GET,
            "/v2/token?service=x&scope=repository:alice/app:pull",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/v2/alice/app/blobs/uploads/", s.url))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("scope=\"repository:alice/app:pull,push\""),
        "{challenge}"
    );
    assert_eq!(spec_error(resp).await, (401, "UNAUTHORIZED".into()));
    let resp = reqwest::Client::new()
        .put(format!("{}/v2/alice/app/manifests/2", s.url))
        .header(CONTENT_TYPE, OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (401, "UNAUTHORIZED".into()));

    // Nothing spooled is left behind by all of the above but the two open sessions.
    let spool = s.data.path().join("images/tmp/uploads");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_upload_expires_with_its_spool_file() {
    let s = Server::start_with_env(&["--registry-upload-timeout", "1"], &[]);
    let r = Reg::new(&s);
    let resp = r
        .req(reqwest::Method::POST, "/v2/alice/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    let resp = r
        .req(reqwest::Method::PATCH, &location)
        .body(vec![1u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let spool = s.data.path().join("images/tmp/uploads");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 1);
    // Watched from outside: asking the session would keep it alive.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&spool).unwrap().count() > 0 {
        assert!(Instant::now() < deadline, "the upload did not expire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resp = r.req(reqwest::Method::GET, &location).send().await.unwrap();
    assert_eq!(spec_error(resp).await, (404, "BLOB_UPLOAD_UNKNOWN".into()));
}
