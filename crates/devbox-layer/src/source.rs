//! Where a node gets the layers it lacks: the [`LayerSource`] seam between
//! whatever stores layer blobs (the image store) and whatever unpacks them
//! (the local runtime's layer store).

use std::fmt;
use std::io::Read;

use async_trait::async_trait;

use crate::compression::Compression;
use crate::digest::Digest;

/// One layer of an image, as a start spec names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDescriptor {
    /// Digest of the stored (usually compressed) blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar stream: the layer's identity on a node.
    pub diff_id: Digest,
    /// Size of the stored blob in bytes.
    pub size: u64,
    /// The blob's media type as the manifest states it.
    pub media_type: String,
    /// How the blob is compressed (derived from the media type).
    pub compression: Compression,
}

/// The source could not hand out a layer blob.
#[derive(Debug, thiserror::Error)]
#[error("cannot read layer {digest}: {source}")]
pub struct LayerSourceError {
    pub digest: Digest,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Hands out layer blobs by descriptor.
#[async_trait]
pub trait LayerSource: Send + Sync + fmt::Debug {
    /// A blocking reader over the stored blob of `layer` (compressed as
    /// [`LayerDescriptor::compression`] says), to be read inside
    /// `spawn_blocking`. The reader yields the blob's bytes unverified: the
    /// caller checks the diffID while it unpacks.
    ///
    /// Errors: the blob is not stored, or the storage failed.
    async fn open_layer(
        &self,
        layer: &LayerDescriptor,
    ) -> Result<Box<dyn Read + Send>, LayerSourceError>;
}
