//! Records stored besides devboxes (which are stored as [`devbox_model::api::Devbox`]).

use chrono::{DateTime, Utc};

/// An image manifest (OCI or Docker schema 2) kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    /// `sha256:<hex>` of `content`.
    pub digest: String,
    pub media_type: String,
    /// The exact bytes; their digest is the manifest digest.
    pub content: Vec<u8>,
    /// The config blob this manifest names.
    pub config_digest: String,
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
    pub digest: String,
    pub updated_at: DateTime<Utc>,
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
