use chrono::{Duration, Utc};
use devbox_store::{KeyRecord, KeyStore, SqliteStore, StoreError};

fn key(id: &str, owner: &str, fp: &str, age: i64) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        owner: owner.into(),
        name: format!("{id}@laptop"),
        algorithm: "ssh-ed25519".into(),
        public_key: format!("ssh-ed25519 AAAA{id}"),
        fingerprint: fp.into(),
        created_at: Utc::now() - Duration::seconds(age),
    }
}

#[tokio::test]
async fn keys_are_listed_per_owner_and_found_by_fingerprint() {
    let store = SqliteStore::open_in_memory().unwrap();
    let (a, b, c) = (
        key("a", "admin", "SHA256:a", 10),
        key("b", "admin", "SHA256:b", 5),
        key("c", "other", "SHA256:c", 1),
    );
    for k in [&b, &a, &c] {
        store.insert_key(k).await.unwrap();
    }
    assert_eq!(
        store.list_keys("admin").await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(store.list_keys("nobody").await.unwrap(), vec![]);
    assert_eq!(store.find_key("SHA256:c").await.unwrap(), Some(c.clone()));
    assert_eq!(store.find_key("SHA256:x").await.unwrap(), None);
}

#[tokio::test]
async fn a_key_is_registered_once_and_removed_only_by_its_owner() {
    let store = SqliteStore::open_in_memory().unwrap();
    let a = key("a", "admin", "SHA256:a", 0);
    store.insert_key(&a).await.unwrap();
    let again = key("a2", "other", "SHA256:a", 0);
    let e = store.insert_key(&again).await.unwrap_err();
    assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e:?}");
    assert!(!store.delete_key("other", "a").await.unwrap());
    assert!(store.delete_key("admin", "SHA256:a").await.unwrap());
    assert!(!store.delete_key("admin", "a").await.unwrap());
    assert_eq!(store.find_key("SHA256:a").await.unwrap(), None);
}
