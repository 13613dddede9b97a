//! The schema, as the list of migrations that build it. A migration is
//! never edited once released: databases made by older versions are moved
//! forward by the ones after it.

use rusqlite::Connection;

use super::Ctx as _;
use crate::StoreError;

/// Schema versions in order; `PRAGMA user_version` records how many ran.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE devboxes (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    image        TEXT NOT NULL,
    image_digest TEXT NOT NULL,
    state        TEXT NOT NULL,
    error        TEXT,
    cpus         REAL NOT NULL,
    memory       INTEGER NOT NULL,
    pids         INTEGER NOT NULL,
    env          TEXT NOT NULL,
    command      TEXT,
    ip           TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE TABLE manifests (
    digest        TEXT PRIMARY KEY,
    media_type    TEXT NOT NULL,
    content       BLOB NOT NULL,
    config_digest TEXT NOT NULL,
    size          INTEGER NOT NULL,
    layers        INTEGER NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE TABLE tags (
    repository TEXT NOT NULL,
    tag        TEXT NOT NULL,
    digest     TEXT NOT NULL REFERENCES manifests(digest),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (repository, tag)
);
CREATE INDEX tags_by_digest ON tags(digest);
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
"#,
    // Devboxes get the store's own record: what a run reported, the
    // settings it started with, an address that belongs to the runtime (so
    // neither unique nor known before the first start), and a foreign key
    // that keeps their manifest stored. Repositories remember the manifests
    // they hold without a tag. SQLite cannot add a foreign key to a table,
    // so the devboxes table is rebuilt.
    r#"
CREATE TABLE devboxes_new (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    image          TEXT NOT NULL,
    image_digest   TEXT NOT NULL REFERENCES manifests(digest),
    state          TEXT NOT NULL,
    error          TEXT,
    reason         TEXT,
    cpus           REAL NOT NULL,
    memory         INTEGER NOT NULL,
    pids           INTEGER NOT NULL,
    env            TEXT NOT NULL,
    command        TEXT,
    applied        TEXT,
    ip             TEXT,
    oom_kills      INTEGER NOT NULL DEFAULT 0,
    command_status TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
INSERT INTO devboxes_new (id, name, image, image_digest, state, error, cpus, memory, pids, env, command, ip, created_at, updated_at)
    SELECT id, name, image, image_digest, state, error, cpus, memory, pids, env, command, NULLIF(ip, ''), created_at, updated_at
    FROM devboxes;
DROP TABLE devboxes;
ALTER TABLE devboxes_new RENAME TO devboxes;
CREATE INDEX devboxes_by_image ON devboxes(image_digest);
CREATE TABLE repository_manifests (
    repository TEXT NOT NULL,
    digest     TEXT NOT NULL REFERENCES manifests(digest),
    created_at TEXT NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX repository_manifests_by_digest ON repository_manifests(digest);
INSERT INTO repository_manifests (repository, digest, created_at)
    SELECT repository, digest, MIN(updated_at) FROM tags GROUP BY repository, digest;
"#,
    // Commits: each devbox's history, its head and its commit settings. A
    // commit's image is an ordinary manifest; when retention removes it, the
    // commit stays as history with no manifest.
    r#"
CREATE TABLE commit_state (
    devbox_id        TEXT PRIMARY KEY REFERENCES devboxes(id) ON DELETE CASCADE,
    auto_commit_secs INTEGER,
    exclude          TEXT NOT NULL DEFAULT '[]',
    head             TEXT,
    active_base      TEXT,
    run              TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE commits (
    id             TEXT PRIMARY KEY,
    devbox_id      TEXT NOT NULL REFERENCES devboxes(id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    parent         TEXT,
    created_at     TEXT NOT NULL,
    trigger        TEXT NOT NULL,
    message        TEXT NOT NULL,
    manifest       TEXT REFERENCES manifests(digest) ON DELETE SET NULL,
    layer_digest   TEXT NOT NULL,
    diff_id        TEXT NOT NULL,
    layer_size     INTEGER NOT NULL,
    excluded_bytes INTEGER NOT NULL DEFAULT 0,
    pinned         INTEGER NOT NULL DEFAULT 0,
    merged_into    TEXT,
    UNIQUE (devbox_id, seq)
);
CREATE INDEX commits_by_manifest ON commits(manifest);
"#,
    // The registry finds the manifests that name another one as their
    // subject (the referrers API) through an index on that JSON field.
    r#"
CREATE INDEX manifests_by_subject ON manifests(json_extract(CAST(content AS TEXT), '$.subject.digest'));
"#,
    // SSH public keys, each owned by the caller that registered it; a key
    // (by its fingerprint) belongs to one owner only, so a login names
    // exactly one.
    r#"
CREATE TABLE ssh_keys (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
CREATE INDEX ssh_keys_by_owner ON ssh_keys(owner);
"#,
    // Ingress settings of devboxes' ports: who may reach each one through
    // the proxy, and the key its signed links are made with. A port
    // without a row is private.
    r#"
CREATE TABLE ports (
    devbox_id TEXT NOT NULL REFERENCES devboxes(id) ON DELETE CASCADE,
    port      INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    access    TEXT NOT NULL,
    link_key  TEXT NOT NULL,
    PRIMARY KEY (devbox_id, port)
);
"#,
    // Idle auto-stop: how long each devbox may be idle before it is
    // stopped. A devbox without a row never is.
    r#"
CREATE TABLE auto_stop (
    devbox_id TEXT PRIMARY KEY REFERENCES devboxes(id) ON DELETE CASCADE,
    secs      INTEGER NOT NULL CHECK (secs > 0)
);
"#,
    // Releases: a devbox's commits tagged as versions in its repository.
    // The image is the tag's, so a release lives exactly as long as its tag:
    // removing the tag (by any path) removes the release, and the devbox's
    // deletion removes the record but leaves the tag, and so the image.
    r#"
CREATE TABLE releases (
    devbox_id  TEXT NOT NULL REFERENCES devboxes(id) ON DELETE CASCADE,
    version    TEXT NOT NULL,
    repository TEXT NOT NULL,
    commit_id  TEXT NOT NULL REFERENCES commits(id) ON DELETE CASCADE,
    notes      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (devbox_id, version),
    FOREIGN KEY (repository, version) REFERENCES tags(repository, tag) ON DELETE CASCADE
);
CREATE INDEX releases_by_commit ON releases(commit_id);
"#,
];

/// Runs the migrations the database has not run yet, each in its own
/// transaction.
///
/// Foreign keys are off meanwhile (SQLite cannot switch them inside a
/// transaction): rebuilding a table drops and re-creates the target of
/// other tables' references, and rows that an older version let point at
/// nothing must be carried over, not lost. They are switched on after.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "foreign_keys", "OFF")
        .ctx("switch foreign keys off for migrations")?;
    let version: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .ctx("read the schema version")?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().ctx("begin a migration")?;
        tx.execute_batch(sql).ctx("migrate the schema")?;
        tx.pragma_update(None, "user_version", i + 1)
            .ctx("record the schema version")?;
        tx.commit().ctx("commit a migration")?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")
        .ctx("switch foreign keys on")?;
    Ok(())
}
