//! [`TokenStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{Ctx as _, SqliteStore, is_unique_violation, parse_ts, ts};
use crate::{StoreError, TokenRecord, TokenStore};

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        let t = t.clone();
        self.run(move |c| {
            match c.execute(
                "INSERT INTO tokens (id, name, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![t.id, t.name, t.hash, ts(&t.created_at)],
            ) {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists {
                    what: format!("token {}", t.name),
                }),
                Err(e) => Err(e).ctx("insert a token"),
            }
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
                .optional()
                .ctx("look a token up")?;
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
            let n: i64 = c
                .query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get(0))
                .ctx("count tokens")?;
            Ok(n as u64)
        })
        .await
    }
}
