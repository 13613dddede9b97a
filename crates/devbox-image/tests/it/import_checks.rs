//! What an import checks: the same rootfs gives the same digest, layers the
//! unpacker would refuse fail the import, errors name what the user sent
//! and stay short, and the first step's errors come before any progress.

use devbox_image::{ImageError, Origin};
use devbox_layer::digest::Digest;
use devbox_model::api::ErrorCode;

use crate::common::*;

#[tokio::test]
async fn importing_the_same_rootfs_twice_gives_the_same_manifest_digest() {
    let tar = busybox_rootfs();
    let one = new_store();
    let upload = write(one.dir.path(), "rootfs.tar", &tar);
    let first = one.store.import(&r("a:1"), &upload, &|_| {}).await.unwrap();
    // Time passes between imports; nothing of it may reach the digest.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let upload = write(one.dir.path(), "rootfs.tar", &tar);
    let again = one.store.import(&r("a:2"), &upload, &|_| {}).await.unwrap();
    let two = new_store();
    let upload = write(two.dir.path(), "rootfs.tar", &tar);
    let elsewhere = two.store.import(&r("b:1"), &upload, &|_| {}).await.unwrap();
    assert_eq!(first.digest, again.digest);
    assert_eq!(first.digest, elsewhere.digest);
    // The config is still one a runtime can use.
    let resolved = two.store.resolve(&r("b:1")).await.unwrap();
    assert_eq!(resolved.config.cmd, Some(vec!["/bin/sh".to_owned()]));
}

/// A layer tar whose second entry writes through a symlink to `/`.
fn hostile_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, "escape", tar::EntryType::Symlink, Some("/"), b"");
    raw_entry(
        &mut b,
        "escape/etc/evil",
        tar::EntryType::Regular,
        None,
        b"evil",
    );
    b.into_inner().unwrap()
}

fn config_for(diff_id: &Digest) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": devbox_image::host_arch(),
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
    }))
    .unwrap()
}

/// An OCI image layout (as a tar) holding one image whose only layer is
/// `layer`, gzip-compressed.
fn layout_with_layer(dir: &std::path::Path, layer: &[u8]) -> (std::path::PathBuf, Digest) {
    let root = dir.join("layout");
    let blobs = root.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let gz = gzip(layer);
    let config = config_for(&Digest::of(layer));
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": devbox_image::media::OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": Digest::of(&config).to_string(), "size": config.len() },
        "layers": [{ "mediaType": devbox_image::media::OCI_LAYER_GZIP,
                     "digest": Digest::of(&gz).to_string(), "size": gz.len() }],
    }))
    .unwrap();
    for blob in [&gz, &config, &manifest] {
        std::fs::write(blobs.join(Digest::of(blob).hex()), blob).unwrap();
    }
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": devbox_image::media::OCI_MANIFEST,
                        "digest": Digest::of(&manifest).to_string(), "size": manifest.len() }],
    });
    std::fs::write(root.join("index.json"), index.to_string()).unwrap();
    let out = dir.join("layout.tar");
    tar_dir(&root, &out);
    (out, Digest::of(&gz))
}

/// A `docker save` archive whose only layer is `layer`.
fn docker_archive_with_layer(dir: &std::path::Path, layer: &[u8]) -> std::path::PathBuf {
    let config = config_for(&Digest::of(layer));
    let config_name = format!("{}.json", Digest::of(&config).hex());
    let layer_name = format!("{}/layer.tar", Digest::of(layer).hex());
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": ["evil:1"], "Layers": [layer_name],
    }]);
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("manifest.json", manifest.to_string().into_bytes()),
        (config_name.as_str(), config.clone()),
        (layer_name.as_str(), layer.to_vec()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    write(dir, "docker.tar", &b.into_inner().unwrap())
}

#[tokio::test]
async fn a_hostile_layer_in_an_oci_layout_fails_the_import_with_the_unpackers_reason() {
    let env = new_store();
    let work = tempfile::tempdir().unwrap();
    let (layout, layer_digest) = layout_with_layer(work.path(), &hostile_layer());
    let pending = env
        .store
        .begin_import(
            &r("evil:1"),
            &layout,
            Origin::new(Some("./evil-layout.tar")),
        )
        .await
        .expect("the format is recognized before anything is converted");
    let e = pending.finish(&|_| {}).await.unwrap_err();
    assert!(matches!(e, ImageError::RefusedLayer { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let msg = e.to_string();
    for needle in [
        layer_digest.as_str(),
        "(from ./evil-layout.tar)",
        "escape/etc/evil",
        "\"escape\" is a symlink",
    ] {
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
    assert!(!msg.contains(&layout.display().to_string()), "{msg}");
    assert!(!env.store.blobs().has_blob(&layer_digest).await.unwrap());
    assert!(env.store.list().await.unwrap().is_empty());

    // The same layout with a harmless layer imports.
    let (layout, _) = layout_with_layer(&work.path().join("ok"), &busybox_rootfs());
    env.store
        .import(&r("ok:1"), &layout, &|_| {})
        .await
        .unwrap();
}

#[tokio::test]
async fn a_hostile_layer_in_a_docker_archive_fails_the_import() {
    let env = new_store();
    let work = tempfile::tempdir().unwrap();
    let archive = docker_archive_with_layer(work.path(), &hostile_layer());
    let e = env
        .store
        .begin_import(&r("evil:1"), &archive, Origin::new(Some("evil.tar")))
        .await
        .unwrap()
        .finish(&|_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::RefusedLayer { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("/layer.tar of the uploaded image"), "{msg}");
    assert!(msg.contains("(from evil.tar)"), "{msg}");
    assert!(msg.contains("is a symlink"), "{msg}");
    assert!(env.store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn errors_name_the_upload_as_the_user_gave_it_and_stay_short() {
    let env = new_store();
    // A 10,000-deep path: far beyond the unpacker's limit on names.
    let deep = "d/".repeat(10_000) + "file";
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, &deep, &b"x"[..]).unwrap();
    let spool = write(
        env.dir.path(),
        "upload-0123456789abcdef",
        &b.into_inner().unwrap(),
    );
    let e = env
        .store
        .begin_import(&r("deep:1"), &spool, Origin::new(Some("./rootfs.tar")))
        .await
        .unwrap()
        .finish(&|_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::RefusedRootfs { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("refused the uploaded rootfs tarball (from ./rootfs.tar): entry \"d/d/"),
        "{msg}"
    );
    assert!(msg.contains('…') && msg.contains("4096"), "{msg}");
    assert!(
        msg.chars().count() <= 400,
        "{} characters: {msg}",
        msg.chars().count()
    );
    assert!(!msg.contains("upload-0123456789abcdef"), "{msg}");

    let empty = write(env.dir.path(), "upload-empty", b"");
    let e = env
        .store
        .begin_import(&r("x:1"), &empty, Origin::new(Some("./empty.tar")))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid image archive (from ./empty.tar): the upload is empty"
    );
}

#[tokio::test]
async fn the_first_step_of_an_import_fails_before_any_progress() {
    let env = new_store();
    let upload = write(env.dir.path(), "rootfs.tar", &busybox_rootfs());
    let digest_ref = format!("x@sha256:{}", "a".repeat(64));
    let e = env
        .store
        .begin_import(&r(&digest_ref), &upload, Origin::default())
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::InvalidReference { .. }), "{e}");
    let garbage = write(env.dir.path(), "garbage", &[0x55u8; 3000]);
    let e = env
        .store
        .begin_import(&r("x:1"), &garbage, Origin::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.to_string().contains("tar"), "{e}");
}
