//! Bad input gets a precise 4xx and changes nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::harness::Server;

async fn expect(resp: reqwest::Response, status: StatusCode, code: &str, needle: &str) {
    let got = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_precise_errors_and_change_nothing() {
    let s = Server::start();
    s.import_busybox("base:1");
    let api = format!("{}/api/v1", s.url);
    let http = s.http();
    let anon = reqwest::Client::new();

    // Health and the OpenAPI document are public; everything else needs the token.
    assert_eq!(
        anon.get(format!("{}/healthz", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let doc: Value = anon
        .get(format!("{api}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/v1/devboxes"].is_object(), "{doc}");
    expect(
        anon.get(format!("{api}/devboxes")).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing bearer token",
    )
    .await;
    let wrong = anon
        .get(format!("{api}/devboxes"))
        .bearer_auth("dbx_wrong")
        .send()
        .await
        .unwrap();
    expect(
        wrong,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "invalid API token",
    )
    .await;

    let create = |body: Value| http.post(format!("{api}/devboxes")).json(&body).send();
    expect(
        create(json!({"name": "Web", "image": "base:1"}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "invalid devbox name \"Web\"",
    )
    .await;
    let long = "a".repeat(64);
    expect(
        create(json!({"name": long, "image": "base:1"}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "at most 63",
    )
    .await;
    expect(
        create(json!({"name": "web", "image": "nope:1"}))
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
        "image nope:1 not found",
    )
    .await;
    expect(
        create(json!({"name": "web", "image": "BAD"}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "invalid image reference",
    )
    .await;
    expect(
        create(json!({"name": "web", "image": "base:1", "cpus": 999}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "cpus must be between",
    )
    .await;
    expect(
        create(json!({"name": "web", "image": "base:1", "memory": 1}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "memory must be between",
    )
    .await;
    expect(
        create(json!({"name": "web", "image": "base:1", "env": ["1X=y"]}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "invalid environment variable",
    )
    .await;
    expect(
        create(json!({"name": "web", "image": "base:1", "cpu": 1}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "unknown field",
    )
    .await;

    let raw = |body: &'static str, ct: &'static str| {
        http.post(format!("{api}/devboxes"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    expect(
        raw("{", "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "invalid request body",
    )
    .await;
    expect(
        raw("{}", "text/plain").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Content-Type",
    )
    .await;
    let huge = format!(
        "{{\"name\":\"web\",\"image\":\"base:1\",\"env\":[\"A={}\"]}}",
        "x".repeat(2 << 20)
    );
    // The server answers 413 without reading the rest and closes the
    // connection, so this request gets a client of its own.
    let resp = s
        .http()
        .post(format!("{api}/devboxes"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    expect(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "").await;

    // Nothing was created by any of that.
    let list: Value = http
        .get(format!("{api}/devboxes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));

    assert_eq!(
        create(json!({"name": "web", "image": "base:1"}))
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    expect(
        create(json!({"name": "web", "image": "base:1"}))
            .await
            .unwrap(),
        StatusCode::CONFLICT,
        "already_exists",
        "devbox web already exists",
    )
    .await;

    for op in ["start", "stop", "restart"] {
        let r = http
            .post(format!("{api}/devboxes/ghost/{op}"))
            .send()
            .await
            .unwrap();
        expect(
            r,
            StatusCode::NOT_FOUND,
            "not_found",
            "devbox ghost not found",
        )
        .await;
    }
    expect(
        http.delete(format!("{api}/devboxes/ghost"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
        "devbox ghost not found",
    )
    .await;
    let r = http
        .post(format!("{api}/devboxes/web/exec"))
        .json(&json!({"cmd": ["true"]}))
        .send()
        .await
        .unwrap();
    expect(
        r,
        StatusCode::CONFLICT,
        "conflict",
        "devbox web is stopped, not running",
    )
    .await;
    expect(
        http.get(format!("{api}/nowhere")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
        "no route",
    )
    .await;

    // An image in use cannot lose its last name.
    let r = http
        .delete(format!("{api}/images/base%3A1"))
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::CONFLICT, "conflict", "used by devbox web").await;

    let list: Value = http
        .get(format!("{api}/devboxes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["state"], "stopped");
}

#[test]
fn a_hostile_archive_is_refused_and_nothing_is_stored() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let data = b"owned\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    // tar::Header::set_path refuses "..", so write the raw name bytes.
    let name = b"../../../../tmp/devbox-evil";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
    b.into_inner().unwrap();

    let out = s.cli(&[
        "image",
        "import",
        path.to_str().unwrap(),
        "--name",
        "evil:1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("devbox-evil"),
        "the error should name the entry: {err}"
    );
    assert!(!std::path::Path::new("/tmp/devbox-evil").exists());
    assert_eq!(s.json(&["image", "ls", "--json"]), json!([]));

    let out = s.cli(&[
        "image",
        "import",
        path.to_str().unwrap(),
        "--name",
        "Bad Name",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid image reference"));
}
