//! The registry's queries: repositories, tags by page, referrers, blobs in use.

use chrono::Utc;
use devbox_model::Digest;
use devbox_store::{ImageMetadata, ManifestRecord, RegistryMetadata, SqliteStore};

use crate::support::digest;

fn manifest_json(config: &Digest, layers: &[&Digest], subject: Option<&Digest>) -> Vec<u8> {
    let desc = |d: &Digest| serde_json::json!({"mediaType": "application/octet-stream", "digest": d.as_str(), "size": 1});
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc(config),
        "layers": layers.iter().map(|d| desc(d)).collect::<Vec<_>>(),
    });
    if let Some(s) = subject {
        m["subject"] = desc(s);
    }
    serde_json::to_vec(&m).unwrap()
}

async fn put(store: &SqliteStore, content: Vec<u8>, config: &Digest) -> Digest {
    let d = Digest::of(&content);
    store
        .put_manifest(&ManifestRecord {
            digest: d.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            content,
            config_digest: config.clone(),
            size: 1,
            layers: 1,
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    d
}

#[tokio::test]
async fn repositories_and_tags_come_in_pages_in_lexical_order() {
    let store = SqliteStore::open_in_memory().unwrap();
    let m = put(
        &store,
        manifest_json(&digest('c'), &[&digest('1')], None),
        &digest('c'),
    )
    .await;
    for (repo, tag) in [
        ("b/x", "2"),
        ("b/x", "10"),
        ("a", "1"),
        ("b/x", "1"),
        ("c", "v"),
    ] {
        store.set_tag(repo, tag, &m).await.unwrap();
    }
    store.link_manifest("d", &m).await.unwrap();
    assert_eq!(
        store.list_repositories(None, 10).await.unwrap(),
        ["a", "b/x", "c", "d"]
    );
    assert_eq!(
        store.list_repositories(Some("a"), 2).await.unwrap(),
        ["b/x", "c"]
    );
    assert_eq!(
        store.list_repository_tags("b/x", None, 2).await.unwrap(),
        ["1", "10"]
    );
    assert_eq!(
        store
            .list_repository_tags("b/x", Some("10"), 5)
            .await
            .unwrap(),
        ["2"]
    );
    assert!(
        store
            .list_repository_tags("d", None, 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.repository_exists("d").await.unwrap());
    assert!(!store.repository_exists("b").await.unwrap());
    assert!(store.holds_manifest("c", &m).await.unwrap());
    assert!(!store.holds_manifest("e", &m).await.unwrap());
}

#[tokio::test]
async fn referrers_are_the_repository_s_manifests_naming_the_subject() {
    let store = SqliteStore::open_in_memory().unwrap();
    let subject = put(
        &store,
        manifest_json(&digest('c'), &[&digest('1')], None),
        &digest('c'),
    )
    .await;
    store.set_tag("app", "1", &subject).await.unwrap();
    let sig = put(
        &store,
        manifest_json(&digest('e'), &[&digest('2')], Some(&subject)),
        &digest('e'),
    )
    .await;
    store.link_manifest("app", &sig).await.unwrap();
    let elsewhere = put(
        &store,
        manifest_json(&digest('f'), &[], Some(&subject)),
        &digest('f'),
    )
    .await;
    store.link_manifest("other", &elsewhere).await.unwrap();

    let found = store.list_referrers("app", &subject).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, sig);
    assert!(store.list_referrers("app", &sig).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_blob_is_in_use_while_a_manifest_names_it() {
    let store = SqliteStore::open_in_memory().unwrap();
    let m = put(
        &store,
        manifest_json(&digest('c'), &[&digest('1'), &digest('2')], None),
        &digest('c'),
    )
    .await;
    store.set_tag("app", "1", &m).await.unwrap();
    for d in ['c', '1', '2'] {
        assert!(store.blob_in_use(&digest(d)).await.unwrap(), "{d}");
    }
    assert!(!store.blob_in_use(&digest('3')).await.unwrap());
    store
        .remove_image("app", devbox_store::ImageName::Tag("1"))
        .await
        .unwrap();
    assert!(!store.blob_in_use(&digest('1')).await.unwrap());
}
