//! The metadata database of Devbox.
//!
//! Everything the control plane must remember lives here: devboxes and their
//! states, image manifests, tags and repositories, API tokens. Callers see
//! small traits by concern ([`DevboxStore`], [`ImageMetadata`],
//! [`TokenStore`], [`ReleaseStore`] and others, together [`Store`]) and this crate's own records; SQL
//! never leaves the crate. SQLite (embedded, WAL) is the implementation for
//! one machine; a PostgreSQL implementation of the same traits serves the
//! cluster scale.
//!
//! Every method is one transaction: it happens completely or not at all.

mod error;
pub mod idle;
mod keys;
pub mod ports;
mod records;
mod registry;
mod releases;
pub mod sqlite;

use std::net::Ipv4Addr;

use async_trait::async_trait;
use devbox_model::api::CommandStatus;
use devbox_model::{DevboxId, DevboxName, Digest, EnvVar, Resources, State};

pub use error::{DatabaseSource, StoreError};
pub use idle::IdleStore;
pub use keys::{KeyRecord, KeyStore};
pub use ports::{PortAccess, PortRecord, PortStore};
pub use records::{
    AppliedSettings, CommitRecord, CommitState, CommitTrigger, DevboxRecord, ImageName,
    ManifestRecord, Removal, RepositoryManifest, TagRecord, TokenRecord, Transition,
};
pub use registry::RegistryMetadata;
pub use releases::{ReleaseRecord, ReleaseStore};
pub use sqlite::SqliteStore;

/// Devboxes: their settings, states and what their runs reported.
#[async_trait]
pub trait DevboxStore: Send + Sync + std::fmt::Debug {
    /// Records a new devbox. Fails with [`StoreError::AlreadyExists`] when a
    /// devbox of the same name (or ID) exists, and with
    /// [`StoreError::NotFound`] when its manifest is not stored (it may have
    /// been removed since the image was resolved); nothing is recorded then.
    async fn insert_devbox(&self, devbox: &DevboxRecord) -> Result<(), StoreError>;

    /// The devbox of that name, if any.
    async fn get_devbox(&self, name: &DevboxName) -> Result<Option<DevboxRecord>, StoreError>;

    /// The devbox with that ID, if any.
    async fn get_devbox_by_id(&self, id: &DevboxId) -> Result<Option<DevboxRecord>, StoreError>;

    /// Every devbox, ordered by name.
    async fn list_devboxes(&self) -> Result<Vec<DevboxRecord>, StoreError>;

    /// Moves the devbox from state `from` to `to`, recording the note's error
    /// and reason (replacing, and so clearing, earlier ones), and bumps
    /// `updated_at`; returns the updated record. The change happens only if
    /// the stored state is still `from` when it is written (one conditional
    /// update, so concurrent writers, even on other replicas, cannot both
    /// win); otherwise it fails with [`StoreError::Conflict`] naming the state
    /// found, or no state when the devbox is gone, and changes nothing.
    async fn transition(
        &self,
        id: &DevboxId,
        from: State,
        to: State,
        note: &Transition,
    ) -> Result<DevboxRecord, StoreError>;

    /// Replaces the devbox's resources, environment and startup command,
    /// whatever its state (when they take effect is the caller's business),
    /// and returns the updated record. Fails with [`StoreError::NotFound`]
    /// when the devbox is gone.
    async fn update_settings(
        &self,
        id: &DevboxId,
        resources: Resources,
        env: &[EnvVar],
        command: Option<&[String]>,
    ) -> Result<DevboxRecord, StoreError>;

    /// Records that a run began with `applied` at address `ip` (as the
    /// runtime reported it); the run's OOM count and command status start
    /// over. Returns the updated record; fails with [`StoreError::NotFound`]
    /// when the devbox is gone.
    async fn record_start(
        &self,
        id: &DevboxId,
        applied: &AppliedSettings,
        ip: Option<Ipv4Addr>,
    ) -> Result<DevboxRecord, StoreError>;

    /// Records what the current run reports: its OOM kills so far and its
    /// startup command's status. Returns the updated record; fails with
    /// [`StoreError::NotFound`] when the devbox is gone.
    async fn record_status(
        &self,
        id: &DevboxId,
        oom_kills: u64,
        command_status: Option<&CommandStatus>,
    ) -> Result<DevboxRecord, StoreError>;

    /// Removes the devbox record. Removing a missing record succeeds.
    async fn delete_devbox(&self, id: &DevboxId) -> Result<(), StoreError>;
}

/// Image metadata: manifests, the repositories holding them, and tags. Blobs
/// live elsewhere (object storage); a manifest is recorded only after its
/// blobs, a tag or repository link only after its manifest.
#[async_trait]
pub trait ImageMetadata: Send + Sync + std::fmt::Debug {
    /// Stores a manifest; storing the same digest again changes nothing.
    async fn put_manifest(&self, manifest: &ManifestRecord) -> Result<(), StoreError>;

    /// The manifest with that digest, if stored.
    async fn get_manifest(&self, digest: &Digest) -> Result<Option<ManifestRecord>, StoreError>;

    /// Every stored manifest (for garbage collection), ordered by digest.
    async fn list_manifests(&self) -> Result<Vec<ManifestRecord>, StoreError>;

    /// Deletes the manifests stored before `before` that nothing names any
    /// more: no tag, no repository, no devbox created from it or holding
    /// changes on it, no commit (a tag moved by a squash leaves the old
    /// image so). With `dry_run`, deletes nothing. Returns their digests.
    async fn remove_unnamed_manifests(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        dry_run: bool,
    ) -> Result<Vec<Digest>, StoreError>;

    /// Records that `repository` holds a stored manifest, without a tag (as
    /// an image pulled by digest is held); holding it already changes
    /// nothing. Fails with [`StoreError::NotFound`] when the manifest is not
    /// stored.
    async fn link_manifest(&self, repository: &str, digest: &Digest) -> Result<(), StoreError>;

    /// Every manifest held by a repository, ordered by repository and digest.
    async fn list_repository_manifests(&self) -> Result<Vec<RepositoryManifest>, StoreError>;

    /// Points `repository:tag` at a stored manifest, replacing any previous
    /// target, and records that the repository holds it. Fails with
    /// [`StoreError::NotFound`] when the manifest is not stored.
    async fn set_tag(&self, repository: &str, tag: &str, digest: &Digest)
    -> Result<(), StoreError>;

    /// The tag, if it exists.
    async fn get_tag(&self, repository: &str, tag: &str) -> Result<Option<TagRecord>, StoreError>;

    /// Every tag, ordered by repository and tag.
    async fn list_tags(&self) -> Result<Vec<TagRecord>, StoreError>;

    /// Removes names of a manifest from `repository`, in one transaction:
    /// the tag (or, for [`ImageName::Digest`], every tag of the repository
    /// pointing at the manifest), and the repository's hold on the manifest
    /// once no tag of the repository points at it. A manifest left with no
    /// name in any repository is deleted (its blobs are left to garbage
    /// collection).
    ///
    /// Fails, removing nothing, with [`StoreError::NotFound`] when the name
    /// does not exist (a [`ImageName::TagAt`] tag pointing elsewhere counts
    /// as missing), and with [`StoreError::InUse`] when the manifest would be
    /// left without a name while devboxes are created from it. Because the
    /// check and the removal are one transaction, and a devbox can only be
    /// inserted while its manifest exists, no devbox is ever left without
    /// its image.
    async fn remove_image(
        &self,
        repository: &str,
        name: ImageName<'_>,
    ) -> Result<Removal, StoreError>;
}

/// API tokens, kept as hashes.
#[async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// Records an API token (only its hash). Fails with
    /// [`StoreError::AlreadyExists`] when the ID or hash is taken.
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError>;

    /// The token whose hash this is, if any.
    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// How many tokens exist (zero on a fresh database).
    async fn count_tokens(&self) -> Result<u64, StoreError>;
}

/// Commits: each devbox's history, the commit its next start runs from,
/// and its commit settings. A commit's image is an ordinary manifest (see
/// [`ImageMetadata`]), tagged by the commit's ID in the devbox's repository.
#[async_trait]
pub trait CommitStore: Send + Sync + std::fmt::Debug {
    /// The devbox's commit state; the default (no settings, no commit, no
    /// active base) for a devbox that never had one.
    async fn commit_state(&self, devbox: &DevboxId) -> Result<CommitState, StoreError>;

    /// Replaces the devbox's commit settings (interval and ignore
    /// patterns), keeping its head and active base. Fails with
    /// [`StoreError::NotFound`] when the devbox is gone.
    async fn set_commit_settings(
        &self,
        devbox: &DevboxId,
        auto_commit: Option<std::time::Duration>,
        exclude: &[String],
    ) -> Result<(), StoreError>;

    /// Records a commit in one transaction: its manifest (if not stored),
    /// the tag `repository:<commit id>` pointing at it, the commit record
    /// (with the next sequence number of the devbox, which it returns), the
    /// devbox's head, which becomes this commit, and the current run's
    /// commits, which it joins. A crash before the transaction leaves the
    /// previous commit the head and at worst blobs for garbage collection.
    /// Fails with [`StoreError::AlreadyExists`] for a commit ID taken, and
    /// with [`StoreError::NotFound`] when the devbox is gone; nothing is
    /// recorded then.
    async fn record_commit(
        &self,
        commit: &CommitRecord,
        manifest: &ManifestRecord,
        repository: &str,
    ) -> Result<CommitRecord, StoreError>;

    /// Begins or ends a run: records the manifest its changes sit on (or
    /// that it has none) and empties the list of its commits.
    async fn set_run(&self, devbox: &DevboxId, base: Option<&Digest>) -> Result<(), StoreError>;

    /// The devbox's commits, newest first.
    async fn list_commits(&self, devbox: &DevboxId) -> Result<Vec<CommitRecord>, StoreError>;

    /// The commit with that ID, whichever devbox it belongs to.
    async fn get_commit(&self, id: &str) -> Result<Option<CommitRecord>, StoreError>;

    /// Makes `head` (a commit of the devbox, or `None` for its image) what
    /// the next start runs from. Fails with [`StoreError::NotFound`] when
    /// the devbox or the commit is gone, or the commit is another devbox's.
    async fn set_head(&self, devbox: &DevboxId, head: Option<&str>) -> Result<(), StoreError>;

    /// Pins or unpins a commit (a pinned commit is kept whatever the
    /// retention). Fails with [`StoreError::NotFound`] for an unknown commit.
    async fn set_pinned(&self, commit: &str, pinned: bool) -> Result<(), StoreError>;

    /// Points commit `commit` at a new manifest (a squash rewrote its image
    /// with fewer layers), moving its tag in `repository`, and records that
    /// the commits in `merged` had their layers merged into it; one
    /// transaction.
    async fn replace_commit_image(
        &self,
        commit: &str,
        manifest: &ManifestRecord,
        repository: &str,
        merged: &[String],
    ) -> Result<(), StoreError>;
}

/// The whole metadata database; `Arc<dyn Store>` is what the control plane
/// holds. Implemented for everything that implements each concern.
pub trait Store:
    DevboxStore
    + ImageMetadata
    + TokenStore
    + CommitStore
    + RegistryMetadata
    + KeyStore
    + PortStore
    + IdleStore
    + ReleaseStore
{
}

impl<T> Store for T where
    T: DevboxStore
        + ImageMetadata
        + TokenStore
        + CommitStore
        + RegistryMetadata
        + KeyStore
        + PortStore
        + IdleStore
        + ReleaseStore
        + ?Sized
{
}
