//! Releases through the real server: a running devbox committed and
//! published as a version, pulled and run by podman, kept past retention,
//! listed, refused with the right statuses, removed, and kept as images
//! when their devbox goes.

use reqwest::Method;
use serde_json::{Value, json};

use super::harness::Server;
use super::registry::{inspect_digest, podman, skopeo};

fn sh(s: &Server, name: &str, cmd: &str) -> String {
    s.ok(&["exec", name, "--", "sh", "-c", cmd])
}

fn history(s: &Server) -> Vec<Value> {
    s.json(&["history", "dev", "--json"])
        .as_array()
        .unwrap()
        .clone()
}

/// The CLI's exit code and standard error.
fn fails(s: &Server, args: &[&str]) -> (Option<i32>, String) {
    let out = s.cli(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs podman with the test's own storage, failing on a non-zero exit;
/// its standard output.
fn podman_ok(root: &std::path::Path, args: &[&str]) -> String {
    let out = podman(root, args);
    assert!(
        out.status.success(),
        "podman {args:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_commits_a_running_devbox_runs_in_podman_and_outlives_retention() {
    let s = Server::start_with(&["--keep-commits", "1", "--gc-grace", "0s"]);
    s.import_busybox("base:1");
    s.ok(&["create", "dev", "--image", "base:1"]);

    // Nothing to release before the first commit.
    let (code, err) = fails(&s, &["release", "dev", "v0"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("no commit to release"), "{err}");

    // A running devbox's changes are committed first, with trigger release.
    s.ok(&["start", "dev"]);
    sh(&s, "dev", "echo released > /root/hello");
    let r = s.json(&[
        "release",
        "dev",
        "v1.0",
        "--notes",
        "first release",
        "--json",
    ]);
    assert_eq!(r["version"], "v1.0");
    assert_eq!(r["reference"], "admin/dev:v1.0");
    assert_eq!(r["notes"], "first release");
    let digest = r["digest"].as_str().unwrap().to_owned();
    let released = r["commit"].as_str().unwrap().to_owned();
    let h = history(&s);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["id"], released.as_str());
    assert_eq!(h[0]["trigger"], "release");
    assert_eq!(h[0]["message"], "release v1.0");
    assert_eq!(h[0]["digest"], digest.as_str());

    let list = s.json(&["releases", "dev", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["version"], "v1.0");
    assert_eq!(list[0]["commit"], released.as_str());
    assert_eq!(list[0]["digest"], digest.as_str());
    assert!(list[0]["created_at"].is_string(), "{list}");
    let table = s.ok(&["releases", "dev"]);
    assert!(
        table.contains("v1.0") && table.contains(&released) && table.contains("first release"),
        "{table}"
    );

    // Registry clients get the same image.
    let creds = format!("x:{}", s.token());
    let image = format!("{}/admin/dev:v1.0", s.listen);
    assert_eq!(
        inspect_digest(&format!("docker://{image}"), Some(&creds)),
        digest
    );
    let storage = tempfile::tempdir().unwrap();
    podman_ok(
        storage.path(),
        &["pull", "--tls-verify=false", "--creds", &creds, &image],
    );
    let pulled = podman_ok(
        storage.path(),
        &["image", "inspect", "--format", "{{.Digest}}", &image],
    );
    assert_eq!(pulled.trim(), digest);
    let ran = podman_ok(
        storage.path(),
        &[
            // No systemd or journald is assumed on the test machine.
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--network",
            "none",
            "--ulimit",
            "nofile=10000:10000",
            "--ulimit",
            "nproc=10000:10000",
            &image,
            "cat",
            "/root/hello",
        ],
    );
    assert_eq!(ran, "released\n");

    // Refusals: each with its status and exit code, and no commit made.
    sh(&s, "dev", "echo more > /root/more");
    let (code, err) = fails(&s, &["release", "dev", "v1.0"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("release rm"), "{err}");
    assert_eq!(history(&s).len(), 1, "a refused release commits nothing");
    let (status, body) = s
        .api(
            Method::POST,
            "/devboxes/dev/releases",
            Some(json!({ "version": "v1.0" })),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("already_exists"))
    );
    for bad in ["0123456789abcdef", "-v1", "v/1", ""] {
        let (status, body) = s
            .api(
                Method::POST,
                "/devboxes/dev/releases",
                Some(json!({ "version": bad })),
            )
            .await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("invalid release version"),
            "{body}"
        );
    }
    let (code, err) = fails(&s, &["release", "dev", "0123456789abcdef"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("commit ID"), "{err}");
    let (code, err) = fails(&s, &["release", "nope", "v1"]);
    assert_eq!(code, Some(3), "{err}");
    let (status, _) = s.api(Method::GET, "/devboxes/nope/releases", None).await;
    assert_eq!(status, 404);
    let (code, err) = fails(&s, &["releases", "nope"]);
    assert_eq!(code, Some(3), "{err}");
    let (code, err) = fails(
        &s,
        &["release", "dev", "v2", "--commit", "0000000000000000"],
    );
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(history(&s).len(), 1);

    // Two more commits: with one kept, retention would expire the
    // released one, but a release keeps its commit's image. (Retention
    // leaves a running devbox's current run alone, so it stops first.)
    s.ok(&["commit", "dev", "-m", "second"]);
    sh(&s, "dev", "echo third > /root/more");
    s.ok(&["commit", "dev", "-m", "third"]);
    s.ok(&["stop", "dev"]);
    let report = s.json(&["gc", "--json"]);
    assert_eq!(report["commits_expired"], 1, "{report}");
    let h = history(&s);
    assert_eq!(h.len(), 3, "{h:?}");
    assert_eq!(h[2]["id"], released.as_str());
    assert_eq!(
        h[2]["digest"],
        digest.as_str(),
        "the released commit keeps its image"
    );
    assert!(
        h[1]["digest"].is_null(),
        "the unreleased one is reclaimed: {h:?}"
    );
    let copy = tempfile::tempdir().unwrap();
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &format!("docker://{image}"),
        &format!("dir:{}", copy.path().join("v1").display()),
    ]);

    // A stopped devbox releases its head, committing nothing; --commit
    // picks another.
    let commits = history(&s).len();
    let head = history(&s)[0]["id"].as_str().unwrap().to_owned();
    let v2 = s.json(&["release", "dev", "v2", "--json"]);
    assert_eq!(v2["commit"], head.as_str());
    let v0 = s.json(&["release", "dev", "v0.9", "--commit", &released, "--json"]);
    assert_eq!(v0["digest"], digest.as_str());
    assert_eq!(history(&s).len(), commits, "nothing was committed");
    let versions: Vec<Value> = s
        .json(&["releases", "dev", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].clone())
        .collect();
    assert_eq!(versions, [json!("v0.9"), json!("v2"), json!("v1.0")]);

    // Removing a release makes its commit's image collectable again.
    s.ok(&["release", "rm", "dev", "v1.0"]);
    s.ok(&["release", "rm", "dev", "v0.9"]);
    let (code, err) = fails(&s, &["release", "rm", "dev", "v1.0"]);
    assert_eq!(code, Some(3), "{err}");
    let (status, _) = s
        .api(Method::DELETE, "/devboxes/dev/releases/v1.0", None)
        .await;
    assert_eq!(status, 404);
    let report = s.json(&["gc", "--json"]);
    assert_eq!(report["commits_expired"], 1, "{report}");
    assert!(history(&s)[2]["digest"].is_null());
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--creds", &creds])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a removed release is still served");

    // The devbox's deletion leaves its releases as images.
    s.ok(&["rm", "dev"]);
    let images = s.json(&["image", "ls", "--json"]);
    assert!(
        images
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["reference"] == "admin/dev:v2"),
        "{images}"
    );
    let v2_image = format!("docker://{}/admin/dev:v2", s.listen);
    assert_eq!(
        inspect_digest(&v2_image, Some(&creds)),
        v2["digest"].as_str().unwrap()
    );
    // A new devbox of the same name cannot take the version.
    s.ok(&["create", "dev", "--image", "base:1"]);
    s.ok(&["start", "dev"]);
    sh(&s, "dev", "echo again > /root/hello");
    let (code, err) = fails(&s, &["release", "dev", "v2"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("devbox image rm admin/dev:v2"), "{err}");
    s.ok(&["rm", "dev"]);
}
