//! Images from a real registry: a layout pushed with skopeo to Debian's
//! reference registry, pulled through the CLI and run.

use std::path::Path;
use std::process::Command;

use devbox_layer::compression::{Compression, write_layer};
use devbox_layer::digest::Digest;
use serde_json::json;

use super::harness::{Server, busybox_rootfs, require_tool};
use super::registry::RefRegistry;

fn put_blob(layout: &Path, data: &[u8]) -> Digest {
    let d = Digest::of(data);
    std::fs::write(layout.join("blobs/sha256").join(d.hex()), data).unwrap();
    d
}

/// An OCI image layout holding a one-layer busybox image tagged `1`.
pub(super) fn busybox_layout(layout: &Path) {
    let rootfs = tempfile::tempdir().unwrap();
    busybox_rootfs(rootfs.path());
    std::fs::write(rootfs.path().join("etc/motd"), "pulled from a registry\n").unwrap();
    let mut tar = Vec::new();
    devbox_layer::pack::pack_dir(rootfs.path(), &mut tar, &Default::default()).unwrap();
    let mut blob = Vec::new();
    let digests = write_layer(&tar[..], &mut blob, Compression::Gzip).unwrap();

    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let layer = put_blob(layout, &blob);
    assert_eq!(layer, digests.digest);
    let config = serde_json::to_vec(&json!({
        "architecture": if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" },
        "os": "linux",
        "config": {"Env": ["PATH=/bin", "FROM_IMAGE=yes"], "WorkingDir": "/root"},
        "rootfs": {"type": "layers", "diff_ids": [digests.diff_id.to_string()]},
    }))
    .unwrap();
    let config_digest = put_blob(layout, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.to_string(), "size": blob.len()}],
    }))
    .unwrap();
    let manifest_digest = put_blob(layout, &manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest.to_string(),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "1"},
        }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

#[test]
fn an_image_pulled_from_a_registry_runs_as_a_devbox() {
    require_tool("skopeo", "skopeo");
    let s = Server::start();
    let registry = RefRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    busybox_layout(&layout);

    // An OCI layout directory imports as it is.
    s.ok(&[
        "image",
        "import",
        layout.to_str().unwrap(),
        "--name",
        "layout:1",
    ]);

    let dest = format!("docker://{}/tools/busybox:1", registry.addr);
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:1", layout.display()),
            &dest,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let reference = format!("{}/tools/busybox:1", registry.addr);
    let events = s.ok(&["image", "pull", &reference, "--insecure", "--json"]);
    let last: serde_json::Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "done", "{events}");
    assert_eq!(last["image"]["reference"], reference.as_str());
    assert!(events.contains("\"resolved\""), "{events}");

    // A second pull finds every layer already stored.
    let again = s.ok(&["image", "pull", &reference, "--insecure", "--json"]);
    assert!(again.contains("\"cached\":true"), "{again}");

    let images = s.json(&["image", "ls", "--json"]);
    assert_eq!(images.as_array().unwrap().len(), 2, "{images}");

    s.ok(&["create", "pulled", "--image", &reference]);
    s.ok(&["start", "pulled"]);
    assert_eq!(
        s.ok(&["exec", "pulled", "--", "cat", "/etc/motd"]),
        "pulled from a registry\n"
    );
    // The image's config applies: its environment and working directory.
    assert_eq!(
        s.ok(&["exec", "pulled", "--", "sh", "-c", "echo $FROM_IMAGE; pwd"]),
        "yes\n/root\n"
    );

    let missing = s.cli(&[
        "image",
        "pull",
        &format!("{}/tools/none:1", registry.addr),
        "--insecure",
    ]);
    assert_eq!(
        missing.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
