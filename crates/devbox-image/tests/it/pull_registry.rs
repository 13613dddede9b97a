//! Pulls from Debian's reference registry (`docker-registry`), with images
//! pushed by skopeo.

use std::path::Path;
use std::process::Command;

use devbox_image::ImageError;
use devbox_layer::compression::Compression;
use devbox_layer::digest::Digest;
use devbox_model::api::{ErrorCode, ProgressEvent, PullRequest};

use crate::common::*;

/// A layout of the busybox image, and the image as resolved in its store.
async fn busybox_layout(work: &Path) -> (std::path::PathBuf, devbox_image::ResolvedImage) {
    let env = new_store();
    let upload = write(work, "rootfs.tar", &busybox_rootfs());
    env.store
        .import(&r("base:1"), &upload, &|_| {})
        .await
        .unwrap();
    let layout = work.join("layout");
    export_layout(&env.store, "base:1", &layout, "v1").await;
    (layout, env.store.resolve(&r("base:1")).await.unwrap())
}

fn req(reference: &str) -> PullRequest {
    PullRequest {
        reference: r(reference),
        username: None,
        password: None,
        insecure: true,
    }
}

/// The manifest bytes the registry serves for a tag.
async fn served_manifest(addr: &str, repo: &str, tag: &str) -> Vec<u8> {
    reqwest::Client::new()
        .get(format!("http://{addr}/v2/{repo}/manifests/{tag}"))
        .header("Accept", devbox_image::media::MANIFEST_ACCEPT)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn pulls_gzip_and_zstd_images_from_the_reference_registry() {
    let work = tempfile::tempdir().unwrap();
    let (layout, base) = busybox_layout(work.path()).await;
    // Separate registries, so skopeo cannot reuse the gzip blob when asked for zstd.
    let gz_registry = Registry::start(None);
    let zstd_registry = Registry::start(None);
    skopeo_push(
        &layout,
        "v1",
        &format!("{}/tools/busybox:gz", gz_registry.addr),
        &[],
    );
    skopeo_push(
        &layout,
        "v1",
        &format!("{}/busybox:zst", zstd_registry.addr),
        &["--dest-compress-format", "zstd"],
    );

    let env = new_store();
    let reference = format!("{}/tools/busybox:gz", gz_registry.addr);
    let events = Events::default();
    let image = env
        .store
        .pull(&req(&reference), &events.callback())
        .await
        .unwrap();
    let served = served_manifest(&gz_registry.addr, "tools/busybox", "gz").await;
    assert_eq!(image.digest, Digest::of(&served));
    let stored = env
        .store
        .metadata()
        .get_manifest(&image.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.content, served, "the manifest is stored verbatim");
    let resolved = env.store.resolve(&r(&reference)).await.unwrap();
    assert_eq!(resolved.layers.len(), 1);
    assert_eq!(resolved.layers[0].diff_id, base.layers[0].diff_id);
    assert_eq!(resolved.layers[0].compression, Compression::Gzip);
    assert_eq!(resolved.config, base.config);
    assert_layers_intact(&env.store, &resolved).await;
    let layer = resolved.layers[0].digest.to_string();

    let events = events.take();
    assert!(
        matches!(events.first(), Some(ProgressEvent::Resolved { digest, layers })
            if *digest == image.digest.as_str() && layers.len() == 1 && layers[0].digest == layer),
        "{events:?}"
    );
    assert!(events.iter().any(|e| matches!(e,
        ProgressEvent::Progress { digest, total, .. } if *digest == layer && *total == resolved.layers[0].size)));
    assert!(events.iter().any(|e| matches!(e,
        ProgressEvent::LayerDone { digest, cached: false } if *digest == layer)));
    assert!(
        matches!(events.last(), Some(ProgressEvent::Done { image: i }) if i.reference == reference)
    );

    // Again: every blob is stored already.
    let events = Events::default();
    let again = env
        .store
        .pull(&req(&reference), &events.callback())
        .await
        .unwrap();
    assert_eq!(again.digest, image.digest);
    let events = events.take();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ProgressEvent::LayerDone { cached: true, .. })),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ProgressEvent::Progress { .. })),
        "{events:?}"
    );

    let reference = format!("{}/busybox:zst", zstd_registry.addr);
    env.store.pull(&req(&reference), &|_| {}).await.unwrap();
    let resolved = env.store.resolve(&r(&reference)).await.unwrap();
    assert_eq!(resolved.layers[0].compression, Compression::Zstd);
    assert_eq!(resolved.layers[0].diff_id, base.layers[0].diff_id);
    assert_layers_intact(&env.store, &resolved).await;

    assert_eq!(env.store.list().await.unwrap().len(), 2);
    let e = env
        .store
        .pull(
            &req(&format!("{}/tools/busybox:missing", gz_registry.addr)),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
}

#[tokio::test]
async fn basic_auth_against_the_reference_registry() {
    let htpasswd_bin = require_tool("htpasswd", "apache2-utils");
    let work = tempfile::tempdir().unwrap();
    let (layout, base) = busybox_layout(work.path()).await;
    let entry = run(Command::new(htpasswd_bin).args(["-Bbn", "alice", "s3cret"]));
    let htpasswd = write(work.path(), "htpasswd", entry.trim().as_bytes());
    let registry = Registry::start(Some(&htpasswd));
    skopeo_push(
        &layout,
        "v1",
        &format!("{}/private/busybox:1", registry.addr),
        &["--dest-creds", "alice:s3cret"],
    );

    let env = new_store();
    let reference = format!("{}/private/busybox:1", registry.addr);
    for creds in [None, Some("wrong")] {
        let mut rq = req(&reference);
        rq.username = creds.map(|_| "alice".to_owned());
        rq.password = creds.map(str::to_owned);
        let e = env.store.pull(&rq, &|_| {}).await.unwrap_err();
        assert!(
            matches!(e, ImageError::Unauthorized { .. }),
            "{creds:?}: {e}"
        );
        assert_eq!(e.code(), ErrorCode::Unauthorized);
    }
    assert!(env.store.list().await.unwrap().is_empty());

    let mut rq = req(&reference);
    rq.username = Some("alice".to_owned());
    rq.password = Some("s3cret".to_owned());
    env.store.pull(&rq, &|_| {}).await.unwrap();
    let resolved = env.store.resolve(&r(&reference)).await.unwrap();
    assert_eq!(resolved.layers[0].diff_id, base.layers[0].diff_id);
}
