//! [`KeyStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{Ctx as _, SqliteStore, is_unique_violation, parse_ts, ts};
use crate::{KeyRecord, KeyStore, StoreError};

const COLUMNS: &str = "id, owner, name, algorithm, public_key, fingerprint, created_at";

type Raw = (String, String, String, String, String, String, String);

fn raw(r: &Row<'_>) -> rusqlite::Result<Raw> {
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

fn record(
    (id, owner, name, algorithm, public_key, fingerprint, created): Raw,
) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        id,
        owner,
        name,
        algorithm,
        public_key,
        fingerprint,
        created_at: parse_ts("created_at", &created)?,
    })
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        let k = k.clone();
        self.run(move |c| {
            match c.execute(
                &format!("INSERT INTO ssh_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![
                    k.id,
                    k.owner,
                    k.name,
                    k.algorithm,
                    k.public_key,
                    k.fingerprint,
                    ts(&k.created_at)
                ],
            ) {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists {
                    what: format!("SSH key {}", k.fingerprint),
                }),
                Err(e) => Err(e).ctx("insert an SSH key"),
            }
        })
        .await
    }

    async fn list_keys(&self, owner: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let owner = owner.to_owned();
        self.run(move |c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM ssh_keys WHERE owner = ?1 ORDER BY created_at, id"
                ))
                .ctx("list SSH keys")?;
            let rows = stmt
                .query_map([owner], raw)
                .ctx("list SSH keys")?
                .collect::<Result<Vec<_>, _>>()
                .ctx("read SSH keys")?;
            rows.into_iter().map(record).collect()
        })
        .await
    }

    async fn find_key(&self, fingerprint: &str) -> Result<Option<KeyRecord>, StoreError> {
        let fingerprint = fingerprint.to_owned();
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM ssh_keys WHERE fingerprint = ?1"),
                [fingerprint],
                raw,
            )
            .optional()
            .ctx("look an SSH key up")?
            .map(record)
            .transpose()
        })
        .await
    }

    async fn delete_key(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        let (owner, id) = (owner.to_owned(), id.to_owned());
        self.run(move |c| {
            let n = c
                .execute(
                    "DELETE FROM ssh_keys WHERE owner = ?1 AND (id = ?2 OR fingerprint = ?2)",
                    params![owner, id],
                )
                .ctx("remove an SSH key")?;
            Ok(n > 0)
        })
        .await
    }
}
