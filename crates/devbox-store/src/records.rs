//! The records the store keeps. They are the store's own types, not the
//! API's: the server converts them into what it shows, so the schema and the
//! wire format can change independently.

use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use devbox_model::api::CommandStatus;
use devbox_model::{DevboxId, DevboxName, Digest, EnvVar, Resources, State};

/// A devbox as the control plane remembers it.
#[derive(Debug, Clone, PartialEq)]
pub struct DevboxRecord {
    pub id: DevboxId,
    pub name: DevboxName,
    /// The image reference as the user gave it.
    pub image: String,
    /// The manifest that reference resolved to at creation; the store keeps
    /// that manifest while this record exists.
    pub image_digest: Digest,
    pub state: State,
    /// Why the last operation failed, while the state is `Error`.
    pub error: Option<String>,
    /// Why the devbox is in its state when nobody asked for it, e.g.
    /// `exited with 137: out of memory`.
    pub reason: Option<String>,
    pub resources: Resources,
    pub env: Vec<EnvVar>,
    pub command: Option<Vec<String>>,
    /// The settings the current (or last) run started with; `None` before
    /// the first start.
    pub applied: Option<AppliedSettings>,
    /// The address the runtime reported at the last start.
    pub ip: Option<Ipv4Addr>,
    /// Processes the kernel killed for lack of memory in the current (or
    /// last) run.
    pub oom_kills: u64,
    /// The startup command of the current (or last) run, when it has one.
    pub command_status: Option<CommandStatus>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The settings a run of a devbox started with, so that settings changed
/// since can be shown as pending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedSettings {
    pub env: Vec<EnvVar>,
    pub command: Option<Vec<String>>,
}

/// What a state change records besides the new state. Both fields replace
/// the stored ones, so a transition without them clears them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transition {
    /// Why an operation failed (with a transition to `Error`).
    pub error: Option<String>,
    /// Why the devbox changed state on its own.
    pub reason: Option<String>,
}

impl Transition {
    /// A transition that records nothing besides the state.
    pub fn plain() -> Self {
        Self::default()
    }

    /// A transition recording why an operation failed.
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            error: Some(error.into()),
            reason: None,
        }
    }

    /// A transition recording why the devbox changed state on its own.
    pub fn because(reason: impl Into<String>) -> Self {
        Self {
            error: None,
            reason: Some(reason.into()),
        }
    }
}

/// An image manifest (OCI or Docker schema 2) kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    /// The digest of `content`.
    pub digest: Digest,
    pub media_type: String,
    /// The exact bytes; their digest is the manifest digest.
    pub content: Vec<u8>,
    /// The config blob this manifest names.
    pub config_digest: Digest,
    /// Total compressed size of the layers.
    pub size: u64,
    pub layers: u32,
    pub created_at: DateTime<Utc>,
}

/// `repository:tag → manifest digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    pub repository: String,
    pub tag: String,
    pub digest: Digest,
    pub updated_at: DateTime<Utc>,
}

/// A manifest held by a repository, with or without tags (an image pulled
/// by digest has none), as a registry's repository holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryManifest {
    pub repository: String,
    pub digest: Digest,
    /// When the repository first held the manifest.
    pub created_at: DateTime<Utc>,
}

/// Which names of a repository [`crate::ImageMetadata::remove_image`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageName<'a> {
    /// One tag, wherever it points.
    Tag(&'a str),
    /// One tag, only while it still points at this manifest.
    TagAt(&'a str, &'a Digest),
    /// The manifest itself: every tag of the repository pointing at it, and
    /// the repository's hold on it.
    Digest(&'a Digest),
}

/// What [`crate::ImageMetadata::remove_image`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The manifest the removed names pointed at.
    pub digest: Digest,
    /// Whether the manifest record went too, no name being left for it.
    pub manifest_deleted: bool,
}

/// An API token; the secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    pub created_at: DateTime<Utc>,
}

/// How a commit came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommitTrigger {
    /// `devbox commit`.
    Manual,
    /// The devbox's auto-commit interval.
    Auto,
    /// A stop (every stop commits first).
    Stop,
    /// Before a release.
    Release,
}

impl CommitTrigger {
    pub const ALL: [CommitTrigger; 4] = [
        CommitTrigger::Manual,
        CommitTrigger::Auto,
        CommitTrigger::Stop,
        CommitTrigger::Release,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommitTrigger::Manual => "manual",
            CommitTrigger::Auto => "auto",
            CommitTrigger::Stop => "stop",
            CommitTrigger::Release => "release",
        }
    }
}

impl std::str::FromStr for CommitTrigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        CommitTrigger::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown commit trigger {s:?}"))
    }
}

/// One commit of a devbox: a layer of its changes and the image it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRecord {
    /// 16 lowercase hex digits; the image's tag in the devbox's repository.
    pub id: String,
    pub devbox: DevboxId,
    /// Increases by one with every commit of the devbox; the store assigns
    /// it when it records the commit.
    pub seq: u64,
    /// The commit this one was made on top of; `None` on the devbox's image.
    pub parent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub trigger: CommitTrigger,
    pub message: String,
    /// The image the commit made; `None` once retention reclaimed it (the
    /// record stays, as history).
    pub manifest: Option<Digest>,
    /// The commit's own layer: its blob and its diffID.
    pub layer_digest: Digest,
    pub diff_id: Digest,
    /// Size of the layer blob in bytes.
    pub layer_size: u64,
    /// Bytes of files the commit left out by the devbox's ignore rules.
    pub excluded_bytes: u64,
    /// Kept whatever the retention.
    pub pinned: bool,
    /// The commit whose image now holds this one's layer merged with
    /// others, once a squash merged it.
    pub merged_into: Option<String>,
}

/// A devbox's commit settings and where its history stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitState {
    /// Commit a running devbox this often when something changed.
    pub auto_commit: Option<std::time::Duration>,
    /// The devbox's own ignore patterns (gitignore syntax).
    pub exclude: Vec<String>,
    /// The commit the next start runs from; `None`: the devbox's image.
    pub head: Option<String>,
    /// While the devbox has changes not yet committed into its layers: the
    /// manifest they sit on (the image its current or last run started
    /// from). `None` once a stop committed them.
    pub active_base: Option<Digest>,
    /// The commits made from the current (or last, uncommitted) run's
    /// changes, oldest first.
    pub run: Vec<String>,
}
