//! Deleting from a registry: tags and manifests.

use devbox_image::distribution::Reference;

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
