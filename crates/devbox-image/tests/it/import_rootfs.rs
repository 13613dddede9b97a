//! Plain rootfs tarballs become one-layer images; hostile ones are refused.

use devbox_image::ImageError;
use devbox_layer::compression::Compression;
use devbox_model::api::{ErrorCode, ProgressEvent};

use crate::common::*;

#[tokio::test]
async fn rootfs_tarball_becomes_a_one_layer_image() {
    let env = new_store();
    let tar = busybox_rootfs();
    let upload = write(env.dir.path(), "rootfs.tar", &tar);
    let events = Events::default();
    let image = env
        .store
        .import(&r("busybox:1"), &upload, &events.callback())
        .await
        .unwrap();
    assert_eq!(image.reference, "busybox:1");
    assert_eq!(
        (image.repository.as_str(), image.tag.as_str()),
        ("busybox", "1")
    );
    assert_eq!(image.layers, 1);

    let list = env.store.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].digest, image.digest);

    let resolved = env.store.resolve(&r("busybox:1")).await.unwrap();
    assert_eq!(resolved.digest, image.digest);
    assert_eq!(resolved.layers.len(), 1);
    let layer = &resolved.layers[0];
    assert_eq!(layer.diff_id, normalized_diff_id(&tar));
    assert_eq!(layer.compression, Compression::Gzip);
    assert_eq!(image.size, layer.size);
    assert_eq!(resolved.config.cmd, Some(vec!["/bin/sh".to_owned()]));
    assert_eq!(
        resolved.config.env,
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()]
    );
    assert_layers_intact(&env.store, &resolved).await;

    let by_digest = env.store.resolve_digest(&image.digest).await.unwrap();
    assert_eq!(by_digest.layers, resolved.layers);
    let pinned = env
        .store
        .resolve(&r(&format!("busybox@{}", image.digest)))
        .await
        .unwrap();
    assert_eq!(pinned.digest, image.digest);

    let events = events.take();
    assert!(
        matches!(events.last(), Some(ProgressEvent::Done { image: i }) if i.digest == image.digest),
        "{events:?}"
    );
    assert!(events.iter().any(|e| matches!(e,
        ProgressEvent::Resolved { digest, layers } if *digest == image.digest.as_str() && layers.len() == 1)));
    assert!(
        events.iter().any(|e| matches!(e,
        ProgressEvent::LayerDone { digest, cached: false } if *digest == layer.digest.to_string()))
    );
    assert!(events.iter().any(|e| matches!(e,
        ProgressEvent::Progress { total, .. } if *total == tar.len() as u64)));
}

#[tokio::test]
async fn gzip_and_zstd_rootfs_tarballs_import() {
    let env = new_store();
    let tar = busybox_rootfs();
    let diff_id = normalized_diff_id(&tar);
    let first = write(env.dir.path(), "a.tar", &tar);
    env.store
        .import(&r("plain:1"), &first, &|_| {})
        .await
        .unwrap();
    for (tag, data) in [("gz", gzip(&tar)), ("zst", zstd(&tar))] {
        let upload = write(env.dir.path(), tag, &data);
        let events = Events::default();
        env.store
            .import(&r(&format!("bb:{tag}")), &upload, &events.callback())
            .await
            .unwrap();
        let resolved = env.store.resolve(&r(&format!("bb:{tag}"))).await.unwrap();
        assert_eq!(resolved.layers.len(), 1);
        assert_eq!(resolved.layers[0].diff_id, diff_id, "{tag}");
        // The same content compresses to the same blob, which is kept.
        let events = events.take();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ProgressEvent::LayerDone { cached: true, .. })),
            "{tag}: the layer blob should have been stored already: {events:?}"
        );
    }
    assert_eq!(env.store.list().await.unwrap().len(), 3);
}

fn assert_refused(e: &ImageError, needle: &str) {
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
}

#[tokio::test]
async fn hostile_rootfs_tarballs_are_refused_and_nothing_is_tagged() {
    let env = new_store();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            {
                let mut b = tar::Builder::new(Vec::new());
                raw_entry(&mut b, "etc/ok", tar::EntryType::Regular, None, b"ok");
                raw_entry(&mut b, "../x", tar::EntryType::Regular, None, b"evil");
                b.into_inner().unwrap()
            },
            "../x",
        ),
        (
            "absolute",
            {
                let mut b = tar::Builder::new(Vec::new());
                raw_entry(&mut b, "/etc/evil", tar::EntryType::Regular, None, b"evil");
                b.into_inner().unwrap()
            },
            "/etc/evil",
        ),
        (
            "symlink-parent",
            {
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
            },
            "escape",
        ),
    ];
    for (name, data, needle) in cases {
        for (variant, upload) in [("plain", data.clone()), ("gzip", gzip(&data))] {
            let path = write(env.dir.path(), &format!("{name}-{variant}"), &upload);
            let e = env
                .store
                .import(&r(&format!("evil:{name}")), &path, &|_| {})
                .await
                .expect_err(name);
            assert!(
                matches!(e, ImageError::RefusedRootfs { .. }),
                "{name}/{variant}: {e}"
            );
            assert_refused(&e, needle);
            assert_refused(&e, "refus");
        }
    }
    assert!(env.store.list().await.unwrap().is_empty());
    assert!(env.store.metadata().list_tags().await.unwrap().is_empty());
    let e = env.store.resolve(&r("evil:dotdot")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn unreadable_uploads_are_refused() {
    let env = new_store();
    let empty = write(env.dir.path(), "empty", b"");
    assert_refused(
        &env.store
            .import(&r("x:1"), &empty, &|_| {})
            .await
            .unwrap_err(),
        "empty",
    );
    let garbage = write(env.dir.path(), "garbage", &[0x55u8; 3000]);
    assert_refused(
        &env.store
            .import(&r("x:1"), &garbage, &|_| {})
            .await
            .unwrap_err(),
        "tar",
    );
    let mut truncated = gzip(&busybox_rootfs());
    truncated.truncate(truncated.len() / 2);
    let t = write(env.dir.path(), "truncated.gz", &truncated);
    let e = env.store.import(&r("x:1"), &t, &|_| {}).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    let digest_ref = format!("x@sha256:{}", "a".repeat(64));
    let tar = write(env.dir.path(), "ok.tar", &busybox_rootfs());
    let e = env
        .store
        .import(&r(&digest_ref), &tar, &|_| {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(env.store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn remove_untags_and_drops_the_manifest() {
    let env = new_store();
    let upload = write(env.dir.path(), "rootfs.tar", &busybox_rootfs());
    let image = env.store.import(&r("a:1"), &upload, &|_| {}).await.unwrap();
    let upload = write(env.dir.path(), "rootfs.tar", &busybox_rootfs());
    let again = env.store.import(&r("a:1"), &upload, &|_| {}).await.unwrap();
    // The generated config records no time, so the re-import gives the
    // same manifest; tag a second name at it.
    assert_eq!(image.digest, again.digest);
    env.store
        .metadata()
        .set_tag("b", "1", &again.digest)
        .await
        .unwrap();
    env.store.remove(&r("a:1")).await.unwrap();
    assert_eq!(
        env.store.remove(&r("a:1")).await.unwrap_err().code(),
        ErrorCode::NotFound
    );
    // b:1 still points at the manifest, so it survives.
    assert!(env.store.resolve_digest(&again.digest).await.is_ok());
    env.store
        .remove(&r(&format!("b@{}", again.digest)))
        .await
        .unwrap();
    let e = env.store.resolve_digest(&again.digest).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(env.store.list().await.unwrap().is_empty());
}
