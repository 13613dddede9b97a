//! Real clients against the registry: skopeo and podman pull what the image
//! store holds, under the names it was imported by, and copies to Debian's
//! reference registry keep every digest.

use super::super::harness::Server;
use super::{Moto, RefRegistry, host, inspect_digest, podman, skopeo};

#[test]
fn skopeo_and_podman_pull_stored_images_under_their_names() {
    pulls(&Server::start());
}

#[test]
fn skopeo_and_podman_pull_stored_images_under_their_names_on_s3() {
    let s3 = Moto::start();
    pulls(&s3.server());
}

fn pulls(s: &Server) {
    let reference = RefRegistry::start();
    s.import_busybox("tools/bb:2");
    let digest = s.json(&["image", "show", "tools/bb:2", "--json"])["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let creds = format!("anyone:{}", s.token());
    let ours = format!("docker://{}/tools/bb:2", host(s));

    // Anonymous access is refused.
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &ours])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an anonymous inspect succeeded");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("unauthorized") || err.contains("authentication required"),
        "{err}"
    );

    assert_eq!(inspect_digest(&ours, Some(&creds)), digest);

    // To a directory: the manifest arrives byte for byte.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("copy");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &ours,
        &format!("dir:{}", target.display()),
    ]);
    let manifest = std::fs::read(target.join("manifest.json")).unwrap();
    assert_eq!(
        devbox_layer::digest::Digest::of(&manifest).to_string(),
        digest
    );

    // To the reference registry, and back into the image store from there.
    let theirs = format!("docker://{}/copied/bb:2", reference.addr);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        &creds,
        &ours,
        &theirs,
    ]);
    assert_eq!(inspect_digest(&theirs, None), digest);
    let pulled = format!("{}/copied/bb:2", reference.addr);
    s.ok(&["image", "pull", &pulled, "--insecure"]);
    // A name with a registry port cannot be written in a registry
    // reference, so the catalog leaves it out.
    let catalog: serde_json::Value =
        serde_json::from_str(&registry_get(s, "/v2/_catalog")).unwrap();
    assert_eq!(catalog["repositories"], serde_json::json!(["tools/bb"]));

    // podman, after a login, with storage of its own.
    let storage = tempfile::tempdir().unwrap();
    let authfile = storage.path().join("auth.json");
    let login = podman(
        storage.path(),
        &[
            "login",
            "--tls-verify=false",
            "--authfile",
            authfile.to_str().unwrap(),
            "-u",
            "anyone",
            "-p",
            &s.token(),
            host(s),
        ],
    );
    assert!(
        login.status.success(),
        "podman login: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    let image = format!("{}/tools/bb:2", host(s));
    let pull = podman(
        storage.path(),
        &[
            "pull",
            "--tls-verify=false",
            "--authfile",
            authfile.to_str().unwrap(),
            &image,
        ],
    );
    assert!(
        pull.status.success(),
        "podman pull: {}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let inspect = podman(
        storage.path(),
        &["image", "inspect", "--format", "{{.Digest}}", &image],
    );
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), digest);
}

/// A GET on the server's registry with the admin token, its body.
fn registry_get(s: &Server, path: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", s.url))
            .basic_auth("x", Some(s.token()))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.text().await.unwrap()
    })
}
