//! Writing to a registry: blob uploads (monolithic, chunked, mounted) and
//! manifests.

use bytes::Bytes;
use devbox_image::distribution::{PushedManifest, Reference, UploadStatus};
use devbox_model::Digest;
use futures::stream::BoxStream;

use super::{Action, RegistryResult, authorize};
use crate::auth::Caller;
use crate::state::AppState;

/// Stores a pushed manifest under a tag or its digest.
pub async fn manifest(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    reference: &Reference,
    content_type: Option<&str>,
    body: Bytes,
) -> RegistryResult<PushedManifest> {
    authorize(caller, repository, Action::Push)?;
    tracing::debug!(%caller, %repository, %reference, "push manifest");
    Ok(state
        .images
        .push_manifest(repository, reference, content_type, body)
        .await?)
}

/// Starts a blob upload.
pub async fn start_upload(
    state: &AppState,
    caller: &Caller,
    repository: &str,
) -> RegistryResult<UploadStatus> {
    authorize(caller, repository, Action::Push)?;
    Ok(state.registry.uploads.start(repository).await?)
}

/// Mounts a blob from `from` into `repository`: blobs are shared by every
/// repository, so this succeeds when the blob is stored and the caller may
/// pull from `from`. Returns the size, or `None` when the blob is not
/// there to mount (the client then uploads it).
pub async fn mount(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    digest: &Digest,
    from: Option<&str>,
) -> RegistryResult<Option<u64>> {
    authorize(caller, repository, Action::Push)?;
    // Without `from` (automatic content discovery) any stored blob counts.
    if let Some(from) = from
        && !super::may(caller, from, Action::Pull)
    {
        return Ok(None);
    }
    Ok(state.images.blobs().blob_size(digest).await?)
}

/// Where an upload stands.
pub async fn upload_status(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    id: &str,
) -> RegistryResult<UploadStatus> {
    authorize(caller, repository, Action::Push)?;
    Ok(state.registry.uploads.status(repository, id).await?)
}

/// Appends a chunk to an upload.
pub async fn append(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    id: &str,
    start: Option<u64>,
    body: BoxStream<'_, Result<Bytes, std::io::Error>>,
) -> RegistryResult<UploadStatus> {
    authorize(caller, repository, Action::Push)?;
    Ok(state
        .registry
        .uploads
        .append(repository, id, start, body)
        .await?)
}

/// Finishes an upload with its last chunk; the blob must hash to `digest`.
pub async fn finish(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    id: &str,
    digest: &Digest,
    body: BoxStream<'_, Result<Bytes, std::io::Error>>,
) -> RegistryResult<u64> {
    authorize(caller, repository, Action::Push)?;
    Ok(state
        .registry
        .uploads
        .finish(repository, id, digest, body)
        .await?)
}

/// Cancels an upload.
pub async fn cancel(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    id: &str,
) -> RegistryResult<()> {
    authorize(caller, repository, Action::Push)?;
    Ok(state.registry.uploads.cancel(repository, id).await?)
}
