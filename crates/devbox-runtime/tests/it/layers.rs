//! The layer store: verified, atomic, idempotent unpacking.

use std::sync::Arc;

use devbox_layer::compression::Compression;
use devbox_runtime::RuntimeError;

use crate::common::*;

fn tree_files(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn layers_unpack_once_and_only_when_their_digest_matches() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let store = rt.layers();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("etc")).unwrap();
    std::fs::write(src.path().join("etc/motd"), "hello\n").unwrap();
    let tar = pack(src.path());
    let diff_id = sha256(&tar);

    // A wrong diffID: an error naming both digests, and nothing kept.
    let wrong = sha256(b"something else");
    let e = store
        .unpack(&wrong, &tar[..], Compression::None)
        .unwrap_err();
    assert!(matches!(e, RuntimeError::DiffIdMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&wrong.to_string()) && msg.contains(&diff_id.to_string()),
        "{msg}"
    );
    assert!(!store.contains(&wrong));
    let layers_dir = root.path().join("layers/sha256");
    assert!(
        tree_files(&layers_dir).is_empty(),
        "leftovers: {:?}",
        tree_files(&layers_dir)
    );

    let path = store.unpack(&diff_id, &tar[..], Compression::None).unwrap();
    assert_eq!(path, store.path(&diff_id));
    assert!(store.contains(&diff_id));
    assert_eq!(
        std::fs::read_to_string(path.join("etc/motd")).unwrap(),
        "hello\n"
    );
    // Again: nothing happens, even with a reader that would fail.
    let again = store
        .unpack(&diff_id, &b"not a tar"[..], Compression::None)
        .unwrap();
    assert_eq!(again, path);
    assert_eq!(store.list().unwrap(), vec![diff_id.clone()]);

    store.remove(&diff_id).unwrap();
    assert!(!store.contains(&diff_id));
    store.remove(&diff_id).unwrap();
    assert!(tree_files(&layers_dir).is_empty());
}

#[tokio::test]
async fn racing_unpacks_of_one_layer_both_succeed() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let store = Arc::new(rt.layers().clone());
    let src = tempfile::tempdir().unwrap();
    busybox_rootfs(src.path());
    let tar = Arc::new(pack(src.path()));
    let diff_id = sha256(&tar);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (store, tar, diff_id) = (store.clone(), tar.clone(), diff_id.clone());
            tokio::task::spawn_blocking(move || store.unpack(&diff_id, &tar[..], Compression::None))
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap(), store.path(&diff_id));
    }
    let layers_dir = root.path().join("layers/sha256");
    assert_eq!(tree_files(&layers_dir), vec![diff_id.hex().to_owned()]);
    assert!(store.path(&diff_id).join("bin/busybox").is_file());
}
