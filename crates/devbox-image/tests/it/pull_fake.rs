//! Pulls from the scripted registry: token auth, corrupt content, indexes.

use devbox_image::{ImageError, host_arch};
use devbox_layer::digest::Digest;
use devbox_model::api::{ErrorCode, ProgressEvent, PullRequest};

use crate::common::*;
use crate::fake_registry::FakeRegistry;

/// A store holding the busybox image as `base:1`.
async fn source() -> Env {
    let env = new_store();
    let upload = write(env.dir.path(), "rootfs.tar", &busybox_rootfs());
    env.store
        .import(&r("base:1"), &upload, &|_| {})
        .await
        .unwrap();
    env
}

fn pull_req(reference: &str, creds: Option<(&str, &str)>) -> PullRequest {
    PullRequest {
        reference: r(reference),
        username: creds.map(|c| c.0.to_owned()),
        password: creds.map(|c| c.1.to_owned()),
        insecure: true,
    }
}

#[tokio::test]
async fn bearer_token_flow_with_credentials() {
    let src = source().await;
    let fake = FakeRegistry::start(Some(("alice", "s3cret"))).await;
    let (digest, _, _) = fake
        .serve_image(&src.store, "base:1", "team/busybox", "1")
        .await;
    let reference = format!("{}/team/busybox:1", fake.addr);
    let dst = new_store();

    for creds in [None, Some(("alice", "wrong"))] {
        let e = dst
            .store
            .pull(&pull_req(&reference, creds), &|_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(e, ImageError::Unauthorized { .. }),
            "{creds:?}: {e}"
        );
        assert_eq!(e.code(), ErrorCode::Unauthorized);
    }
    assert!(dst.store.list().await.unwrap().is_empty());

    let events = Events::default();
    let image = dst
        .store
        .pull(
            &pull_req(&reference, Some(("alice", "s3cret"))),
            &events.callback(),
        )
        .await
        .unwrap();
    assert_eq!(image.digest, digest);
    assert_eq!(image.reference, reference);
    let pulled = dst.store.resolve(&r(&reference)).await.unwrap();
    let original = src.store.resolve(&r("base:1")).await.unwrap();
    assert_eq!(pulled.layers, original.layers);
    assert_eq!(pulled.config, original.config);
    assert_layers_intact(&dst.store, &pulled).await;

    let queries = fake.state.token_queries.lock().unwrap().clone();
    assert!(
        queries.iter().all(|q| q.contains("service=fake-registry")
            && q.contains("scope=repository%3Ateam%2Fbusybox%3Apull")),
        "{queries:?}"
    );
    let events = events.take();
    assert!(
        matches!(events.first(), Some(ProgressEvent::Resolved { .. })),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(ProgressEvent::Done { .. })),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_corrupt_layer_is_refused_and_nothing_is_kept() {
    let src = source().await;
    let fake = FakeRegistry::start(None).await;
    fake.serve_image(&src.store, "base:1", "busybox", "1").await;
    let original = src.store.resolve(&r("base:1")).await.unwrap();
    let layer = original.layers[0].digest.clone();
    fake.state.corrupt.lock().unwrap().insert(layer.to_string());

    let dst = new_store();
    let reference = format!("{}/busybox:1", fake.addr);
    let e = dst
        .store
        .pull(&pull_req(&reference, None), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(!dst.store.blobs().has_blob(&layer).await.unwrap());
    assert!(dst.store.list().await.unwrap().is_empty());
    assert!(
        dst.store
            .metadata()
            .get_manifest(&original.digest)
            .await
            .unwrap()
            .is_none()
    );

    // Served correctly, the same pull succeeds.
    fake.state.corrupt.lock().unwrap().clear();
    dst.store
        .pull(&pull_req(&reference, None), &|_| {})
        .await
        .unwrap();
    assert!(dst.store.blobs().has_blob(&layer).await.unwrap());
}

#[tokio::test]
async fn a_layer_that_disagrees_with_its_diff_id_is_refused() {
    let src = source().await;
    let fake = FakeRegistry::start(None).await;
    let (_, config, manifest) = fake.serve_image(&src.store, "base:1", "busybox", "1").await;
    let original = src.store.resolve(&r("base:1")).await.unwrap();
    let real_diff = original.layers[0].diff_id.to_string();
    let fake_diff = Digest::of(b"not this layer").to_string();

    let config = String::from_utf8(config)
        .unwrap()
        .replace(&real_diff, &fake_diff);
    let config_digest = fake.add_blob(config.as_bytes());
    let mut m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    m["config"]["digest"] = config_digest.to_string().into();
    m["config"]["size"] = config.len().into();
    let m = serde_json::to_vec(&m).unwrap();
    fake.add_manifest("busybox", "lying", devbox_image::media::OCI_MANIFEST, &m);

    let dst = new_store();
    let e = dst
        .store
        .pull(
            &pull_req(&format!("{}/busybox:lying", fake.addr), None),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains("diff id"), "{e}");
    assert!(
        !dst.store
            .blobs()
            .has_blob(&original.layers[0].digest)
            .await
            .unwrap()
    );
    assert!(dst.store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_index_resolves_to_this_platform_and_digests_pin() {
    let src = source().await;
    let fake = FakeRegistry::start(None).await;
    let (digest, _, manifest) = fake.serve_image(&src.store, "base:1", "busybox", "1").await;
    let other_arch = if host_arch() == "s390x" {
        "riscv64"
    } else {
        "s390x"
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": Digest::of(b"elsewhere").to_string(),
                "size": 9,
                "platform": { "os": "linux", "architecture": other_arch },
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": manifest.len(),
                "platform": { "os": "linux", "architecture": host_arch() },
            },
        ],
    });
    let index = serde_json::to_vec(&index).unwrap();
    fake.add_manifest(
        "busybox",
        "multi",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    let index_digest = Digest::of(&index);
    fake.add_manifest(
        "busybox",
        index_digest.as_str(),
        "application/vnd.oci.image.index.v1+json",
        &index,
    );

    let dst = new_store();
    let image = dst
        .store
        .pull(
            &pull_req(&format!("{}/busybox:multi", fake.addr), None),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        image.digest, digest,
        "the platform manifest is stored, not the index"
    );

    // By digest only: stored without a tag, resolvable by digest.
    let dst = new_store();
    let pinned = format!("{}/busybox@{index_digest}", fake.addr);
    let image = dst
        .store
        .pull(&pull_req(&pinned, None), &|_| {})
        .await
        .unwrap();
    assert_eq!(image.digest, digest);
    assert_eq!(image.tag, "");
    // The repository holds it without a tag: listed under its digest.
    let repository = format!("{}/busybox", fake.addr);
    let listed = dst.store.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (
            listed[0].repository.as_str(),
            listed[0].tag.as_str(),
            listed[0].reference.clone()
        ),
        (repository.as_str(), "", format!("{repository}@{digest}"))
    );
    assert_eq!(image.reference, listed[0].reference);
    assert_eq!(
        dst.store
            .resolve_digest(&digest)
            .await
            .unwrap()
            .layers
            .len(),
        1
    );

    // A registry serving other bytes for a pinned digest is caught.
    let wrong = Digest::of(b"pinned but different");
    fake.add_manifest(
        "busybox",
        wrong.as_str(),
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
    let e = dst
        .store
        .pull(
            &pull_req(&format!("{}/busybox@{wrong}", fake.addr), None),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");

    let e = dst
        .store
        .pull(
            &pull_req(&format!("{}/busybox:nope", fake.addr), None),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");

    // The image held by digest is removed by that reference.
    dst.store
        .remove(&r(&format!("{repository}@{digest}")))
        .await
        .unwrap();
    assert!(dst.store.list().await.unwrap().is_empty());
    let e = dst.store.resolve_digest(&digest).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
}
