//! The metadata database of Devbox.
//!
//! Everything the control plane must remember lives here: devboxes and their
//! states, image manifests and tags, API tokens. Callers see only the
//! [`Store`] trait and plain records; SQL never leaves this crate. SQLite
//! (embedded, WAL) is the implementation for one machine; a PostgreSQL
//! implementation of the same trait serves the cluster scale.

mod error;
mod records;
pub mod sqlite;

use async_trait::async_trait;
use devbox_model::api::Devbox;
use devbox_model::{DevboxId, DevboxName, State};

pub use error::StoreError;
pub use records::{ManifestRecord, TagRecord, TokenRecord};
pub use sqlite::SqliteStore;

/// The metadata database. Every method is one transaction: it either
/// happens completely or not at all.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Records a new devbox. Fails with [`StoreError::AlreadyExists`] when a
    /// devbox of the same name or IP address exists.
    async fn insert_devbox(&self, devbox: &Devbox) -> Result<(), StoreError>;

    /// The devbox of that name, if any.
    async fn get_devbox(&self, name: &DevboxName) -> Result<Option<Devbox>, StoreError>;

    /// Every devbox, ordered by name.
    async fn list_devboxes(&self) -> Result<Vec<Devbox>, StoreError>;

    /// Sets the state (and the error message shown while in `Error`; cleared
    /// otherwise) and bumps `updated_at`. Fails with
    /// [`StoreError::NotFound`] when the devbox is gone.
    async fn set_state(
        &self,
        id: &DevboxId,
        state: State,
        error: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Removes the devbox record. Removing a missing record succeeds.
    async fn delete_devbox(&self, id: &DevboxId) -> Result<(), StoreError>;

    /// Stores a manifest; storing the same digest again changes nothing.
    async fn put_manifest(&self, manifest: &ManifestRecord) -> Result<(), StoreError>;

    /// The manifest with that digest, if stored.
    async fn get_manifest(&self, digest: &str) -> Result<Option<ManifestRecord>, StoreError>;

    /// Deletes a manifest unless a tag still points at it; returns whether it
    /// was deleted.
    async fn delete_manifest_if_untagged(&self, digest: &str) -> Result<bool, StoreError>;

    /// Points `repository:tag` at a stored manifest, replacing any previous
    /// target. Fails with [`StoreError::NotFound`] when the manifest is not stored.
    async fn set_tag(&self, repository: &str, tag: &str, digest: &str) -> Result<(), StoreError>;

    /// The tag, if it exists.
    async fn get_tag(&self, repository: &str, tag: &str) -> Result<Option<TagRecord>, StoreError>;

    /// Every tag, ordered by repository and tag.
    async fn list_tags(&self) -> Result<Vec<TagRecord>, StoreError>;

    /// Removes a tag; returns whether it existed.
    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool, StoreError>;

    /// Records an API token (only its hash).
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError>;

    /// The token whose hash this is, if any.
    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// How many tokens exist (zero on a fresh database).
    async fn count_tokens(&self) -> Result<u64, StoreError>;
}
