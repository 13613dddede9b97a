//! Deleting from a registry: tags, manifests and unnamed blobs.

use devbox_image::distribution::Reference;
use devbox_model::Digest;

use super::{Action, RegistryResult, authorize};
use crate::auth::Caller;
use crate::state::AppState;

/// Deletes a tag, or a manifest and the tags naming it.
pub async fn manifest(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    reference: &Reference,
) -> RegistryResult<()> {
    authorize(caller, repository, Action::Delete)?;
    tracing::info!(%caller, %repository, %reference, "delete manifest");
    Ok(state
        .images
        .delete_registry_manifest(repository, reference)
        .await?)
}

/// Deletes a blob that no stored manifest names.
pub async fn blob(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    digest: &Digest,
) -> RegistryResult<()> {
    authorize(caller, repository, Action::Delete)?;
    devbox_image::distribution::check_repository(repository)?;
    tracing::info!(%caller, %repository, %digest, "delete blob");
    Ok(state.images.delete_registry_blob(digest).await?)
}
