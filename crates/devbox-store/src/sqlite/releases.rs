//! [`ReleaseStore`] on SQLite. A release's row refers to its tag, so
//! removing the tag by any path (an image removal, a registry delete)
//! removes the release with it.

use async_trait::async_trait;
use devbox_model::DevboxId;
use rusqlite::{OptionalExtension, Row, params};

use super::images::{remove_names, tag};
use super::{Ctx as _, SqliteStore, corrupt, digest, is_unique_violation, parse_ts, ts};
use crate::{ImageName, ReleaseRecord, ReleaseStore, Removal, StoreError};

/// The release's columns and its tag's digest.
const SELECT: &str = "SELECT r.devbox_id, r.version, r.commit_id, t.digest, r.notes, r.created_at \
     FROM releases r JOIN tags t ON t.repository = r.repository AND t.tag = r.version";

type Raw = (String, String, String, String, String, String);

fn raw(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn record((devbox, version, commit, d, notes, created): Raw) -> Result<ReleaseRecord, StoreError> {
    Ok(ReleaseRecord {
        devbox: devbox.parse().map_err(|e| corrupt("devbox_id", e))?,
        version,
        commit,
        digest: digest("digest", &d)?,
        notes,
        created_at: parse_ts("created_at", &created)?,
    })
}

fn select_one(
    c: &rusqlite::Connection,
    devbox: &DevboxId,
    version: &str,
) -> Result<Option<ReleaseRecord>, StoreError> {
    c.query_row(
        &format!("{SELECT} WHERE r.devbox_id = ?1 AND r.version = ?2"),
        params![devbox.as_str(), version],
        raw,
    )
    .optional()
    .ctx("read a release")?
    .map(record)
    .transpose()
}

#[async_trait]
impl ReleaseStore for SqliteStore {
    async fn insert_release(
        &self,
        release: &ReleaseRecord,
        repository: &str,
    ) -> Result<ReleaseRecord, StoreError> {
        let (r, repository) = (release.clone(), repository.to_owned());
        self.run(move |c| {
            let tx = c.transaction().ctx("begin recording a release")?;
            let commit: Option<(String, Option<String>)> = tx
                .query_row(
                    "SELECT devbox_id, manifest FROM commits WHERE id = ?1",
                    [&r.commit],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .ctx("read a commit")?;
            let manifest = match commit {
                Some((owner, Some(m))) if owner == r.devbox.as_str() => digest("manifest", &m)?,
                Some((owner, None)) if owner == r.devbox.as_str() => {
                    return Err(StoreError::NotFound {
                        what: format!("the image of commit {}", r.commit),
                    });
                }
                _ => {
                    return Err(StoreError::NotFound {
                        what: format!("commit {} of devbox {}", r.commit, r.devbox),
                    });
                }
            };
            let taken: bool = tx
                .query_row(
                    "SELECT 1 FROM tags WHERE repository = ?1 AND tag = ?2",
                    [&repository, &r.version],
                    |_| Ok(()),
                )
                .optional()
                .ctx("read a tag")?
                .is_some();
            if taken {
                return Err(StoreError::AlreadyExists {
                    what: format!("image {repository}:{}", r.version),
                });
            }
            tag(&tx, &repository, &r.version, &manifest)?;
            match tx.execute(
                "INSERT INTO releases (devbox_id, version, repository, commit_id, notes, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    r.devbox.as_str(),
                    r.version,
                    repository,
                    r.commit,
                    r.notes,
                    ts(&r.created_at)
                ],
            ) {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::AlreadyExists {
                        what: format!("release {} of devbox {}", r.version, r.devbox),
                    });
                }
                Err(e) => return Err(e).ctx("record a release"),
            }
            let recorded = select_one(&tx, &r.devbox, &r.version)?.ok_or_else(|| {
                StoreError::NotFound {
                    what: format!("release {} of devbox {}", r.version, r.devbox),
                }
            })?;
            tx.commit().ctx("commit a release")?;
            Ok(recorded)
        })
        .await
    }

    async fn get_release(
        &self,
        devbox: &DevboxId,
        version: &str,
    ) -> Result<Option<ReleaseRecord>, StoreError> {
        let (id, version) = (devbox.clone(), version.to_owned());
        self.run(move |c| select_one(c, &id, &version)).await
    }

    async fn list_releases(&self, devbox: &DevboxId) -> Result<Vec<ReleaseRecord>, StoreError> {
        let id = devbox.clone();
        self.run(move |c| {
            let mut stmt = c
                .prepare(&format!(
                    "{SELECT} WHERE r.devbox_id = ?1 ORDER BY r.created_at DESC, r.version DESC"
                ))
                .ctx("list releases")?;
            let rows = stmt
                .query_map([id.as_str()], raw)
                .ctx("list releases")?
                .collect::<Result<Vec<_>, _>>()
                .ctx("read releases")?;
            rows.into_iter().map(record).collect()
        })
        .await
    }

    async fn delete_release(
        &self,
        devbox: &DevboxId,
        version: &str,
    ) -> Result<Removal, StoreError> {
        let (id, version) = (devbox.clone(), version.to_owned());
        self.run(move |c| {
            let tx = c.transaction().ctx("begin removing a release")?;
            let repository: Option<String> = tx
                .query_row(
                    "SELECT repository FROM releases WHERE devbox_id = ?1 AND version = ?2",
                    params![id.as_str(), version],
                    |r| r.get(0),
                )
                .optional()
                .ctx("read a release")?;
            let Some(repository) = repository else {
                return Err(StoreError::NotFound {
                    what: format!("release {version} of devbox {id}"),
                });
            };
            // The release's row goes with its tag (the foreign key cascades).
            let removal = remove_names(&tx, &repository, ImageName::Tag(&version))?;
            tx.commit().ctx("commit removing a release")?;
            Ok(removal)
        })
        .await
    }
}
