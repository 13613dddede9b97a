//! The SQLite implementation of [`crate::Store`]: one file, WAL journal,
//! one connection serialized behind a mutex and driven from blocking
//! threads.
//!
//! A single connection is enough for one machine's control plane: every
//! query is a point lookup or a small scan, and serializing them gives the
//! one-transaction-per-method guarantee without busy retries.

mod commits;
mod devboxes;
mod idle;
mod images;
mod keys;
mod migrations;
mod ports;
mod registry;
mod releases;
mod tokens;

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::StoreError;

/// The schema version a database has once every migration ran.
pub const SCHEMA_VERSION: usize = migrations::MIGRATIONS.len();

/// The SQLite-backed store. Cloning shares the connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and runs pending
    /// migrations. Fails with [`StoreError::Open`] naming the path.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source: crate::DatabaseSource| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(|e| open_err(Box::new(e)))?;
        Self::init(conn).map_err(|e| match e {
            StoreError::Database { source, .. } => open_err(source),
            other => other,
        })
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().ctx("open an in-memory database")?;
        Self::init(conn)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .ctx("switch to the WAL journal")?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .ctx("set synchronous mode")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .ctx("set the busy timeout")?;
        migrations::migrate(&mut conn)?;
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
        .await
        .map_err(|source| StoreError::Worker { source })?
    }
}

/// Names what a failed query was doing, hiding rusqlite's type.
pub(crate) trait Ctx<T> {
    fn ctx(self, action: &'static str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, action: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Database {
            action,
            source: Box::new(e),
        })
    }
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn parse_ts(column: &'static str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(column, e))
}

fn corrupt(column: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        column,
        message: e.to_string(),
    }
}

/// Decodes a `TEXT` column holding a digest.
fn digest(column: &'static str, s: &str) -> Result<devbox_model::Digest, StoreError> {
    s.parse().map_err(|e| corrupt(column, e))
}

/// Whether a constraint of this kind refused the statement.
fn violates(e: &rusqlite::Error, code: std::ffi::c_int) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == code)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    violates(e, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
        || violates(e, rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    violates(e, rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}
