//! Commits through the real server: live commits, history, stop commits,
//! rollback, fork, diff, relaunch from the image store alone, and what
//! real peers make of the images.

use reqwest::Method;
use serde_json::{Value, json};

use super::harness::Server;

/// Runs a shell command in the devbox and returns its standard output.
fn sh(s: &Server, name: &str, cmd: &str) -> String {
    s.ok(&["exec", name, "--", "sh", "-c", cmd])
}

async fn commit(s: &Server, name: &str, message: &str) -> Value {
    let (status, body) = s
        .api(
            Method::POST,
            &format!("/devboxes/{name}/commits"),
            Some(json!({ "message": message })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn history(s: &Server, name: &str) -> Vec<Value> {
    let (status, body) = s
        .api(Method::GET, &format!("/devboxes/{name}/commits"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

/// A listing of the devbox's own files (outside the runtime's mounts), with
/// types, modes and contents, to compare two views of one tree.
const TREE: &str = "cd / && find root etc srv -xdev 2>/dev/null | sort | while read f; do \
     if [ -L \"$f\" ]; then echo \"L $f -> $(readlink \"$f\")\"; \
     elif [ -d \"$f\" ]; then echo \"D $f $(stat -c %a \"$f\")\"; \
     else echo \"F $f $(stat -c %a \"$f\") $(md5sum < \"$f\")\"; fi; done";

#[tokio::test(flavor = "multi_thread")]
async fn commits_keep_history_and_stops_commit_and_starts_run_from_the_latest() {
    let s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "dev", "--image", "base:1"]);
    s.ok(&["start", "dev"]);
    sh(&s, "dev", "echo v1 > /root/state; mkdir -p /srv/app /tmp; echo scratch > /tmp/x");

    let c1 = commit(&s, "dev", "first").await;
    assert_eq!(c1["trigger"], "manual");
    assert!(c1["digest"].as_str().unwrap().starts_with("sha256:"), "{c1}");
    assert_eq!(s.json(&["show", "dev", "--json"])["state"], "running", "live: it runs on");

    // What changed since, as the next commit would hold it.
    sh(&s, "dev", "echo v2 > /root/state; rm -r /srv/app; echo new > /root/new");
    let (_, diff) = s.api(Method::GET, "/devboxes/dev/diff", None).await;
    let paths: Vec<(&str, &str)> = diff["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["change"].as_str().unwrap()))
        .collect();
    for want in [("/root/state", "modified"), ("/root/new", "added"), ("/srv/app", "deleted")] {
        assert!(paths.contains(&want), "{want:?} missing from {diff}");
    }
    assert!(
        diff["ignored"].as_array().unwrap().iter().any(|e| e["path"] == "/tmp"),
        "{diff}"
    );
    assert_eq!(diff["since"], c1["id"]);

    // Stop commits; start runs from the latest commit.
    s.ok(&["stop", "dev"]);
    let h = history(&s, "dev").await;
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h[0]["trigger"], "stop");
    assert_eq!(h[0]["head"], true);
    assert_eq!(h[1]["id"], c1["id"], "newest first");
    for field in ["id", "created_at", "trigger", "message", "digest", "layer_size"] {
        assert!(!h[0][field].is_null(), "{field} missing: {}", h[0]);
    }
    s.ok(&["start", "dev"]);
    assert_eq!(sh(&s, "dev", "cat /root/state /root/new; test -e /srv/app || echo gone; test -e /tmp/x || echo tmp-clean"),
        "v2\nnew\ngone\ntmp-clean\n");

    // Rollback: the devbox restarts from the first commit; later ones stay.
    let (status, rolled) = s
        .api(Method::POST, "/devboxes/dev/rollback", Some(json!({ "commit": c1["id"] })))
        .await;
    assert_eq!(status, 200, "{rolled}");
    assert_eq!(rolled["state"], "running");
    assert_eq!(sh(&s, "dev", "cat /root/state; test -e /root/new || echo no-new"), "v1\nno-new\n");
    // Nothing changed in that run, so its stop made no commit; the later
    // commit stays in the history while the head is the first one.
    let h = history(&s, "dev").await;
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h.iter().find(|c| c["head"] == true).unwrap()["id"], c1["id"]);
    assert_eq!(h[0]["trigger"], "stop", "the later commit stays");
    // A commit made now goes on top of the first one.
    sh(&s, "dev", "echo branch > /root/branch");
    let c3 = commit(&s, "dev", "on the first").await;
    assert_eq!(history(&s, "dev").await[0]["parent"], c1["id"], "{c3}");

    // Fork: another devbox from the first commit.
    s.ok(&["stop", "dev"]);
    let (status, fork) = s
        .api(
            Method::POST,
            "/devboxes",
            Some(json!({ "name": "dev2", "from": format!("dev@{}", c1["id"].as_str().unwrap()) })),
        )
        .await;
    assert_eq!(status, 201, "{fork}");
    s.ok(&["start", "dev2"]);
    assert_eq!(sh(&s, "dev2", "cat /root/state"), "v1\n");
    s.ok(&["rm", "dev2"]);
    s.ok(&["rm", "dev"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_devbox_relaunches_from_the_image_store_alone() {
    let mut s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "dev", "--image", "base:1"]);
    s.ok(&["start", "dev"]);
    sh(&s, "dev", "mkdir -p /srv/data; dd if=/dev/urandom of=/srv/data/blob bs=1k count=512 2>/dev/null; \
        echo hello > /root/hello; ln -s /root/hello /root/link; ln /root/hello /root/hard; chmod 640 /root/hello; rm -rf /etc/os-release");
    let before = sh(&s, "dev", TREE);
    commit(&s, "dev", "live").await;
    sh(&s, "dev", "echo later > /root/later");
    s.ok(&["stop", "dev"]);

    // As a node that never saw the devbox: no layers, no upper directory.
    s.kill9();
    let runtime = s.data.path().join("runtime");
    for dir in ["layers", "devboxes"] {
        let path = runtime.join(dir);
        if path.exists() {
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
    s.spawn();
    s.ok(&["start", "dev"]);
    let after = sh(&s, "dev", TREE);
    assert_eq!(sh(&s, "dev", "cat /root/later; md5sum < /srv/data/blob | cut -c1-8; stat -c %a /root/hello; readlink /root/link; stat -c %h /root/hard; test -e /etc/os-release || echo gone"),
        format!("later\n{}\n640\n/root/hello\n2\ngone\n", &sh(&s, "dev", "md5sum < /srv/data/blob | cut -c1-8").trim()));
    let trees_agree = after
        .lines()
        .filter(|l| !l.contains("root/later"))
        .eq(before.lines().filter(|l| !l.contains("root/later")));
    assert!(trees_agree, "before:\n{before}\nafter:\n{after}");
    s.ok(&["rm", "dev"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_commit_requests_get_precise_errors_and_change_nothing() {
    let s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "dev", "--image", "base:1"]);
    s.ok(&["create", "other", "--image", "base:1"]);

    let (status, body) = s
        .api(Method::POST, "/devboxes/dev/commits", Some(json!({})))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("nothing to commit"), "{body}");
    let (status, _) = s
        .api(Method::POST, "/devboxes/ghost/commits", Some(json!({})))
        .await;
    assert_eq!(status, 404);

    s.ok(&["start", "other"]);
    let theirs = commit(&s, "other", "theirs").await;
    let (status, body) = s
        .api(Method::POST, "/devboxes/dev/rollback", Some(json!({ "commit": theirs["id"] })))
        .await;
    assert_eq!(status, 404, "another devbox's commit: {body}");
    let (status, body) = s
        .api(Method::POST, "/devboxes/dev/rollback", Some(json!({ "commit": "0123456789abcdef" })))
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("devbox history dev"), "{body}");

    let (status, body) = s
        .api(Method::POST, "/devboxes", Some(json!({ "name": "fork", "from": "ghost" })))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = s
        .api(
            Method::POST,
            "/devboxes",
            Some(json!({ "name": "fork", "image": "base:1", "commit_exclude": ["/a/[b"] })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("/a/[b"), "{body}");
    let list = s.json(&["ls", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "nothing was created: {list}");
    assert!(history(&s, "dev").await.is_empty());
    s.ok(&["rm", "other"]);
    s.ok(&["rm", "dev"]);
}
