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
    sh(
        &s,
        "dev",
        "echo v1 > /root/state; mkdir -p /srv/app /tmp; echo scratch > /tmp/x",
    );

    let c1 = commit(&s, "dev", "first").await;
    assert_eq!(c1["trigger"], "manual");
    assert!(
        c1["digest"].as_str().unwrap().starts_with("sha256:"),
        "{c1}"
    );
    assert_eq!(
        s.json(&["show", "dev", "--json"])["state"],
        "running",
        "live: it runs on"
    );

    // What changed since, as the next commit would hold it.
    sh(
        &s,
        "dev",
        "echo v2 > /root/state; rm -r /srv/app; echo new > /root/new",
    );
    let (_, diff) = s.api(Method::GET, "/devboxes/dev/diff", None).await;
    let paths: Vec<(&str, &str)> = diff["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["change"].as_str().unwrap()))
        .collect();
    for want in [
        ("/root/state", "modified"),
        ("/root/new", "added"),
        ("/srv/app", "deleted"),
    ] {
        assert!(paths.contains(&want), "{want:?} missing from {diff}");
    }
    assert!(
        diff["ignored"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/tmp"),
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
    for field in [
        "id",
        "created_at",
        "trigger",
        "message",
        "digest",
        "layer_size",
    ] {
        assert!(!h[0][field].is_null(), "{field} missing: {}", h[0]);
    }
    s.ok(&["start", "dev"]);
    assert_eq!(
        sh(
            &s,
            "dev",
            "cat /root/state /root/new; test -e /srv/app || echo gone; test -e /tmp/x || echo tmp-clean"
        ),
        "v2\nnew\ngone\ntmp-clean\n"
    );

    // Rollback: the devbox restarts from the first commit; later ones stay.
    let (status, rolled) = s
        .api(
            Method::POST,
            "/devboxes/dev/rollback",
            Some(json!({ "commit": c1["id"] })),
        )
        .await;
    assert_eq!(status, 200, "{rolled}");
    assert_eq!(rolled["state"], "running");
    assert_eq!(
        sh(
            &s,
            "dev",
            "cat /root/state; test -e /root/new || echo no-new"
        ),
        "v1\nno-new\n"
    );
    // Nothing changed in that run, so its stop made no commit; the later
    // commit stays in the history while the head is the first one.
    let h = history(&s, "dev").await;
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(
        h.iter().find(|c| c["head"] == true).unwrap()["id"],
        c1["id"]
    );
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
    sh(
        &s,
        "dev",
        "mkdir -p /srv/data; dd if=/dev/urandom of=/srv/data/blob bs=1k count=512 2>/dev/null; \
        echo hello > /root/hello; ln -s /root/hello /root/link; ln /root/hello /root/hard; chmod 640 /root/hello; rm -rf /etc/os-release",
    );
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
    assert_eq!(
        sh(
            &s,
            "dev",
            "cat /root/later; md5sum < /srv/data/blob | cut -c1-8; stat -c %a /root/hello; readlink /root/link; stat -c %h /root/hard; test -e /etc/os-release || echo gone"
        ),
        format!(
            "later\n{}\n640\n/root/hello\n2\ngone\n",
            &sh(&s, "dev", "md5sum < /srv/data/blob | cut -c1-8").trim()
        )
    );
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
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing to commit"),
        "{body}"
    );
    let (status, _) = s
        .api(Method::POST, "/devboxes/ghost/commits", Some(json!({})))
        .await;
    assert_eq!(status, 404);

    s.ok(&["start", "other"]);
    let theirs = commit(&s, "other", "theirs").await;
    let (status, body) = s
        .api(
            Method::POST,
            "/devboxes/dev/rollback",
            Some(json!({ "commit": theirs["id"] })),
        )
        .await;
    assert_eq!(status, 404, "another devbox's commit: {body}");
    let (status, body) = s
        .api(
            Method::POST,
            "/devboxes/dev/rollback",
            Some(json!({ "commit": "0123456789abcdef" })),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("devbox history dev"),
        "{body}"
    );

    let (status, body) = s
        .api(
            Method::POST,
            "/devboxes",
            Some(json!({ "name": "fork", "from": "ghost" })),
        )
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
    assert!(
        body["error"]["message"].as_str().unwrap().contains("/a/[b"),
        "{body}"
    );
    let list = s.json(&["ls", "--json"]);
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "nothing was created: {list}"
    );
    assert!(history(&s, "dev").await.is_empty());
    s.ok(&["rm", "other"]);
    s.ok(&["rm", "dev"]);
}

/// Writes the image `digest` of the server's store as an OCI image layout
/// at `dir`, tagged `tag`, from the manifest in its database and the blobs
/// on its disk, exactly as stored.
async fn export_layout(s: &Server, digest: &str, dir: &std::path::Path, tag: &str) {
    use devbox_store::ImageMetadata;
    let store = devbox_store::SqliteStore::open(&s.data.path().join("devbox.db")).unwrap();
    let m = store
        .get_manifest(&digest.parse().unwrap())
        .await
        .unwrap()
        .expect("the commit's manifest is stored");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(m.digest.hex()), &m.content).unwrap();
    let manifest: Value = serde_json::from_slice(&m.content).unwrap();
    let mut wanted = vec![manifest["config"]["digest"].as_str().unwrap().to_owned()];
    for l in manifest["layers"].as_array().unwrap() {
        wanted.push(l["digest"].as_str().unwrap().to_owned());
    }
    for d in wanted {
        let hex = d.strip_prefix("sha256:").unwrap();
        std::fs::copy(
            s.data.path().join("images/blobs/sha256").join(hex),
            blobs.join(hex),
        )
        .unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": m.media_type,
            "digest": m.digest.to_string(),
            "size": m.content.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn umoci_and_skopeo_read_a_commit_as_the_devbox_sees_it() {
    super::harness::require_tool("umoci", "umoci");
    super::harness::require_tool("skopeo", "skopeo");
    let s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "dev", "--image", "base:1"]);
    s.ok(&["start", "dev"]);
    sh(
        &s,
        "dev",
        "mkdir -p /srv/keep /srv/gone; echo a > /srv/keep/a; echo b > /srv/gone/b",
    );
    commit(&s, "dev", "one").await;
    // A deletion across commits, a lower directory replaced, a symlink.
    sh(
        &s,
        "dev",
        "rm -r /srv/gone; rm -rf /etc; mkdir /etc; echo fresh > /etc/fresh; ln -s /srv/keep/a /root/link",
    );
    s.ok(&["stop", "dev"]);
    let head = history(&s, "dev").await[0].clone();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    export_layout(&s, head["digest"].as_str().unwrap(), &layout, "head").await;

    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", &format!("oci:{}:head", layout.display())])
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let info: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(info["Layers"].as_array().unwrap().len(), 3, "{info}");

    let bundle = work.path().join("bundle");
    let unpack = std::process::Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:head", layout.display())])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        unpack.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("srv/keep/a")).unwrap(),
        "a\n"
    );
    assert!(
        !rootfs.join("srv/gone").exists(),
        "a deletion across commits is a whiteout"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/fresh")).unwrap(),
        "fresh\n"
    );
    assert!(
        !rootfs.join("etc/os-release").exists(),
        "the replaced directory is opaque"
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("root/link")).unwrap(),
        std::path::Path::new("/srv/keep/a")
    );
    s.ok(&["rm", "dev"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_in_the_middle_of_a_commit_keeps_the_previous_one() {
    let mut s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "dev", "--image", "base:1"]);
    s.ok(&["start", "dev"]);
    sh(&s, "dev", "echo kept > /root/kept");
    let first = commit(&s, "dev", "before").await;
    sh(
        &s,
        "dev",
        "mkdir -p /srv && dd if=/dev/urandom of=/srv/big bs=1M count=200 2>/dev/null",
    );

    // A large commit, and a SIGKILL while it runs.
    let url = format!("{}/api/v1/devboxes/dev/commits", s.url);
    let client = s.http();
    let inflight = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({ "message": "large" }))
            .send()
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.kill9();
    let _ = inflight.await;
    s.spawn();

    let h = history(&s, "dev").await;
    assert_eq!(
        h.iter().find(|c| c["head"] == true).unwrap()["id"],
        h[0]["id"]
    );
    if h.len() == 1 {
        assert_eq!(h[0]["id"], first["id"], "the previous commit is the latest");
    }
    // The devbox is usable, and nothing committed is lost.
    assert_eq!(s.json(&["show", "dev", "--json"])["state"], "running");
    assert_eq!(sh(&s, "dev", "cat /root/kept"), "kept\n");
    s.ok(&["stop", "dev"]);
    s.ok(&["start", "dev"]);
    assert_eq!(
        sh(&s, "dev", "cat /root/kept; stat -c %s /srv/big"),
        "kept\n209715200\n"
    );
    s.ok(&["rm", "dev"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn old_commits_are_reclaimed_by_gc_and_merges_keep_the_tree() {
    let s = Server::start_with(&[
        "--keep-commits",
        "1",
        "--squash-after",
        "2",
        "--gc-grace",
        "0s",
    ]);
    s.import_busybox("base:1");
    s.ok(&["create", "dev", "--image", "base:1"]);
    // Four runs, each changing files and stopping (which commits).
    for i in 0..4 {
        s.ok(&["start", "dev"]);
        sh(
            &s,
            "dev",
            &format!(
                "mkdir -p /srv; dd if=/dev/urandom of=/srv/f{i} bs=1k count=256 2>/dev/null; echo {i} > /root/run; rm -f /srv/f{}",
                i.max(1) - 1
            ),
        );
        s.ok(&["stop", "dev"]);
    }
    s.ok(&["start", "dev"]);
    let before = sh(&s, "dev", TREE);
    s.ok(&["stop", "dev"]);

    // The merge runs on its own once the devbox is stopped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let merged = loop {
        let h = history(&s, "dev").await;
        if h.iter().any(|c| !c["merged_into"].is_null()) {
            break h;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no merge happened: {h:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert_eq!(
        merged.len(),
        4,
        "every commit stays in the history: {merged:?}"
    );
    s.ok(&["start", "dev"]);
    let after = sh(&s, "dev", TREE);
    assert_eq!(before, after, "the merged image has the same tree");
    s.ok(&["stop", "dev"]);

    // Retention keeps the last commit's image (merged, it holds every layer
    // it needs); gc reclaims the older commits' images and their layers.
    let blobs = || {
        std::fs::read_dir(s.data.path().join("images/blobs/sha256"))
            .unwrap()
            .count()
    };
    let blobs_before = blobs();
    let (status, dry) = s
        .api(Method::POST, "/gc", Some(json!({ "dry_run": true })))
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["commits_expired"], 3, "{dry}");
    let (_, report) = s.api(Method::POST, "/gc", Some(json!({}))).await;
    assert_eq!(report["commits_expired"], 3, "{report}");
    let (_, again) = s.api(Method::POST, "/gc", Some(json!({}))).await;
    let h = history(&s, "dev").await;
    assert_eq!(h.len(), 4, "{h:?}");
    assert!(h[1..].iter().all(|c| c["digest"].is_null()), "{h:?}");
    assert!(!h[0]["digest"].is_null(), "the head is kept");
    assert_eq!(again["commits_expired"], 0, "{again}");
    let reclaimed = report["blob_bytes"].as_u64().unwrap() + again["blob_bytes"].as_u64().unwrap();
    assert!(
        reclaimed > 512 * 1024,
        "the old layers' bytes are reclaimed: {report} {again}"
    );
    assert!(
        blobs() < blobs_before,
        "{} blobs, {} before",
        blobs(),
        blobs_before
    );
    // Rolling back to a reclaimed commit says why it cannot.
    let (status, body) = s
        .api(
            Method::POST,
            "/devboxes/dev/rollback",
            Some(json!({ "commit": h[3]["id"] })),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retention"),
        "{body}"
    );
    s.ok(&["start", "dev"]);
    assert_eq!(
        sh(&s, "dev", "cat /root/run"),
        "3\n",
        "nothing the head needs was collected"
    );
    s.ok(&["rm", "dev"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_commits_happen_when_something_changed_and_consistent_commits_freeze() {
    let s = Server::start();
    s.import_busybox("base:1");
    let (status, body) = s
        .api(
            Method::POST,
            "/devboxes",
            Some(json!({ "name": "dev", "image": "base:1", "auto_commit": 1 })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["auto_commit"], 1);
    s.ok(&["start", "dev"]);
    sh(&s, "dev", "echo auto > /root/auto");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while history(&s, "dev").await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no auto-commit came");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let h = history(&s, "dev").await;
    assert_eq!(h[0]["trigger"], "auto");
    // Nothing changed since: no more auto-commits.
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    assert_eq!(history(&s, "dev").await.len(), h.len());

    let (status, c) = s
        .api(
            Method::POST,
            "/devboxes/dev/commits",
            Some(json!({ "message": "frozen", "consistent": true, "pin": true })),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["pinned"], true);
    assert_eq!(
        sh(&s, "dev", "echo thawed"),
        "thawed\n",
        "the devbox runs on after a consistent commit"
    );
    s.ok(&["rm", "dev"]);
}
