//! Writing to a registry: manifests.

use bytes::Bytes;
use devbox_image::distribution::{PushedManifest, Reference};

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
