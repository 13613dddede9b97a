//! Manifests, tags and repositories; an image in use cannot lose its last name.

use std::sync::Arc;

use devbox_model::State;
use devbox_store::{
    DevboxStore, ImageMetadata, ImageName, SqliteStore, Store, StoreError, Transition,
};

use crate::support::{devbox, digest, manifest};

#[tokio::test]
async fn tags_need_their_manifest_and_protect_it() {
    let store = SqliteStore::open_in_memory().unwrap();
    let d = digest('b');
    let e = store.set_tag("base", "1", &d).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    store.put_manifest(&manifest(&d)).await.unwrap();
    store.put_manifest(&manifest(&d)).await.unwrap();
    store.set_tag("base", "1", &d).await.unwrap();
    store.set_tag("base", "2", &d).await.unwrap();
    assert_eq!(store.get_tag("base", "1").await.unwrap().unwrap().digest, d);
    assert_eq!(store.list_tags().await.unwrap().len(), 2);

    let removal = store
        .remove_image("base", ImageName::Tag("1"))
        .await
        .unwrap();
    assert_eq!(
        (removal.digest.clone(), removal.manifest_deleted),
        (d.clone(), false)
    );
    let e = store
        .remove_image("base", ImageName::Tag("1"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    assert!(store.get_manifest(&d).await.unwrap().is_some());
    let removal = store
        .remove_image("base", ImageName::Tag("2"))
        .await
        .unwrap();
    assert!(removal.manifest_deleted);
    assert!(store.get_manifest(&d).await.unwrap().is_none());
    assert!(store.list_repository_manifests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_tag_pinned_to_another_manifest_is_not_removed() {
    let store = SqliteStore::open_in_memory().unwrap();
    let (a, b) = (digest('a'), digest('b'));
    store.put_manifest(&manifest(&a)).await.unwrap();
    store.set_tag("base", "1", &a).await.unwrap();
    let e = store
        .remove_image("base", ImageName::TagAt("1", &b))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    assert!(store.get_tag("base", "1").await.unwrap().is_some());
    store
        .remove_image("base", ImageName::TagAt("1", &a))
        .await
        .unwrap();
    assert!(store.get_tag("base", "1").await.unwrap().is_none());
}

#[tokio::test]
async fn a_repository_holds_a_manifest_without_a_tag() {
    let store = SqliteStore::open_in_memory().unwrap();
    let d = digest('d');
    let e = store.link_manifest("tools", &d).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    store.put_manifest(&manifest(&d)).await.unwrap();
    store.link_manifest("tools", &d).await.unwrap();
    store.link_manifest("tools", &d).await.unwrap();
    let held = store.list_repository_manifests().await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].repository.as_str(), &held[0].digest),
        ("tools", &d)
    );
    assert!(store.list_tags().await.unwrap().is_empty());

    let e = store
        .remove_image("other", ImageName::Digest(&d))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    let removal = store
        .remove_image("tools", ImageName::Digest(&d))
        .await
        .unwrap();
    assert!(removal.manifest_deleted);
    assert!(store.get_manifest(&d).await.unwrap().is_none());
}

#[tokio::test]
async fn moving_a_tag_releases_the_old_manifest_from_the_repository() {
    let store = SqliteStore::open_in_memory().unwrap();
    let (a, b) = (digest('a'), digest('b'));
    store.put_manifest(&manifest(&a)).await.unwrap();
    store.put_manifest(&manifest(&b)).await.unwrap();
    store.set_tag("base", "1", &a).await.unwrap();
    store.set_tag("base", "1", &b).await.unwrap();
    let held: Vec<_> = store
        .list_repository_manifests()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.digest)
        .collect();
    assert_eq!(held, [b]);
}

#[tokio::test]
async fn an_image_in_use_keeps_its_last_name_and_loses_nothing() {
    let store = SqliteStore::open_in_memory().unwrap();
    let d = digest('a');
    store.put_manifest(&manifest(&d)).await.unwrap();
    store.set_tag("base", "1", &d).await.unwrap();
    store.set_tag("base", "2", &d).await.unwrap();
    let web = devbox("web", 1, &d);
    store.insert_devbox(&web).await.unwrap();

    // Another name remains: this one may go.
    store
        .remove_image("base", ImageName::Tag("2"))
        .await
        .unwrap();
    let e = store
        .remove_image("base", ImageName::Tag("1"))
        .await
        .unwrap_err();
    match &e {
        StoreError::InUse { manifest, devboxes } => {
            assert_eq!(manifest, &d);
            assert_eq!(devboxes, std::slice::from_ref(&web.name));
        }
        other => panic!("expected the image to be in use, got {other}"),
    }
    assert!(e.to_string().contains("devbox web"), "{e}");
    // Nothing was removed.
    assert_eq!(store.get_tag("base", "1").await.unwrap().unwrap().digest, d);
    assert_eq!(store.list_repository_manifests().await.unwrap().len(), 1);
    assert!(store.get_manifest(&d).await.unwrap().is_some());

    store.delete_devbox(&web.id).await.unwrap();
    let removal = store
        .remove_image("base", ImageName::Digest(&d))
        .await
        .unwrap();
    assert!(removal.manifest_deleted);
}

#[tokio::test]
async fn a_devbox_cannot_be_created_from_a_removed_manifest() {
    let store = SqliteStore::open_in_memory().unwrap();
    let d = digest('a');
    let e = store
        .insert_devbox(&devbox("web", 1, &d))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains(d.as_str()), "{e}");
    assert!(store.list_devboxes().await.unwrap().is_empty());
}

/// Removing an image while devboxes are created from it, many times over:
/// whatever the interleaving, either the removal or the create loses, never
/// both win (which would leave a devbox without its image).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_image_never_races_a_create() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let d = digest('a');
    for round in 0..50u8 {
        store.put_manifest(&manifest(&d)).await.unwrap();
        store.set_tag("base", "1", &d).await.unwrap();
        let record = devbox(&format!("web{round}"), round, &d);
        let (s1, s2) = (store.clone(), store.clone());
        let create = tokio::spawn(async move { s1.insert_devbox(&record).await });
        let remove =
            tokio::spawn(async move { s2.remove_image("base", ImageName::Tag("1")).await });
        let (created, removed) = (create.await.unwrap(), remove.await.unwrap());
        match (&created, &removed) {
            (Ok(()), Err(StoreError::InUse { .. })) => {}
            (Err(StoreError::NotFound { .. }), Ok(r)) => assert!(r.manifest_deleted),
            other => panic!("round {round}: both or neither won: {other:?}"),
        }
        for dbx in store.list_devboxes().await.unwrap() {
            assert!(
                store
                    .get_manifest(&dbx.image_digest)
                    .await
                    .unwrap()
                    .is_some(),
                "round {round}: devbox {} lost its image",
                dbx.name
            );
            store
                .transition(
                    &dbx.id,
                    State::Creating,
                    State::Deleting,
                    &Transition::plain(),
                )
                .await
                .unwrap();
            store.delete_devbox(&dbx.id).await.unwrap();
        }
        let _ = store.remove_image("base", ImageName::Tag("1")).await;
    }
}
