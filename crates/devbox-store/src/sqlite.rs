//! The SQLite implementation of [`Store`]: one file, WAL journal, one
//! connection serialized behind a mutex and driven from blocking threads.
//!
//! A single connection is enough for one machine's control plane: every
//! query is a point lookup or a small scan, and serializing them gives the
//! one-transaction-per-method guarantee without busy retries.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use devbox_model::api::Devbox;
use devbox_model::{ByteSize, DevboxId, DevboxName, Resources, State};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{ManifestRecord, Store, StoreError, TagRecord, TokenRecord};

/// Schema versions in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[r#"
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
"#];

/// The SQLite-backed store. Cloning shares the connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        Self::init(conn).map_err(|e| match e {
            StoreError::Sqlite(source) => open_err(source),
            other => other,
        })
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half-done
            // transaction behind (rusqlite rolls back on drop), so a
            // poisoned lock is safe to reuse.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await?
    }
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn parse_ts(column: &'static str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            column,
            message: e.to_string(),
        })
}

fn corrupt(column: &'static str) -> impl Fn(String) -> StoreError {
    move |message| StoreError::Corrupt { column, message }
}

const DEVBOX_COLUMNS: &str = "id, name, image, image_digest, state, error, cpus, memory, pids, env, command, ip, created_at, updated_at";

/// Raw column values, read inside rusqlite's row callback and decoded after.
type RawDevbox = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    f64,
    i64,
    i64,
    String,
    Option<String>,
    String,
    String,
    String,
);

fn raw_devbox(r: &Row<'_>) -> rusqlite::Result<RawDevbox> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
    ))
}

fn decode_devbox(raw: RawDevbox) -> Result<Devbox, StoreError> {
    let (id, name, image, image_digest, state, error, cpus, memory, pids, env, command, ip, c, u) =
        raw;
    Ok(Devbox {
        id: id
            .parse()
            .map_err(|e: devbox_model::id::InvalidId| corrupt("id")(e.to_string()))?,
        name: name
            .parse()
            .map_err(|e: devbox_model::NameError| corrupt("name")(e.to_string()))?,
        image,
        image_digest: image_digest
            .parse()
            .map_err(|e: devbox_model::DigestError| corrupt("image_digest")(e.to_string()))?,
        reason: None,
        oom_kills: 0,
        command_status: None,
        pending: Vec::new(),
        state: state
            .parse()
            .map_err(|e: devbox_model::state::UnknownState| corrupt("state")(e.to_string()))?,
        error,
        resources: Resources {
            cpus,
            memory: ByteSize(u64::try_from(memory).map_err(|e| corrupt("memory")(e.to_string()))?),
            pids: u32::try_from(pids).map_err(|e| corrupt("pids")(e.to_string()))?,
        },
        env: serde_json::from_str(&env).map_err(|e| corrupt("env")(e.to_string()))?,
        command: command
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .map_err(|e| corrupt("command")(e.to_string()))?,
        ip,
        created_at: parse_ts("created_at", &c)?,
        updated_at: parse_ts("updated_at", &u)?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// Raw manifest columns, decoded after the row callback.
type RawManifest = (String, String, Vec<u8>, String, i64, i64, String);

fn decode_manifest(r: &Row<'_>) -> rusqlite::Result<RawManifest> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn decode_tag(r: &Row<'_>) -> rusqlite::Result<(String, String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn tag_record(
    (repository, tag, digest, u): (String, String, String, String),
) -> Result<TagRecord, StoreError> {
    Ok(TagRecord {
        repository,
        tag,
        digest,
        updated_at: parse_ts("updated_at", &u)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_devbox(&self, d: &Devbox) -> Result<(), StoreError> {
        let d = d.clone();
        self.run(move |c| {
            let env = serde_json::to_string(&d.env).map_err(|e| corrupt("env")(e.to_string()))?;
            let command = d
                .command
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| corrupt("command")(e.to_string()))?;
            let r = c.execute(
                &format!("INSERT INTO devboxes ({DEVBOX_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
                params![
                    d.id.as_str(),
                    d.name.as_str(),
                    d.image,
                    d.image_digest.as_str(),
                    d.state.as_str(),
                    d.error,
                    d.resources.cpus,
                    d.resources.memory.0 as i64,
                    d.resources.pids,
                    env,
                    command,
                    d.ip,
                    ts(&d.created_at),
                    ts(&d.updated_at),
                ],
            );
            match r {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => {
                    let what = if e.to_string().contains("devboxes.ip") {
                        format!("address {}", d.ip)
                    } else {
                        format!("devbox {}", d.name)
                    };
                    Err(StoreError::AlreadyExists { what })
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn get_devbox(&self, name: &DevboxName) -> Result<Option<Devbox>, StoreError> {
        let name = name.as_str().to_owned();
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {DEVBOX_COLUMNS} FROM devboxes WHERE name = ?1"),
                [name],
                raw_devbox,
            )
            .optional()?
            .map(decode_devbox)
            .transpose()
        })
        .await
    }

    async fn list_devboxes(&self) -> Result<Vec<Devbox>, StoreError> {
        self.run(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {DEVBOX_COLUMNS} FROM devboxes ORDER BY name"
            ))?;
            let rows = stmt
                .query_map([], raw_devbox)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(decode_devbox).collect()
        })
        .await
    }

    async fn set_state(
        &self,
        id: &DevboxId,
        state: State,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        let error = error.map(str::to_owned);
        self.run(move |c| {
            let n = c.execute(
                "UPDATE devboxes SET state = ?2, error = ?3, updated_at = ?4 WHERE id = ?1",
                params![id.as_str(), state.as_str(), error, ts(&Utc::now())],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: format!("devbox {id}"),
                });
            }
            Ok(())
        })
        .await
    }

    async fn delete_devbox(&self, id: &DevboxId) -> Result<(), StoreError> {
        let id = id.clone();
        self.run(move |c| {
            c.execute("DELETE FROM devboxes WHERE id = ?1", [id.as_str()])?;
            Ok(())
        })
        .await
    }

    async fn put_manifest(&self, m: &ManifestRecord) -> Result<(), StoreError> {
        let m = m.clone();
        self.run(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO manifests (digest, media_type, content, config_digest, size, layers, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![m.digest, m.media_type, m.content, m.config_digest, m.size as i64, m.layers, ts(&m.created_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_manifest(&self, digest: &str) -> Result<Option<ManifestRecord>, StoreError> {
        let digest = digest.to_owned();
        self.run(move |c| {
            let row = c
                .query_row(
                    "SELECT digest, media_type, content, config_digest, size, layers, created_at FROM manifests WHERE digest = ?1",
                    [digest],
                    decode_manifest,
                )
                .optional()?;
            row.map(|(digest, media_type, content, config_digest, size, layers, created)| {
                Ok(ManifestRecord {
                    digest,
                    media_type,
                    content,
                    config_digest,
                    size: u64::try_from(size).map_err(|e| corrupt("size")(e.to_string()))?,
                    layers: u32::try_from(layers).map_err(|e| corrupt("layers")(e.to_string()))?,
                    created_at: parse_ts("created_at", &created)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn delete_manifest_if_untagged(&self, digest: &str) -> Result<bool, StoreError> {
        let digest = digest.to_owned();
        self.run(move |c| {
            let n = c.execute(
                "DELETE FROM manifests WHERE digest = ?1 AND NOT EXISTS (SELECT 1 FROM tags WHERE digest = ?1)",
                [digest],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn set_tag(&self, repository: &str, tag: &str, digest: &str) -> Result<(), StoreError> {
        let (repository, tag, digest) = (repository.to_owned(), tag.to_owned(), digest.to_owned());
        self.run(move |c| {
            let tx = c.transaction()?;
            let exists: bool = tx
                .query_row("SELECT 1 FROM manifests WHERE digest = ?1", [&digest], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                return Err(StoreError::NotFound { what: format!("manifest {digest}") });
            }
            tx.execute(
                "INSERT INTO tags (repository, tag, digest, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
                params![repository, tag, digest, ts(&Utc::now())],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_tag(&self, repository: &str, tag: &str) -> Result<Option<TagRecord>, StoreError> {
        let (repository, tag) = (repository.to_owned(), tag.to_owned());
        self.run(move |c| {
            c.query_row(
                "SELECT repository, tag, digest, updated_at FROM tags WHERE repository = ?1 AND tag = ?2",
                [repository, tag],
                decode_tag,
            )
            .optional()?
            .map(tag_record)
            .transpose()
        })
        .await
    }

    async fn list_tags(&self) -> Result<Vec<TagRecord>, StoreError> {
        self.run(|c| {
            let mut stmt = c.prepare(
                "SELECT repository, tag, digest, updated_at FROM tags ORDER BY repository, tag",
            )?;
            let rows = stmt
                .query_map([], decode_tag)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(tag_record).collect()
        })
        .await
    }

    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool, StoreError> {
        let (repository, tag) = (repository.to_owned(), tag.to_owned());
        self.run(move |c| {
            let n = c.execute(
                "DELETE FROM tags WHERE repository = ?1 AND tag = ?2",
                [repository, tag],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        let t = t.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO tokens (id, name, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![t.id, t.name, t.hash, ts(&t.created_at)],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::AlreadyExists {
                        what: format!("token {}", t.name),
                    }
                } else {
                    e.into()
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let hash = hash.to_owned();
        self.run(move |c| {
            let row = c
                .query_row(
                    "SELECT id, name, hash, created_at FROM tokens WHERE hash = ?1",
                    [hash],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    },
                )
                .optional()?;
            row.map(|(id, name, hash, c)| {
                Ok(TokenRecord {
                    id,
                    name,
                    hash,
                    created_at: parse_ts("created_at", &c)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn count_tokens(&self) -> Result<u64, StoreError> {
        self.run(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }
}
