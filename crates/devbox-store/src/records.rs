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
