//! Pull errors a user can act on: a registry that is not running, one that
//! speaks plain HTTP, and which errors the first step reports.

use devbox_image::ImageError;
use devbox_model::api::{ErrorCode, PullRequest};

use crate::common::*;
use crate::fake_registry::FakeRegistry;

fn req(reference: &str, insecure: bool) -> PullRequest {
    PullRequest {
        reference: r(reference),
        username: None,
        password: None,
        insecure,
    }
}

#[tokio::test]
async fn a_registry_that_is_not_running_is_connection_refused() {
    let env = new_store();
    // A port that was free a moment ago and has no listener now.
    let addr = format!("127.0.0.1:{}", free_port());
    for insecure in [false, true] {
        let e = env
            .store
            .begin_pull(&req(&format!("{addr}/busybox:1"), insecure))
            .await
            .unwrap_err();
        assert!(matches!(e, ImageError::Unreachable { .. }), "{e}");
        assert_eq!(e.code(), ErrorCode::Upstream);
        let msg = e.to_string();
        assert!(msg.contains("connection refused"), "{msg}");
        assert!(msg.contains(&addr), "{msg}");
    }
}

#[tokio::test]
async fn a_plain_http_registry_without_insecure_says_to_pass_it() {
    let src = new_store();
    let upload = write(src.dir.path(), "rootfs.tar", &busybox_rootfs());
    src.store
        .import(&r("base:1"), &upload, &|_| {})
        .await
        .unwrap();
    let fake = FakeRegistry::start(None).await;
    fake.serve_image(&src.store, "base:1", "busybox", "1").await;
    let reference = format!("{}/busybox:1", fake.addr);

    let dst = new_store();
    let e = dst
        .store
        .begin_pull(&req(&reference, false))
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::PlainHttp { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let msg = e.to_string();
    assert!(
        msg.contains("plain HTTP") && msg.contains("pass --insecure"),
        "{msg}"
    );
    assert!(msg.contains(&fake.addr), "{msg}");

    dst.store
        .pull(&req(&reference, true), &|_| {})
        .await
        .unwrap();
}

#[tokio::test]
async fn manifest_errors_come_first_and_layer_errors_later() {
    let src = new_store();
    let upload = write(src.dir.path(), "rootfs.tar", &busybox_rootfs());
    src.store
        .import(&r("base:1"), &upload, &|_| {})
        .await
        .unwrap();
    let fake = FakeRegistry::start(None).await;
    let (digest, _, _) = fake.serve_image(&src.store, "base:1", "busybox", "1").await;
    let dst = new_store();

    let e = dst
        .store
        .begin_pull(&req(&format!("{}/busybox:nope", fake.addr), true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");

    let layer = src.store.resolve(&r("base:1")).await.unwrap().layers[0]
        .digest
        .clone();
    fake.state.corrupt.lock().unwrap().insert(layer.to_string());
    let pending = dst
        .store
        .begin_pull(&req(&format!("{}/busybox:1", fake.addr), true))
        .await
        .expect("the manifest is sound; only a layer is corrupt");
    assert_eq!(pending.digest(), &digest);
    let e = pending.finish(&|_| {}).await.unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    assert!(dst.store.list().await.unwrap().is_empty());
}
