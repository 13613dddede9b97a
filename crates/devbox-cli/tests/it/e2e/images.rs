//! Import and pull failures as a user meets them: errors found before the
//! progress stream starts get their own HTTP status, later ones end the
//! stream; a full disk on the server is reported as the server saw it.

use std::process::Command;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::harness::Server;

async fn expect_json_error(resp: reqwest::Response, status: StatusCode, code: &str) -> String {
    let got = resp.status();
    let kind = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    assert!(kind.starts_with("application/json"), "{kind}: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A rootfs tarball with an entry that climbs out of its root.
fn hostile_rootfs() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = b"owned\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    let name = b"../escape";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
    b.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_found_before_the_stream_get_their_status_and_later_ones_end_it() {
    let s = Server::start();
    let api = format!("{}/api/v1", s.url);
    let http = s.http();
    let import = |name: &str, source: &str, body: Vec<u8>| {
        http.post(format!("{api}/images/import"))
            .query(&[("name", name), ("source", source)])
            .body(body)
            .send()
    };

    // Not an archive of any kind: refused before any progress.
    let r = import("junk:1", "./junk.bin", vec![0x55; 3000])
        .await
        .unwrap();
    let msg = expect_json_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert!(
        msg.contains("(from ./junk.bin)") && msg.contains("tar"),
        "{msg}"
    );
    assert!(
        !msg.contains("upload-"),
        "the spool file is not the user's: {msg}"
    );

    // A registry that is not running.
    let nowhere = format!("127.0.0.1:{}/busybox:1", free_port());
    let r = http
        .post(format!("{api}/images/pull"))
        .json(&json!({ "reference": nowhere }))
        .send()
        .await
        .unwrap();
    let msg = expect_json_error(r, StatusCode::BAD_GATEWAY, "upstream").await;
    assert!(msg.contains("connection refused"), "{msg}");

    // A plain-HTTP registry (the server itself answers plain HTTP) without --insecure.
    let plain = format!("{}/busybox:1", s.listen);
    let r = http
        .post(format!("{api}/images/pull"))
        .json(&json!({ "reference": plain }))
        .send()
        .await
        .unwrap();
    let msg = expect_json_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert!(
        msg.contains("plain HTTP") && msg.contains("--insecure"),
        "{msg}"
    );

    // With --insecure it is reached: its registry refuses an anonymous
    // pull, and with a token has no such manifest.
    let r = http
        .post(format!("{api}/images/pull"))
        .json(&json!({ "reference": plain, "insecure": true }))
        .send()
        .await
        .unwrap();
    expect_json_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = http
        .post(format!("{api}/images/pull"))
        .json(&json!({ "reference": plain, "insecure": true, "username": "x", "password": s.token() }))
        .send()
        .await
        .unwrap();
    expect_json_error(r, StatusCode::NOT_FOUND, "not_found").await;

    // A hostile entry is found while converting: the stream has begun, and
    // its last event is the error.
    let r = import("evil:1", "./evil.tar", hostile_rootfs())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers().get(CONTENT_TYPE).unwrap(),
        "application/x-ndjson"
    );
    let text = r.text().await.unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "error", "{text}");
    assert_eq!(last["error"]["code"], "invalid_argument", "{text}");
    let msg = last["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("(from ./evil.tar)") && msg.contains("../escape"),
        "{msg}"
    );
    assert_eq!(s.json(&["image", "ls", "--json"]), json!([]));
}

/// A small tmpfs over the server's spool directory, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: std::path::PathBuf) -> Self {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "devbox-e2e-full"])
            .arg(&dir)
            .status()
            .expect("run mount (apt-get install mount)");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}",
            dir.display()
        );
        Self(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_reported_as_the_server_saw_it() {
    let s = Server::start();
    let _disk = SmallDisk::mount(s.data.path().join("tmp"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), vec![7u8; 4 << 20]).unwrap();

    let out = s.cli(&[
        "image",
        "import",
        dir.path().to_str().unwrap(),
        "--name",
        "big:1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!err.contains("upload stopped"), "{err}");
    assert!(
        !err.contains("cannot archive"),
        "the directory is fine: {err}"
    );

    let r = s
        .http()
        .post(format!("{}/api/v1/images/import", s.url))
        .query(&[("name", "big:2")])
        .body(vec![7u8; 4 << 20])
        .send()
        .await
        .unwrap();
    let msg = expect_json_error(r, StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage").await;
    assert!(msg.contains("No space left on device"), "{msg}");
    assert_eq!(s.json(&["image", "ls", "--json"]), json!([]));
}
