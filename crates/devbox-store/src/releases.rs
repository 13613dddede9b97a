//! Releases: a devbox's commits published as versions, each a tag of the
//! commit's image in the devbox's repository (`admin/dev:v1.0`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use devbox_model::{DevboxId, Digest};

use crate::{Removal, StoreError};

/// A release of a devbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    pub devbox: DevboxId,
    /// The tag in the devbox's repository.
    pub version: String,
    /// The commit it was made from.
    pub commit: String,
    /// The image its tag names (filled in by the store).
    pub digest: Digest,
    pub notes: String,
    pub created_at: DateTime<Utc>,
}

/// Releases, kept beside the tags that are their images.
#[async_trait]
pub trait ReleaseStore: Send + Sync + std::fmt::Debug {
    /// Records a release in one transaction: the tag `repository:version`
    /// pointing at the commit's image, and the release's record, whose
    /// `digest` (ignored on input) is that image; returns the record.
    ///
    /// Fails, recording nothing, with [`StoreError::AlreadyExists`] when the
    /// repository has a tag of that name already (a release of this devbox,
    /// or an image left by a deleted devbox of the same name), and with
    /// [`StoreError::NotFound`] when the devbox is gone, the commit is not
    /// one of its own, or retention reclaimed the commit's image.
    async fn insert_release(
        &self,
        release: &ReleaseRecord,
        repository: &str,
    ) -> Result<ReleaseRecord, StoreError>;

    /// The devbox's release of that version, if any.
    async fn get_release(
        &self,
        devbox: &DevboxId,
        version: &str,
    ) -> Result<Option<ReleaseRecord>, StoreError>;

    /// The devbox's releases, newest first.
    async fn list_releases(&self, devbox: &DevboxId) -> Result<Vec<ReleaseRecord>, StoreError>;

    /// Removes the devbox's release of that version and its tag in one
    /// transaction, as [`crate::ImageMetadata::remove_image`] removes a tag
    /// (the image goes once nothing names it). Fails, removing nothing,
    /// with [`StoreError::NotFound`] when there is no such release.
    async fn delete_release(&self, devbox: &DevboxId, version: &str)
    -> Result<Removal, StoreError>;
}
