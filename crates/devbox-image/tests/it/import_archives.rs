//! OCI image layouts and `docker save` archives written by skopeo and umoci.

use std::process::Command;

use devbox_image::ImageError;
use devbox_layer::compression::Compression;
use devbox_layer::digest::Digest;
use devbox_model::api::{ErrorCode, ProgressEvent};

use crate::common::*;

#[tokio::test]
async fn oci_layouts_and_docker_archives_from_skopeo_import() {
    let skopeo = require_tool("skopeo", "skopeo");
    let env = new_store();
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_rootfs();
    let upload = write(work.path(), "rootfs.tar", &tar);
    let original = env
        .store
        .import(&r("base:1"), &upload, &|_| {})
        .await
        .unwrap();
    let base = env.store.resolve(&r("base:1")).await.unwrap();

    // Our image as a layout, rewritten by skopeo into a second layout.
    let exported = work.path().join("exported");
    export_layout(&env.store, "base:1", &exported, "v1").await;
    let copied = work.path().join("copied");
    run(Command::new(&skopeo)
        .arg("copy")
        .arg(format!("oci:{}:v1", exported.display()))
        .arg(format!("oci:{}:v1", copied.display())));
    let layout_tar = work.path().join("layout.tar");
    tar_dir(&copied, &layout_tar);

    let other = new_store();
    let events = Events::default();
    let image = other
        .store
        .import(&r("fromlayout:1"), &layout_tar, &events.callback())
        .await
        .unwrap();
    // An OCI-to-OCI copy keeps the manifest byte for byte.
    assert_eq!(image.digest, original.digest);
    let resolved = other.store.resolve(&r("fromlayout:1")).await.unwrap();
    assert_eq!(resolved.layers, base.layers);
    assert_eq!(resolved.config, base.config);
    assert_layers_intact(&other.store, &resolved).await;
    let events = events.take();
    assert!(
        matches!(events.first(), Some(ProgressEvent::Resolved { .. })),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(ProgressEvent::Done { .. })),
        "{events:?}"
    );

    // The same image as a docker-archive.
    let archive = work.path().join("docker.tar");
    run(Command::new(&skopeo)
        .arg("copy")
        .arg(format!("oci:{}:v1", exported.display()))
        .arg(format!(
            "docker-archive:{}:library/base:v1",
            archive.display()
        )));
    for (name, upload) in [
        ("fromdocker:1", archive.clone()),
        (
            "fromdocker:gz",
            write(
                work.path(),
                "docker.tar.gz",
                &gzip(&std::fs::read(&archive).unwrap()),
            ),
        ),
    ] {
        let image = other
            .store
            .import(&r(name), &upload, &|_| {})
            .await
            .unwrap();
        let resolved = other.store.resolve(&r(name)).await.unwrap();
        assert_eq!(image.layers, 1, "{name}");
        assert_eq!(resolved.layers[0].diff_id, base.layers[0].diff_id, "{name}");
        assert_eq!(resolved.layers[0].compression, Compression::Gzip, "{name}");
        assert_eq!(resolved.config, base.config, "{name}");
        assert_layers_intact(&other.store, &resolved).await;
    }
    let names: Vec<String> = other
        .store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.reference)
        .collect();
    assert_eq!(names, ["fromdocker:1", "fromdocker:gz", "fromlayout:1"]);
}

#[tokio::test]
async fn a_layout_made_by_umoci_imports() {
    let umoci = require_tool("umoci", "umoci");
    let env = new_store();
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_rootfs();
    let layer = write(work.path(), "layer.tar", &tar);
    let layout = work.path().join("layout");
    run(Command::new(&umoci)
        .arg("init")
        .arg("--layout")
        .arg(&layout));
    let image = format!("{}:dev", layout.display());
    run(Command::new(&umoci).args(["new", "--image", &image]));
    run(Command::new(&umoci)
        .args(["raw", "add-layer", "--image", &image])
        .arg(&layer));
    run(Command::new(&umoci).args([
        "config",
        "--image",
        &image,
        "--config.cmd",
        "/bin/busybox",
        "--config.workingdir",
        "/root",
    ]));
    let layout_tar = work.path().join("layout.tar");
    tar_dir(&layout, &layout_tar);

    env.store
        .import(&r("umoci:dev"), &layout_tar, &|_| {})
        .await
        .unwrap();
    let resolved = env.store.resolve(&r("umoci:dev")).await.unwrap();
    assert_eq!(resolved.layers.len(), 1);
    // umoci stores the tarball as given.
    assert_eq!(resolved.layers[0].diff_id, Digest::of(&tar));
    assert_eq!(resolved.config.cmd, Some(vec!["/bin/busybox".to_owned()]));
    assert_eq!(resolved.config.working_dir.as_deref(), Some("/root"));
    assert_layers_intact(&env.store, &resolved).await;
}

#[tokio::test]
async fn a_layout_with_a_corrupt_blob_is_refused() {
    let env = new_store();
    let work = tempfile::tempdir().unwrap();
    let upload = write(work.path(), "rootfs.tar", &busybox_rootfs());
    env.store
        .import(&r("base:1"), &upload, &|_| {})
        .await
        .unwrap();
    let base = env.store.resolve(&r("base:1")).await.unwrap();
    let layout = work.path().join("layout");
    export_layout(&env.store, "base:1", &layout, "v1").await;

    // Flip one byte of the layer, keeping its size.
    let blob = layout
        .join("blobs/sha256")
        .join(base.layers[0].digest.hex());
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let layout_tar = work.path().join("layout.tar");
    tar_dir(&layout, &layout_tar);

    let other = new_store();
    let e = other
        .store
        .import(&r("corrupt:1"), &layout_tar, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(
        e.to_string().contains(&base.layers[0].digest.to_string()),
        "{e}"
    );
    assert!(other.store.list().await.unwrap().is_empty());
    assert!(
        !other
            .store
            .blobs()
            .has_blob(&base.layers[0].digest)
            .await
            .unwrap()
    );
    assert!(
        other
            .store
            .metadata()
            .get_manifest(&base.digest)
            .await
            .unwrap()
            .is_none()
    );

    // A layout whose index names a manifest that is not there.
    std::fs::remove_file(layout.join("blobs/sha256").join(base.digest.hex())).unwrap();
    tar_dir(&layout, &layout_tar);
    let e = other
        .store
        .import(&r("corrupt:1"), &layout_tar, &|_| {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
}
