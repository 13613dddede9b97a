//! SSH public keys: who may log in to devboxes through the SSH gateway.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// A registered public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    /// The caller that registered it, whose devboxes it opens.
    pub owner: String,
    /// A name for people: the key's comment, or one given when it was added.
    pub name: String,
    /// The OpenSSH algorithm name, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The key in OpenSSH's one-line format, without its comment.
    pub public_key: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
}

/// Registered SSH public keys.
#[async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Records a key. Fails with [`StoreError::AlreadyExists`] when its
    /// fingerprint (or ID) is registered already, by anyone.
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;

    /// The keys of `owner`, oldest first.
    async fn list_keys(&self, owner: &str) -> Result<Vec<KeyRecord>, StoreError>;

    /// The key with this fingerprint, whoever owns it.
    async fn find_key(&self, fingerprint: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// Removes the key of `owner` whose ID or fingerprint is `id`; whether
    /// there was one.
    async fn delete_key(&self, owner: &str, id: &str) -> Result<bool, StoreError>;
}
