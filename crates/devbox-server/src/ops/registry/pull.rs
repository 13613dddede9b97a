//! Reading a registry: manifests, blobs, tags, the catalog and referrers.

use bytes::Bytes;
use devbox_image::ImageError;
use devbox_image::distribution::Reference;
use devbox_model::Digest;
use devbox_store::ManifestRecord;
use futures::stream::BoxStream;

use super::{Action, RegistryError, RegistryResult, authorize, may, may_list_catalog};
use crate::auth::Caller;
use crate::state::AppState;

/// The manifest a tag or digest names in the repository.
pub async fn manifest(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    reference: &Reference,
) -> RegistryResult<ManifestRecord> {
    authorize(caller, repository, Action::Pull)?;
    Ok(state
        .images
        .registry_manifest(repository, reference)
        .await?)
}

/// The size of a blob reachable through the repository.
pub async fn blob_size(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    digest: &Digest,
) -> RegistryResult<u64> {
    authorize(caller, repository, Action::Pull)?;
    devbox_image::distribution::check_repository(repository)?;
    Ok(state.images.registry_blob_size(digest).await?)
}

/// `len` bytes of a blob from `start`; the caller checked access with
/// [`blob_size`] first.
pub async fn blob_range(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    digest: &Digest,
    start: u64,
    len: u64,
) -> RegistryResult<BoxStream<'static, Result<Bytes, ImageError>>> {
    authorize(caller, repository, Action::Pull)?;
    Ok(state.images.registry_blob_range(digest, start, len).await?)
}

/// A page of the repository's tags, and whether more follow.
pub async fn tags(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    last: Option<&str>,
    n: usize,
) -> RegistryResult<(Vec<String>, bool)> {
    authorize(caller, repository, Action::Pull)?;
    Ok(state.images.registry_tags(repository, last, n).await?)
}

/// A page of the repositories the caller may pull from, and whether more follow.
pub async fn catalog(
    state: &AppState,
    caller: &Caller,
    last: Option<&str>,
    n: usize,
) -> RegistryResult<(Vec<String>, bool)> {
    if !may_list_catalog(caller) {
        return Err(RegistryError::CatalogDenied {
            caller: caller.to_string(),
        });
    }
    let visible = |r: &str| may(caller, r, Action::Pull);
    Ok(state.images.registry_catalog(last, n, &visible).await?)
}

/// The referrers index of a manifest.
pub async fn referrers(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> RegistryResult<Vec<u8>> {
    authorize(caller, repository, Action::Pull)?;
    Ok(state
        .images
        .referrers(repository, subject, artifact_type)
        .await?)
}
