//! [`ImageMetadata`] on SQLite.

use async_trait::async_trait;
use chrono::Utc;
use devbox_model::{DevboxName, Digest};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{Ctx as _, SqliteStore, corrupt, digest, parse_ts, ts};
use crate::{
    ImageMetadata, ImageName, ManifestRecord, Removal, RepositoryManifest, StoreError, TagRecord,
};

const MANIFEST_COLUMNS: &str =
    "digest, media_type, content, config_digest, size, layers, created_at";

/// [`MANIFEST_COLUMNS`] of a table aliased `m`.
pub(super) const MANIFEST_COLUMNS_OF_M: &str =
    "m.digest, m.media_type, m.content, m.config_digest, m.size, m.layers, m.created_at";

/// Raw manifest columns, decoded after the row callback.
pub(super) type RawManifest = (String, String, Vec<u8>, String, i64, i64, String);

pub(super) fn raw_manifest(r: &Row<'_>) -> rusqlite::Result<RawManifest> {
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

pub(super) fn manifest_record(
    (d, media_type, content, config, size, layers, created): RawManifest,
) -> Result<ManifestRecord, StoreError> {
    Ok(ManifestRecord {
        digest: digest("digest", &d)?,
        media_type,
        content,
        config_digest: digest("config_digest", &config)?,
        size: u64::try_from(size).map_err(|e| corrupt("size", e))?,
        layers: u32::try_from(layers).map_err(|e| corrupt("layers", e))?,
        created_at: parse_ts("created_at", &created)?,
    })
}

type RawTag = (String, String, String, String);

fn raw_tag(r: &Row<'_>) -> rusqlite::Result<RawTag> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn tag_record((repository, tag, d, u): RawTag) -> Result<TagRecord, StoreError> {
    Ok(TagRecord {
        repository,
        tag,
        digest: digest("digest", &d)?,
        updated_at: parse_ts("updated_at", &u)?,
    })
}

fn manifest_exists(c: &Connection, digest: &Digest) -> Result<bool, StoreError> {
    Ok(c.query_row(
        "SELECT 1 FROM manifests WHERE digest = ?1",
        [digest.as_str()],
        |_| Ok(()),
    )
    .optional()
    .ctx("look a manifest up")?
    .is_some())
}

fn missing_manifest(digest: &Digest) -> StoreError {
    StoreError::NotFound {
        what: format!("manifest {digest}"),
    }
}

fn link(tx: &Transaction<'_>, repository: &str, digest: &Digest) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR IGNORE INTO repository_manifests (repository, digest, created_at) VALUES (?1, ?2, ?3)",
        params![repository, digest.as_str(), ts(&Utc::now())],
    )
    .ctx("link a manifest to its repository")?;
    Ok(())
}

fn count(tx: &Transaction<'_>, sql: &str, digest: &Digest) -> Result<i64, StoreError> {
    tx.query_row(sql, [digest.as_str()], |r| r.get(0))
        .ctx("count a manifest's names")
}

/// The devboxes that start from a manifest: created from it, running from
/// it as their head commit, or holding changes on top of it.
fn users(tx: &Transaction<'_>, digest: &Digest) -> Result<Vec<DevboxName>, StoreError> {
    let mut stmt = tx
        .prepare(
            "SELECT name FROM devboxes WHERE image_digest = ?1
             UNION SELECT d.name FROM devboxes d JOIN commit_state s ON s.devbox_id = d.id
                 LEFT JOIN commits c ON c.id = s.head
                 WHERE c.manifest = ?1 OR s.active_base = ?1
             ORDER BY 1",
        )
        .ctx("find the devboxes of a manifest")?;
    let names = stmt
        .query_map([digest.as_str()], |r| r.get::<_, String>(0))
        .ctx("find the devboxes of a manifest")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("find the devboxes of a manifest")?;
    names
        .into_iter()
        .map(|n| n.parse().map_err(|e| corrupt("name", e)))
        .collect()
}

/// Stores a manifest; storing the same digest again changes nothing.
pub(super) fn insert_manifest(c: &Connection, m: &ManifestRecord) -> Result<(), StoreError> {
    c.execute(
        &format!(
            "INSERT OR IGNORE INTO manifests ({MANIFEST_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ),
        params![
            m.digest.as_str(),
            m.media_type,
            m.content,
            m.config_digest.as_str(),
            m.size as i64,
            m.layers,
            ts(&m.created_at)
        ],
    )
    .ctx("store a manifest")?;
    Ok(())
}

/// The body of [`ImageMetadata::set_tag`], inside the caller's transaction.
pub(super) fn tag(
    tx: &Transaction<'_>,
    repository: &str,
    tag: &str,
    digest: &Digest,
) -> Result<(), StoreError> {
    if !manifest_exists(tx, digest)? {
        return Err(missing_manifest(digest));
    }
    let previous: Option<String> = tx
        .query_row(
            "SELECT digest FROM tags WHERE repository = ?1 AND tag = ?2",
            [repository, tag],
            |r| r.get(0),
        )
        .optional()
        .ctx("read a tag")?;
    tx.execute(
            "INSERT INTO tags (repository, tag, digest, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
            params![repository, tag, digest.as_str(), ts(&Utc::now())],
        )
        .ctx("set a tag")?;
    link(tx, repository, digest)?;
    // Moving a tag leaves its old manifest in the repository only
    // while another tag there points at it; unnamed manifests are
    // garbage collection's business.
    if let Some(old) = previous.filter(|old| *old != digest.as_str()) {
        tx.execute(
            "DELETE FROM repository_manifests WHERE repository = ?1 AND digest = ?2
                 AND NOT EXISTS (SELECT 1 FROM tags WHERE repository = ?1 AND digest = ?2)",
            [repository, old.as_str()],
        )
        .ctx("unlink a retagged manifest")?;
    }
    Ok(())
}

/// The body of [`ImageMetadata::remove_image`], inside its transaction.
pub(super) fn remove_names(
    tx: &Transaction<'_>,
    repository: &str,
    name: ImageName<'_>,
) -> Result<Removal, StoreError> {
    let not_found = || StoreError::NotFound {
        what: match name {
            ImageName::Tag(tag) | ImageName::TagAt(tag, _) => format!("image {repository}:{tag}"),
            ImageName::Digest(d) => format!("image {repository}@{d}"),
        },
    };
    let target = match name {
        ImageName::Tag(tag) | ImageName::TagAt(tag, _) => {
            let current = tx
                .query_row(
                    "SELECT repository, tag, digest, updated_at FROM tags WHERE repository = ?1 AND tag = ?2",
                    [repository, tag],
                    raw_tag,
                )
                .optional()
                .ctx("read a tag")?
                .map(tag_record)
                .transpose()?
                .ok_or_else(not_found)?;
            if let ImageName::TagAt(_, pinned) = name
                && *pinned != current.digest
            {
                return Err(not_found());
            }
            tx.execute(
                "DELETE FROM tags WHERE repository = ?1 AND tag = ?2",
                [repository, tag],
            )
            .ctx("delete a tag")?;
            current.digest
        }
        ImageName::Digest(d) => {
            let tags = tx
                .execute(
                    "DELETE FROM tags WHERE repository = ?1 AND digest = ?2",
                    [repository, d.as_str()],
                )
                .ctx("delete the tags of a manifest")?;
            let links = tx
                .execute(
                    "DELETE FROM repository_manifests WHERE repository = ?1 AND digest = ?2",
                    [repository, d.as_str()],
                )
                .ctx("unlink a manifest from its repository")?;
            if tags + links == 0 {
                return Err(not_found());
            }
            d.clone()
        }
    };
    // A repository holds a manifest as long as one of its tags points at it.
    let tags_left: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM tags WHERE repository = ?1 AND digest = ?2",
            [repository, target.as_str()],
            |r| r.get(0),
        )
        .ctx("count a manifest's tags")?;
    if tags_left == 0 {
        tx.execute(
            "DELETE FROM repository_manifests WHERE repository = ?1 AND digest = ?2",
            [repository, target.as_str()],
        )
        .ctx("unlink a manifest from its repository")?;
    }
    let names_left = count(tx, "SELECT COUNT(*) FROM tags WHERE digest = ?1", &target)?
        + count(
            tx,
            "SELECT COUNT(*) FROM repository_manifests WHERE digest = ?1",
            &target,
        )?;
    if names_left > 0 {
        return Ok(Removal {
            digest: target,
            manifest_deleted: false,
        });
    }
    let devboxes = users(tx, &target)?;
    if !devboxes.is_empty() {
        // Returning the error drops the transaction, which rolls the
        // removed names back.
        return Err(StoreError::InUse {
            manifest: target,
            devboxes,
        });
    }
    tx.execute("DELETE FROM manifests WHERE digest = ?1", [target.as_str()])
        .ctx("delete a manifest")?;
    Ok(Removal {
        digest: target,
        manifest_deleted: true,
    })
}

#[async_trait]
impl ImageMetadata for SqliteStore {
    async fn put_manifest(&self, m: &ManifestRecord) -> Result<(), StoreError> {
        let m = m.clone();
        self.run(move |c| insert_manifest(c, &m)).await
    }

    async fn get_manifest(&self, digest: &Digest) -> Result<Option<ManifestRecord>, StoreError> {
        let digest = digest.clone();
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {MANIFEST_COLUMNS} FROM manifests WHERE digest = ?1"),
                [digest.as_str()],
                raw_manifest,
            )
            .optional()
            .ctx("read a manifest")?
            .map(manifest_record)
            .transpose()
        })
        .await
    }

    async fn list_manifests(&self) -> Result<Vec<ManifestRecord>, StoreError> {
        self.run(|c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {MANIFEST_COLUMNS} FROM manifests ORDER BY digest"
                ))
                .ctx("list manifests")?;
            let rows = stmt
                .query_map([], raw_manifest)
                .ctx("list manifests")?
                .collect::<Result<Vec<_>, _>>()
                .ctx("list manifests")?;
            rows.into_iter().map(manifest_record).collect()
        })
        .await
    }

    async fn remove_unnamed_manifests(
        &self,
        before: chrono::DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Vec<Digest>, StoreError> {
        self.run(move |c| {
            let tx = c.transaction().ctx("begin removing unnamed manifests")?;
            let unnamed = "FROM manifests m WHERE m.created_at < ?1
                 AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.digest = m.digest)
                 AND NOT EXISTS (SELECT 1 FROM repository_manifests r WHERE r.digest = m.digest)
                 AND NOT EXISTS (SELECT 1 FROM devboxes d WHERE d.image_digest = m.digest)
                 AND NOT EXISTS (SELECT 1 FROM commits k WHERE k.manifest = m.digest)
                 AND NOT EXISTS (SELECT 1 FROM commit_state s WHERE s.active_base = m.digest)";
            let found = {
                let mut stmt = tx
                    .prepare(&format!("SELECT m.digest {unnamed}"))
                    .ctx("find unnamed manifests")?;
                stmt.query_map([ts(&before)], |r| r.get::<_, String>(0))
                    .ctx("find unnamed manifests")?
                    .collect::<Result<Vec<_>, _>>()
                    .ctx("find unnamed manifests")?
            };
            if !dry_run {
                tx.execute(
                    &format!("DELETE FROM manifests WHERE digest IN (SELECT m.digest {unnamed})"),
                    [ts(&before)],
                )
                .ctx("remove unnamed manifests")?;
            }
            tx.commit().ctx("commit removing unnamed manifests")?;
            found.iter().map(|d| digest("digest", d)).collect()
        })
        .await
    }

    async fn link_manifest(&self, repository: &str, digest: &Digest) -> Result<(), StoreError> {
        let (repository, digest) = (repository.to_owned(), digest.clone());
        self.run(move |c| {
            let tx = c.transaction().ctx("begin linking a manifest")?;
            if !manifest_exists(&tx, &digest)? {
                return Err(missing_manifest(&digest));
            }
            link(&tx, &repository, &digest)?;
            tx.commit().ctx("commit linking a manifest")
        })
        .await
    }

    async fn list_repository_manifests(&self) -> Result<Vec<RepositoryManifest>, StoreError> {
        self.run(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT repository, digest, created_at FROM repository_manifests ORDER BY repository, digest",
                )
                .ctx("list repositories")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .ctx("list repositories")?
                .collect::<Result<Vec<_>, _>>()
                .ctx("list repositories")?;
            rows.into_iter()
                .map(|(repository, d, created)| {
                    Ok(RepositoryManifest {
                        repository,
                        digest: digest("digest", &d)?,
                        created_at: parse_ts("created_at", &created)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn set_tag(
        &self,
        repository: &str,
        tag: &str,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        let (repository, name, digest) = (repository.to_owned(), tag.to_owned(), digest.clone());
        self.run(move |c| {
            let tx = c.transaction().ctx("begin tagging")?;
            self::tag(&tx, &repository, &name, &digest)?;
            tx.commit().ctx("commit a tag")
        })
        .await
    }

    async fn get_tag(&self, repository: &str, tag: &str) -> Result<Option<TagRecord>, StoreError> {
        let (repository, tag) = (repository.to_owned(), tag.to_owned());
        self.run(move |c| {
            c.query_row(
                "SELECT repository, tag, digest, updated_at FROM tags WHERE repository = ?1 AND tag = ?2",
                [repository, tag],
                raw_tag,
            )
            .optional()
            .ctx("read a tag")?
            .map(tag_record)
            .transpose()
        })
        .await
    }

    async fn list_tags(&self) -> Result<Vec<TagRecord>, StoreError> {
        self.run(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT repository, tag, digest, updated_at FROM tags ORDER BY repository, tag",
                )
                .ctx("list tags")?;
            let rows = stmt
                .query_map([], raw_tag)
                .ctx("list tags")?
                .collect::<Result<Vec<_>, _>>()
                .ctx("list tags")?;
            rows.into_iter().map(tag_record).collect()
        })
        .await
    }

    async fn remove_image(
        &self,
        repository: &str,
        name: ImageName<'_>,
    ) -> Result<Removal, StoreError> {
        let repository = repository.to_owned();
        // The borrowed name cannot cross into the worker thread: own it.
        let owned = OwnedName::from(name);
        self.run(move |c| {
            let tx = c.transaction().ctx("begin removing an image")?;
            let removal = remove_names(&tx, &repository, owned.borrow())?;
            tx.commit().ctx("commit removing an image")?;
            Ok(removal)
        })
        .await
    }
}

/// [`ImageName`] with owned parts.
enum OwnedName {
    Tag(String),
    TagAt(String, Digest),
    Digest(Digest),
}

impl From<ImageName<'_>> for OwnedName {
    fn from(n: ImageName<'_>) -> Self {
        match n {
            ImageName::Tag(t) => OwnedName::Tag(t.to_owned()),
            ImageName::TagAt(t, d) => OwnedName::TagAt(t.to_owned(), d.clone()),
            ImageName::Digest(d) => OwnedName::Digest(d.clone()),
        }
    }
}

impl OwnedName {
    fn borrow(&self) -> ImageName<'_> {
        match self {
            OwnedName::Tag(t) => ImageName::Tag(t),
            OwnedName::TagAt(t, d) => ImageName::TagAt(t, d),
            OwnedName::Digest(d) => ImageName::Digest(d),
        }
    }
}
