//! [`IdleStore`] on SQLite.

use std::time::Duration;

use async_trait::async_trait;
use devbox_model::DevboxId;
use rusqlite::{OptionalExtension, params};

use super::{Ctx as _, SqliteStore, is_foreign_key_violation};
use crate::StoreError;
use crate::idle::IdleStore;

#[async_trait]
impl IdleStore for SqliteStore {
    async fn auto_stop(&self, devbox: &DevboxId) -> Result<Option<Duration>, StoreError> {
        let devbox = devbox.clone();
        self.run(move |c| {
            let secs: Option<i64> = c
                .query_row(
                    "SELECT secs FROM auto_stop WHERE devbox_id = ?1",
                    [devbox.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .ctx("read an idle policy")?;
            Ok(secs.map(|s| Duration::from_secs(s.max(0) as u64)))
        })
        .await
    }

    async fn set_auto_stop(
        &self,
        devbox: &DevboxId,
        after: Option<Duration>,
    ) -> Result<(), StoreError> {
        let devbox = devbox.clone();
        self.run(move |c| {
            let result = match after {
                Some(d) => c.execute(
                    "INSERT INTO auto_stop (devbox_id, secs) VALUES (?1, ?2)
                     ON CONFLICT (devbox_id) DO UPDATE SET secs = excluded.secs",
                    params![devbox.as_str(), d.as_secs() as i64],
                ),
                None => c.execute(
                    "DELETE FROM auto_stop WHERE devbox_id = ?1",
                    [devbox.as_str()],
                ),
            };
            match result {
                Ok(_) => Ok(()),
                Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound {
                    what: format!("devbox {devbox}"),
                }),
                Err(e) => Err(e).ctx("set an idle policy"),
            }
        })
        .await
    }
}
