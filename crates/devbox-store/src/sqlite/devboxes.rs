//! [`DevboxStore`] on SQLite.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use chrono::Utc;
use devbox_model::api::CommandStatus;
use devbox_model::{ByteSize, DevboxId, DevboxName, EnvVar, Resources, State};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{
    Ctx as _, SqliteStore, corrupt, digest, is_foreign_key_violation, is_unique_violation,
    parse_ts, ts,
};
use crate::{AppliedSettings, DevboxRecord, DevboxStore, StoreError, Transition};

const COLUMNS: &str = "id, name, image, image_digest, state, error, reason, cpus, memory, pids, \
     env, command, applied, ip, oom_kills, command_status, created_at, updated_at";

/// The stored form of [`AppliedSettings`].
#[derive(Serialize, Deserialize)]
struct StoredApplied {
    env: Vec<EnvVar>,
    command: Option<Vec<String>>,
}

/// Column values as read inside rusqlite's row callback, decoded after.
struct Raw {
    id: String,
    name: String,
    image: String,
    image_digest: String,
    state: String,
    error: Option<String>,
    reason: Option<String>,
    cpus: f64,
    memory: i64,
    pids: i64,
    env: String,
    command: Option<String>,
    applied: Option<String>,
    ip: Option<String>,
    oom_kills: i64,
    command_status: Option<String>,
    created_at: String,
    updated_at: String,
}

fn raw(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        id: r.get(0)?,
        name: r.get(1)?,
        image: r.get(2)?,
        image_digest: r.get(3)?,
        state: r.get(4)?,
        error: r.get(5)?,
        reason: r.get(6)?,
        cpus: r.get(7)?,
        memory: r.get(8)?,
        pids: r.get(9)?,
        env: r.get(10)?,
        command: r.get(11)?,
        applied: r.get(12)?,
        ip: r.get(13)?,
        oom_kills: r.get(14)?,
        command_status: r.get(15)?,
        created_at: r.get(16)?,
        updated_at: r.get(17)?,
    })
}

fn json<T: Serialize>(column: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt(column, e))
}

fn from_json<T: for<'de> Deserialize<'de>>(column: &'static str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| corrupt(column, e))
}

fn decode(raw: Raw) -> Result<DevboxRecord, StoreError> {
    let applied = raw
        .applied
        .map(|a| from_json::<StoredApplied>("applied", &a))
        .transpose()?
        .map(|a| AppliedSettings {
            env: a.env,
            command: a.command,
        });
    Ok(DevboxRecord {
        id: raw.id.parse().map_err(|e| corrupt("id", e))?,
        name: raw.name.parse().map_err(|e| corrupt("name", e))?,
        image: raw.image,
        image_digest: digest("image_digest", &raw.image_digest)?,
        state: raw.state.parse().map_err(|e| corrupt("state", e))?,
        error: raw.error,
        reason: raw.reason,
        resources: Resources {
            cpus: raw.cpus,
            memory: ByteSize(u64::try_from(raw.memory).map_err(|e| corrupt("memory", e))?),
            pids: u32::try_from(raw.pids).map_err(|e| corrupt("pids", e))?,
        },
        env: from_json("env", &raw.env)?,
        command: raw.command.map(|c| from_json("command", &c)).transpose()?,
        applied,
        ip: raw
            .ip
            .map(|ip| ip.parse::<Ipv4Addr>().map_err(|e| corrupt("ip", e)))
            .transpose()?,
        oom_kills: u64::try_from(raw.oom_kills).map_err(|e| corrupt("oom_kills", e))?,
        command_status: raw
            .command_status
            .map(|s| from_json::<CommandStatus>("command_status", &s))
            .transpose()?,
        created_at: parse_ts("created_at", &raw.created_at)?,
        updated_at: parse_ts("updated_at", &raw.updated_at)?,
    })
}

fn by_id(c: &Connection, id: &str) -> Result<Option<DevboxRecord>, StoreError> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM devboxes WHERE id = ?1"),
        [id],
        raw,
    )
    .optional()
    .ctx("read a devbox")?
    .map(decode)
    .transpose()
}

fn gone(id: &str) -> StoreError {
    StoreError::NotFound {
        what: format!("devbox {id}"),
    }
}

/// Runs an `UPDATE ... WHERE id = ?1 RETURNING` of one devbox; a devbox
/// that is gone is [`StoreError::NotFound`].
fn update_returning(
    c: &Connection,
    id: &DevboxId,
    set: &str,
    values: &[&dyn rusqlite::ToSql],
    action: &'static str,
) -> Result<DevboxRecord, StoreError> {
    let id_str = id.as_str();
    let mut all: Vec<&dyn rusqlite::ToSql> = vec![&id_str];
    all.extend_from_slice(values);
    c.query_row(
        &format!("UPDATE devboxes SET {set} WHERE id = ?1 RETURNING {COLUMNS}"),
        all.as_slice(),
        raw,
    )
    .optional()
    .ctx(action)?
    .map(decode)
    .transpose()?
    .ok_or_else(|| gone(id.as_str()))
}

#[async_trait]
impl DevboxStore for SqliteStore {
    async fn insert_devbox(&self, d: &DevboxRecord) -> Result<(), StoreError> {
        let d = d.clone();
        self.run(move |c| {
            let env = json("env", &d.env)?;
            let command = d.command.as_ref().map(|c| json("command", c)).transpose()?;
            let applied = d
                .applied
                .as_ref()
                .map(|a| {
                    json(
                        "applied",
                        &StoredApplied {
                            env: a.env.clone(),
                            command: a.command.clone(),
                        },
                    )
                })
                .transpose()?;
            let status = d
                .command_status
                .as_ref()
                .map(|s| json("command_status", s))
                .transpose()?;
            let r = c.execute(
                &format!(
                    "INSERT INTO devboxes ({COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
                ),
                params![
                    d.id.as_str(),
                    d.name.as_str(),
                    d.image,
                    d.image_digest.as_str(),
                    d.state.as_str(),
                    d.error,
                    d.reason,
                    d.resources.cpus,
                    d.resources.memory.0 as i64,
                    d.resources.pids,
                    env,
                    command,
                    applied,
                    d.ip.map(|ip| ip.to_string()),
                    d.oom_kills as i64,
                    status,
                    ts(&d.created_at),
                    ts(&d.updated_at),
                ],
            );
            match r {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists {
                    what: format!("devbox {}", d.name),
                }),
                // The foreign key keeps a devbox from naming a manifest that
                // was removed after its image was resolved.
                Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound {
                    what: format!("manifest {} of image {}", d.image_digest, d.image),
                }),
                Err(e) => Err(e).ctx("insert a devbox"),
            }
        })
        .await
    }

    async fn get_devbox(&self, name: &DevboxName) -> Result<Option<DevboxRecord>, StoreError> {
        let name = name.as_str().to_owned();
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM devboxes WHERE name = ?1"),
                [name],
                raw,
            )
            .optional()
            .ctx("read a devbox")?
            .map(decode)
            .transpose()
        })
        .await
    }

    async fn get_devbox_by_id(&self, id: &DevboxId) -> Result<Option<DevboxRecord>, StoreError> {
        let id = id.clone();
        self.run(move |c| by_id(c, id.as_str())).await
    }

    async fn list_devboxes(&self) -> Result<Vec<DevboxRecord>, StoreError> {
        self.run(|c| {
            let mut stmt = c
                .prepare(&format!("SELECT {COLUMNS} FROM devboxes ORDER BY name"))
                .ctx("list devboxes")?;
            let rows = stmt
                .query_map([], raw)
                .ctx("list devboxes")?
                .collect::<Result<Vec<_>, _>>()
                .ctx("list devboxes")?;
            rows.into_iter().map(decode).collect()
        })
        .await
    }

    async fn transition(
        &self,
        id: &DevboxId,
        from: State,
        to: State,
        note: &Transition,
    ) -> Result<DevboxRecord, StoreError> {
        let (id, note) = (id.clone(), note.clone());
        self.run(move |c| {
            let updated = c
                .query_row(
                    &format!(
                        "UPDATE devboxes SET state = ?3, error = ?4, reason = ?5, updated_at = ?6 \
                         WHERE id = ?1 AND state = ?2 RETURNING {COLUMNS}"
                    ),
                    params![
                        id.as_str(),
                        from.as_str(),
                        to.as_str(),
                        note.error,
                        note.reason,
                        ts(&Utc::now())
                    ],
                    raw,
                )
                .optional()
                .ctx("change a devbox's state")?;
            match updated {
                Some(raw) => decode(raw),
                None => {
                    // The condition failed: report what the winner left.
                    let actual = by_id(c, id.as_str())?.map(|d| d.state);
                    Err(StoreError::Conflict {
                        id,
                        expected: from,
                        actual,
                    })
                }
            }
        })
        .await
    }

    async fn update_settings(
        &self,
        id: &DevboxId,
        resources: Resources,
        env: &[EnvVar],
        command: Option<&[String]>,
    ) -> Result<DevboxRecord, StoreError> {
        let id = id.clone();
        let env = json("env", &env)?;
        let command = command.map(|c| json("command", &c)).transpose()?;
        self.run(move |c| {
            update_returning(
                c,
                &id,
                "cpus = ?2, memory = ?3, pids = ?4, env = ?5, command = ?6, updated_at = ?7",
                params![
                    resources.cpus,
                    resources.memory.0 as i64,
                    resources.pids,
                    env,
                    command,
                    ts(&Utc::now())
                ],
                "update a devbox's settings",
            )
        })
        .await
    }

    async fn record_start(
        &self,
        id: &DevboxId,
        applied: &AppliedSettings,
        ip: Option<Ipv4Addr>,
    ) -> Result<DevboxRecord, StoreError> {
        let id = id.clone();
        let applied = json(
            "applied",
            &StoredApplied {
                env: applied.env.clone(),
                command: applied.command.clone(),
            },
        )?;
        self.run(move |c| {
            update_returning(
                c,
                &id,
                "applied = ?2, ip = ?3, oom_kills = 0, command_status = NULL, updated_at = ?4",
                params![applied, ip.map(|ip| ip.to_string()), ts(&Utc::now())],
                "record a devbox's start",
            )
        })
        .await
    }

    async fn record_status(
        &self,
        id: &DevboxId,
        oom_kills: u64,
        command_status: Option<&CommandStatus>,
    ) -> Result<DevboxRecord, StoreError> {
        let id = id.clone();
        let status = command_status
            .map(|s| json("command_status", s))
            .transpose()?;
        let oom_kills = i64::try_from(oom_kills).map_err(|e| corrupt("oom_kills", e))?;
        self.run(move |c| {
            update_returning(
                c,
                &id,
                "oom_kills = ?2, command_status = ?3, updated_at = ?4",
                params![oom_kills, status, ts(&Utc::now())],
                "record a devbox's status",
            )
        })
        .await
    }

    async fn delete_devbox(&self, id: &DevboxId) -> Result<(), StoreError> {
        let id = id.clone();
        self.run(move |c| {
            c.execute("DELETE FROM devboxes WHERE id = ?1", [id.as_str()])
                .ctx("delete a devbox")?;
            Ok(())
        })
        .await
    }
}
