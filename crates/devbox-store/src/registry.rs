//! What the OCI distribution API asks of the metadata database beyond
//! [`crate::ImageMetadata`]: one repository's tags and manifests, the list of
//! repositories, the manifests that refer to another one, and whether any
//! manifest names a blob. Each is one query, paginated where a registry
//! paginates.

use async_trait::async_trait;
use devbox_model::Digest;

use crate::{ManifestRecord, StoreError};

/// The registry's view of repositories.
#[async_trait]
pub trait RegistryMetadata: Send + Sync + std::fmt::Debug {
    /// Whether the repository holds any manifest (tagged or not).
    async fn repository_exists(&self, repository: &str) -> Result<bool, StoreError>;

    /// Up to `limit` repository names in lexical order, each after `last`
    /// when given.
    async fn list_repositories(
        &self,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// Up to `limit` tags of the repository in lexical order, each after
    /// `last` when given.
    async fn list_repository_tags(
        &self,
        repository: &str,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// Whether the repository holds the manifest.
    async fn holds_manifest(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError>;

    /// The manifests held by the repository whose `subject` is `subject`,
    /// ordered by digest.
    async fn list_referrers(
        &self,
        repository: &str,
        subject: &Digest,
    ) -> Result<Vec<ManifestRecord>, StoreError>;

    /// Whether any stored manifest names the blob, as its config or as one
    /// of its layers.
    async fn blob_in_use(&self, blob: &Digest) -> Result<bool, StoreError>;
}
