//! Integration tests of the SQLite store through the `Store` trait.

use std::sync::Arc;

use chrono::Utc;
use devbox_model::api::Devbox;
use devbox_model::{DevboxId, Resources, State};
use devbox_store::{ManifestRecord, SqliteStore, Store, StoreError, TokenRecord};

fn devbox(name: &str, id_byte: u8, ip: &str) -> Devbox {
    Devbox {
        id: DevboxId::from_random([id_byte; 8]),
        name: name.parse().unwrap(),
        image: "base:1".into(),
        image_digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
        reason: None,
        oom_kills: 0,
        command_status: None,
        pending: Vec::new(),
        state: State::Creating,
        error: None,
        resources: Resources::default(),
        env: vec!["FOO=bar".parse().unwrap()],
        command: Some(vec!["sleep".into(), "1".into()]),
        ip: ip.into(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn manifest(digest: &str) -> ManifestRecord {
    ManifestRecord {
        digest: digest.into(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        content: b"{}".to_vec(),
        config_digest: format!("sha256:{}", "c".repeat(64)),
        size: 42,
        layers: 1,
        created_at: Utc::now(),
    }
}

#[tokio::test]
async fn devboxes_round_trip_and_names_are_unique() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let web = devbox("web", 1, "10.77.0.2");
    store.insert_devbox(&web).await.unwrap();
    let got = store.get_devbox(&web.name).await.unwrap().unwrap();
    assert_eq!(got.id, web.id);
    assert_eq!(got.env, web.env);
    assert_eq!(got.command, web.command);
    assert_eq!(got.resources, web.resources);
    assert_eq!(got.state, State::Creating);

    let dup = devbox("web", 2, "10.77.0.3");
    let e = store.insert_devbox(&dup).await.unwrap_err();
    assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e}");
    assert!(e.to_string().contains("devbox web"), "{e}");
    let same_ip = devbox("db", 3, "10.77.0.2");
    let e = store.insert_devbox(&same_ip).await.unwrap_err();
    assert!(e.to_string().contains("address 10.77.0.2"), "{e}");

    store
        .set_state(&web.id, State::Error, Some("boom"))
        .await
        .unwrap();
    let got = store.get_devbox(&web.name).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.error.as_deref()),
        (State::Error, Some("boom"))
    );
    store
        .set_state(&web.id, State::Stopped, None)
        .await
        .unwrap();
    assert_eq!(
        store.get_devbox(&web.name).await.unwrap().unwrap().error,
        None
    );

    store
        .insert_devbox(&devbox("api", 4, "10.77.0.4"))
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_devboxes()
        .await
        .unwrap()
        .iter()
        .map(|d| d.name.to_string())
        .collect();
    assert_eq!(names, ["api", "web"]);

    store.delete_devbox(&web.id).await.unwrap();
    assert!(store.get_devbox(&web.name).await.unwrap().is_none());
    let e = store
        .set_state(&web.id, State::Running, None)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn tags_need_their_manifest_and_protect_it() {
    let store = SqliteStore::open_in_memory().unwrap();
    let d = format!("sha256:{}", "b".repeat(64));
    let e = store.set_tag("base", "1", &d).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    store.put_manifest(&manifest(&d)).await.unwrap();
    store.put_manifest(&manifest(&d)).await.unwrap();
    store.set_tag("base", "1", &d).await.unwrap();
    store.set_tag("base", "2", &d).await.unwrap();
    assert_eq!(store.get_tag("base", "1").await.unwrap().unwrap().digest, d);
    assert_eq!(store.list_tags().await.unwrap().len(), 2);
    assert!(!store.delete_manifest_if_untagged(&d).await.unwrap());
    assert!(store.delete_tag("base", "1").await.unwrap());
    assert!(!store.delete_tag("base", "1").await.unwrap());
    assert!(store.delete_tag("base", "2").await.unwrap());
    assert!(store.delete_manifest_if_untagged(&d).await.unwrap());
    assert!(store.get_manifest(&d).await.unwrap().is_none());
}

#[tokio::test]
async fn tokens_are_found_by_hash() {
    let store = SqliteStore::open_in_memory().unwrap();
    assert_eq!(store.count_tokens().await.unwrap(), 0);
    let t = TokenRecord {
        id: "1".into(),
        name: "admin".into(),
        hash: "h".into(),
        created_at: Utc::now(),
    };
    store.insert_token(&t).await.unwrap();
    assert_eq!(store.find_token("h").await.unwrap(), Some(t.clone()));
    assert_eq!(store.find_token("x").await.unwrap(), None);
    let e = store.insert_token(&t).await.unwrap_err();
    assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e:?}");
}

#[tokio::test]
async fn a_file_database_survives_reopening_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devbox.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .insert_devbox(&devbox("web", 1, "10.77.0.2"))
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.list_devboxes().await.unwrap().len(), 1);
    let e = SqliteStore::open(&dir.path().join("missing/dir/x.db")).unwrap_err();
    assert!(e.to_string().contains("missing/dir/x.db"), "{e}");
}
