//! A database made by the first schema opens under the current one and keeps its rows.

use devbox_model::State;
use devbox_store::{DevboxStore, ImageMetadata, ImageName, SqliteStore, StoreError};

use crate::support::digest;

/// The first schema, as the first release created it.
const FIRST_SCHEMA: &str = r#"
CREATE TABLE devboxes (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, image TEXT NOT NULL,
    image_digest TEXT NOT NULL, state TEXT NOT NULL, error TEXT,
    cpus REAL NOT NULL, memory INTEGER NOT NULL, pids INTEGER NOT NULL,
    env TEXT NOT NULL, command TEXT, ip TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE manifests (
    digest TEXT PRIMARY KEY, media_type TEXT NOT NULL, content BLOB NOT NULL,
    config_digest TEXT NOT NULL, size INTEGER NOT NULL, layers INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE tags (
    repository TEXT NOT NULL, tag TEXT NOT NULL,
    digest TEXT NOT NULL REFERENCES manifests(digest), updated_at TEXT NOT NULL,
    PRIMARY KEY (repository, tag)
);
CREATE INDEX tags_by_digest ON tags(digest);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
PRAGMA user_version = 1;
"#;

#[tokio::test]
async fn a_database_of_the_first_schema_opens_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devbox.db");
    let (image, config) = (digest('a'), digest('c'));
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(FIRST_SCHEMA).unwrap();
        c.execute(
            "INSERT INTO manifests VALUES (?1, 'application/vnd.oci.image.manifest.v1+json', x'7b7d', ?2, 42, 1, '2026-01-01T00:00:00Z')",
            [image.as_str(), config.as_str()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO tags VALUES ('base', '1', ?1, '2026-01-01T00:00:00Z')",
            [image.as_str()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO devboxes VALUES ('0101010101010101', 'web', 'base:1', ?1, 'running', NULL,
             1.5, 1073741824, 4096, '[\"FOO=bar\"]', '[\"sleep\",\"9\"]', '10.77.0.2',
             '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z')",
            [image.as_str()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO tokens VALUES ('1', 'admin', 'h', '2026-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();
    let web = store
        .get_devbox(&"web".parse().unwrap())
        .await
        .unwrap()
        .expect("the devbox survives the migration");
    assert_eq!(web.state, State::Running);
    assert_eq!(web.image_digest, image);
    assert_eq!(web.resources.cpus, 1.5);
    assert_eq!(web.env, vec!["FOO=bar".parse().unwrap()]);
    assert_eq!(web.command, Some(vec!["sleep".to_owned(), "9".to_owned()]));
    assert_eq!(web.ip, Some("10.77.0.2".parse().unwrap()));
    assert_eq!((web.applied, web.oom_kills, web.reason), (None, 0, None));
    assert_eq!(
        store.get_tag("base", "1").await.unwrap().unwrap().digest,
        image
    );
    let held = store.list_repository_manifests().await.unwrap();
    assert_eq!(held.len(), 1, "tags become repository links");
    use devbox_store::TokenStore as _;
    assert_eq!(store.count_tokens().await.unwrap(), 1);

    // The migrated devbox keeps its image.
    let e = store
        .remove_image("base", ImageName::Tag("1"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::InUse { .. }), "{e}");
    drop(store);

    // Opening again runs nothing more.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.list_devboxes().await.unwrap().len(), 1);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
}
