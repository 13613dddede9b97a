use chrono::Utc;
use devbox_store::{SqliteStore, StoreError, TokenRecord, TokenStore};

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
