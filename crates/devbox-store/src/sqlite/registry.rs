//! [`RegistryMetadata`] on SQLite.
//!
//! A repository is the set of its rows in `repository_manifests` (a tag
//! always comes with one, see `set_tag`). The subject of a manifest and the
//! blobs it names are read from its stored JSON with SQLite's JSON functions;
//! subjects have an index on that expression, so the referrers of a manifest
//! are found without reading every manifest.

use async_trait::async_trait;
use devbox_model::Digest;
use rusqlite::{OptionalExtension, params};

use super::images::{MANIFEST_COLUMNS_OF_M, manifest_record, raw_manifest};
use super::{Ctx as _, SqliteStore};
use crate::{ManifestRecord, RegistryMetadata, StoreError};

/// SQLite's limits are signed; a page larger than this is no page.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl RegistryMetadata for SqliteStore {
    async fn repository_exists(&self, repository: &str) -> Result<bool, StoreError> {
        let repository = repository.to_owned();
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT 1 FROM repository_manifests WHERE repository = ?1 LIMIT 1",
                [&repository],
                |_| Ok(()),
            )
            .optional()
            .ctx("look a repository up")?
            .is_some())
        })
        .await
    }

    async fn list_repositories(
        &self,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let last = last.unwrap_or_default().to_owned();
        self.run(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT DISTINCT repository FROM repository_manifests WHERE repository > ?1
                     ORDER BY repository LIMIT ?2",
                )
                .ctx("list repositories")?;
            stmt.query_map(params![last, sql_limit(limit)], |r| r.get(0))
                .ctx("list repositories")?
                .collect::<Result<Vec<String>, _>>()
                .ctx("list repositories")
        })
        .await
    }

    async fn list_repository_tags(
        &self,
        repository: &str,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let repository = repository.to_owned();
        let last = last.unwrap_or_default().to_owned();
        self.run(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT tag FROM tags WHERE repository = ?1 AND tag > ?2 ORDER BY tag LIMIT ?3",
                )
                .ctx("list a repository's tags")?;
            stmt.query_map(params![repository, last, sql_limit(limit)], |r| r.get(0))
                .ctx("list a repository's tags")?
                .collect::<Result<Vec<String>, _>>()
                .ctx("list a repository's tags")
        })
        .await
    }

    async fn holds_manifest(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError> {
        let (repository, digest) = (repository.to_owned(), digest.clone());
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT 1 FROM repository_manifests WHERE repository = ?1 AND digest = ?2",
                [repository.as_str(), digest.as_str()],
                |_| Ok(()),
            )
            .optional()
            .ctx("look a repository's manifest up")?
            .is_some())
        })
        .await
    }

    async fn list_referrers(
        &self,
        repository: &str,
        subject: &Digest,
    ) -> Result<Vec<ManifestRecord>, StoreError> {
        let (repository, subject) = (repository.to_owned(), subject.clone());
        self.run(move |c| {
            // The expression is the indexed one, written the same way.
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {MANIFEST_COLUMNS_OF_M} FROM manifests m
                     JOIN repository_manifests r ON r.digest = m.digest AND r.repository = ?1
                     WHERE json_extract(CAST(m.content AS TEXT), '$.subject.digest') = ?2
                     ORDER BY m.digest"
                ))
                .ctx("list referrers")?;
            let rows = stmt
                .query_map([repository.as_str(), subject.as_str()], raw_manifest)
                .ctx("list referrers")?
                .collect::<Result<Vec<_>, _>>()
                .ctx("list referrers")?;
            rows.into_iter().map(manifest_record).collect()
        })
        .await
    }

    async fn blob_in_use(&self, blob: &Digest) -> Result<bool, StoreError> {
        let blob = blob.clone();
        self.run(move |c| {
            // Every stored manifest is valid JSON (it was parsed before it
            // was stored), so json_each cannot fail on one. An index has no
            // layers and names the empty config; that blob is shared and
            // tiny, and is treated as named.
            Ok(c.query_row(
                "SELECT 1 FROM manifests WHERE config_digest = ?1
                 UNION ALL
                 SELECT 1 FROM manifests m, json_each(CAST(m.content AS TEXT), '$.layers') l
                     WHERE json_extract(l.value, '$.digest') = ?1
                 LIMIT 1",
                [blob.as_str()],
                |_| Ok(()),
            )
            .optional()
            .ctx("find the manifests naming a blob")?
            .is_some())
        })
        .await
    }
}
