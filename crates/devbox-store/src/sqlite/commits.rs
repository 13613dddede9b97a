//! [`CommitStore`] on SQLite.

use std::time::Duration;

use async_trait::async_trait;
use devbox_model::{DevboxId, Digest};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::images::{insert_manifest, tag};
use super::{
    Ctx as _, SqliteStore, corrupt, digest, is_foreign_key_violation, is_unique_violation,
    parse_ts, ts,
};
use crate::{CommitRecord, CommitState, CommitStore, ManifestRecord, StoreError};

const COLUMNS: &str = "id, devbox_id, seq, parent, created_at, trigger, message, manifest, \
     layer_digest, diff_id, layer_size, excluded_bytes, pinned, merged_into";

struct Raw {
    id: String,
    devbox: String,
    seq: i64,
    parent: Option<String>,
    created_at: String,
    trigger: String,
    message: String,
    manifest: Option<String>,
    layer_digest: String,
    diff_id: String,
    layer_size: i64,
    excluded_bytes: i64,
    pinned: bool,
    merged_into: Option<String>,
}

fn raw(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        id: r.get(0)?,
        devbox: r.get(1)?,
        seq: r.get(2)?,
        parent: r.get(3)?,
        created_at: r.get(4)?,
        trigger: r.get(5)?,
        message: r.get(6)?,
        manifest: r.get(7)?,
        layer_digest: r.get(8)?,
        diff_id: r.get(9)?,
        layer_size: r.get(10)?,
        excluded_bytes: r.get(11)?,
        pinned: r.get(12)?,
        merged_into: r.get(13)?,
    })
}

fn decode(r: Raw) -> Result<CommitRecord, StoreError> {
    Ok(CommitRecord {
        id: r.id,
        devbox: r.devbox.parse().map_err(|e| corrupt("devbox_id", e))?,
        seq: u64::try_from(r.seq).map_err(|e| corrupt("seq", e))?,
        parent: r.parent,
        created_at: parse_ts("created_at", &r.created_at)?,
        trigger: r.trigger.parse().map_err(|e| corrupt("trigger", e))?,
        message: r.message,
        manifest: r.manifest.map(|m| digest("manifest", &m)).transpose()?,
        layer_digest: digest("layer_digest", &r.layer_digest)?,
        diff_id: digest("diff_id", &r.diff_id)?,
        layer_size: u64::try_from(r.layer_size).map_err(|e| corrupt("layer_size", e))?,
        excluded_bytes: u64::try_from(r.excluded_bytes)
            .map_err(|e| corrupt("excluded_bytes", e))?,
        pinned: r.pinned,
        merged_into: r.merged_into,
    })
}

fn devbox_exists(c: &Connection, id: &DevboxId) -> Result<bool, StoreError> {
    Ok(c.query_row(
        "SELECT 1 FROM devboxes WHERE id = ?1",
        [id.as_str()],
        |_| Ok(()),
    )
    .optional()
    .ctx("look a devbox up")?
    .is_some())
}

fn gone(id: &DevboxId) -> StoreError {
    StoreError::NotFound {
        what: format!("devbox {id}"),
    }
}

/// Makes sure the devbox has a row of commit state.
fn ensure_state(c: &Connection, id: &DevboxId) -> Result<(), StoreError> {
    if !devbox_exists(c, id)? {
        return Err(gone(id));
    }
    c.execute(
        "INSERT OR IGNORE INTO commit_state (devbox_id) VALUES (?1)",
        [id.as_str()],
    )
    .ctx("create a devbox's commit state")?;
    Ok(())
}

fn secs(d: Option<Duration>) -> Result<Option<i64>, StoreError> {
    d.map(|d| i64::try_from(d.as_secs()).map_err(|e| corrupt("auto_commit_secs", e)))
        .transpose()
}

#[async_trait]
impl CommitStore for SqliteStore {
    async fn commit_state(&self, devbox: &DevboxId) -> Result<CommitState, StoreError> {
        let id = devbox.clone();
        self.run(move |c| {
            let row = c
                .query_row(
                    "SELECT auto_commit_secs, exclude, head, active_base, run FROM commit_state WHERE devbox_id = ?1",
                    [id.as_str()],
                    |r| {
                        Ok((
                            r.get::<_, Option<i64>>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, Option<String>>(3)?,
                            r.get::<_, String>(4)?,
                        ))
                    },
                )
                .optional()
                .ctx("read a devbox's commit state")?;
            let Some((auto, exclude, head, base, run)) = row else {
                return Ok(CommitState::default());
            };
            Ok(CommitState {
                auto_commit: auto
                    .map(|s| u64::try_from(s).map(Duration::from_secs))
                    .transpose()
                    .map_err(|e| corrupt("auto_commit_secs", e))?,
                exclude: serde_json::from_str(&exclude).map_err(|e| corrupt("exclude", e))?,
                head,
                active_base: base.map(|b| digest("active_base", &b)).transpose()?,
                run: serde_json::from_str(&run).map_err(|e| corrupt("run", e))?,
            })
        })
        .await
    }

    async fn set_commit_settings(
        &self,
        devbox: &DevboxId,
        auto_commit: Option<Duration>,
        exclude: &[String],
    ) -> Result<(), StoreError> {
        let id = devbox.clone();
        let exclude = serde_json::to_string(exclude).map_err(|e| corrupt("exclude", e))?;
        let auto = secs(auto_commit)?;
        self.run(move |c| {
            let tx = c.transaction().ctx("begin changing commit settings")?;
            ensure_state(&tx, &id)?;
            tx.execute(
                "UPDATE commit_state SET auto_commit_secs = ?2, exclude = ?3 WHERE devbox_id = ?1",
                params![id.as_str(), auto, exclude],
            )
            .ctx("change commit settings")?;
            tx.commit().ctx("commit the commit settings")
        })
        .await
    }

    async fn record_commit(
        &self,
        commit: &CommitRecord,
        manifest: &ManifestRecord,
        repository: &str,
    ) -> Result<CommitRecord, StoreError> {
        let (mut commit, manifest, repository) =
            (commit.clone(), manifest.clone(), repository.to_owned());
        self.run(move |c| {
            let tx = c.transaction().ctx("begin recording a commit")?;
            ensure_state(&tx, &commit.devbox)?;
            let last: Option<i64> = tx
                .query_row(
                    "SELECT MAX(seq) FROM commits WHERE devbox_id = ?1",
                    [commit.devbox.as_str()],
                    |r| r.get(0),
                )
                .ctx("number a commit")?;
            commit.seq = last.map_or(1, |s| s as u64 + 1);
            commit.manifest = Some(manifest.digest.clone());
            insert_manifest(&tx, &manifest)?;
            tag(&tx, &repository, &commit.id, &manifest.digest)?;
            let inserted = tx.execute(
                &format!(
                    "INSERT INTO commits ({COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                ),
                params![
                    commit.id,
                    commit.devbox.as_str(),
                    commit.seq as i64,
                    commit.parent,
                    ts(&commit.created_at),
                    commit.trigger.as_str(),
                    commit.message,
                    manifest.digest.as_str(),
                    commit.layer_digest.as_str(),
                    commit.diff_id.as_str(),
                    commit.layer_size as i64,
                    commit.excluded_bytes as i64,
                    commit.pinned,
                    commit.merged_into,
                ],
            );
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::AlreadyExists {
                        what: format!("commit {} of devbox {}", commit.id, commit.devbox),
                    });
                }
                Err(e) if is_foreign_key_violation(&e) => return Err(gone(&commit.devbox)),
                Err(e) => return Err(e).ctx("record a commit"),
            }
            let run: String = tx
                .query_row(
                    "SELECT run FROM commit_state WHERE devbox_id = ?1",
                    [commit.devbox.as_str()],
                    |r| r.get(0),
                )
                .ctx("read the current run")?;
            let mut run: Vec<String> = serde_json::from_str(&run).map_err(|e| corrupt("run", e))?;
            run.push(commit.id.clone());
            let run = serde_json::to_string(&run).map_err(|e| corrupt("run", e))?;
            tx.execute(
                "UPDATE commit_state SET head = ?2, run = ?3 WHERE devbox_id = ?1",
                params![commit.devbox.as_str(), commit.id, run],
            )
            .ctx("move a devbox's head")?;
            tx.commit().ctx("commit a commit")?;
            Ok(commit)
        })
        .await
    }

    async fn list_commits(&self, devbox: &DevboxId) -> Result<Vec<CommitRecord>, StoreError> {
        let id = devbox.clone();
        self.run(move |c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM commits WHERE devbox_id = ?1 ORDER BY seq DESC"
                ))
                .ctx("list commits")?;
            let rows = stmt
                .query_map([id.as_str()], raw)
                .ctx("list commits")?
                .collect::<Result<Vec<_>, _>>()
                .ctx("list commits")?;
            rows.into_iter().map(decode).collect()
        })
        .await
    }

    async fn get_commit(&self, id: &str) -> Result<Option<CommitRecord>, StoreError> {
        let id = id.to_owned();
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM commits WHERE id = ?1"),
                [id],
                raw,
            )
            .optional()
            .ctx("read a commit")?
            .map(decode)
            .transpose()
        })
        .await
    }

    async fn set_head(&self, devbox: &DevboxId, head: Option<&str>) -> Result<(), StoreError> {
        let (id, head) = (devbox.clone(), head.map(str::to_owned));
        self.run(move |c| {
            let tx = c.transaction().ctx("begin moving a head")?;
            ensure_state(&tx, &id)?;
            if let Some(h) = &head {
                let owner: Option<String> = tx
                    .query_row("SELECT devbox_id FROM commits WHERE id = ?1", [h], |r| {
                        r.get(0)
                    })
                    .optional()
                    .ctx("read a commit")?;
                if owner.as_deref() != Some(id.as_str()) {
                    return Err(StoreError::NotFound {
                        what: format!("commit {h} of devbox {id}"),
                    });
                }
            }
            tx.execute(
                "UPDATE commit_state SET head = ?2 WHERE devbox_id = ?1",
                params![id.as_str(), head],
            )
            .ctx("move a devbox's head")?;
            tx.commit().ctx("commit a head")
        })
        .await
    }

    async fn set_run(&self, devbox: &DevboxId, base: Option<&Digest>) -> Result<(), StoreError> {
        let (id, base) = (devbox.clone(), base.cloned());
        self.run(move |c| {
            let tx = c.transaction().ctx("begin recording a run")?;
            ensure_state(&tx, &id)?;
            tx.execute(
                "UPDATE commit_state SET active_base = ?2, run = '[]' WHERE devbox_id = ?1",
                params![id.as_str(), base.as_ref().map(Digest::as_str)],
            )
            .ctx("record a run")?;
            tx.commit().ctx("commit a run")
        })
        .await
    }

    async fn set_pinned(&self, commit: &str, pinned: bool) -> Result<(), StoreError> {
        let id = commit.to_owned();
        self.run(move |c| {
            let n = c
                .execute(
                    "UPDATE commits SET pinned = ?2 WHERE id = ?1",
                    params![id, pinned],
                )
                .ctx("pin a commit")?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: format!("commit {id}"),
                });
            }
            Ok(())
        })
        .await
    }

    async fn replace_commit_image(
        &self,
        commit: &str,
        manifest: &ManifestRecord,
        repository: &str,
        merged: &[String],
    ) -> Result<(), StoreError> {
        let (id, manifest, repository, merged) = (
            commit.to_owned(),
            manifest.clone(),
            repository.to_owned(),
            merged.to_vec(),
        );
        self.run(move |c| {
            let tx = c.transaction().ctx("begin replacing a commit's image")?;
            insert_manifest(&tx, &manifest)?;
            let n = tx
                .execute(
                    "UPDATE commits SET manifest = ?2 WHERE id = ?1",
                    params![id, manifest.digest.as_str()],
                )
                .ctx("replace a commit's image")?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: format!("commit {id}"),
                });
            }
            tag(&tx, &repository, &id, &manifest.digest)?;
            for m in &merged {
                tx.execute(
                    "UPDATE commits SET merged_into = ?2 WHERE id = ?1",
                    params![m, id],
                )
                .ctx("record a merge")?;
            }
            tx.commit().ctx("commit a replaced image")
        })
        .await
    }
}
