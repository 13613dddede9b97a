//! The content side of the OCI distribution API: what a registry's
//! handlers ask of the content store, in the spec's terms (repositories,
//! references, the spec's errors). The HTTP side lives in the server.
//!
//! Repositories are the image store's own: an image imported or pulled as
//! `bb:1` is served as `bb:1`, commits under `<owner>/<devbox>`. Blobs are
//! shared by all repositories, so a layer pushed once is stored once.

mod error;
mod manifests;
mod uploads;

use bytes::Bytes;
use devbox_model::Digest;
use futures::stream::BoxStream;

pub use error::DistributionError;
pub use manifests::{EMPTY_CONFIG, PushedManifest, Reference, check_repository, parse_digest};
pub use uploads::{UploadLimits, UploadStatus, Uploads};

use crate::{ImageError, ImageStore};

impl ImageStore {
    /// The size of a stored blob, or `BLOB_UNKNOWN`.
    pub async fn registry_blob_size(&self, digest: &Digest) -> Result<u64, DistributionError> {
        self.blobs()
            .blob_size(digest)
            .await?
            .ok_or_else(|| DistributionError::BlobUnknown {
                digest: digest.to_string(),
            })
    }

    /// Deletes a blob no stored manifest names; refused while one does,
    /// because blobs are shared by every repository.
    pub async fn delete_registry_blob(&self, digest: &Digest) -> Result<(), DistributionError> {
        self.registry_blob_size(digest).await?;
        if self.metadata().blob_in_use(digest).await? {
            return Err(DistributionError::Unsupported {
                reason: format!(
                    "blob {digest} is named by stored manifests and shared by every repository; delete the manifests, and garbage collection removes it"
                ),
            });
        }
        self.blobs().delete_blob(digest).await?;
        tracing::info!(%digest, "blob deleted");
        Ok(())
    }

    /// `len` bytes of a blob from `start`, streamed.
    pub async fn registry_blob_range(
        &self,
        digest: &Digest,
        start: u64,
        len: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, ImageError>>, DistributionError> {
        match self.blobs().range_stream(digest, start, len).await {
            Ok(s) => Ok(s),
            Err(ImageError::NotFound { .. }) => Err(DistributionError::BlobUnknown {
                digest: digest.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}
