//! Images: list, show, remove, and the two steps of import and pull.

use std::path::Path;

use devbox_image::{ImageError, Origin, PendingImport, PendingPull};
use devbox_model::ImageRef;
use devbox_model::api::{Image, PullRequest};

use super::OpResult;
use crate::auth::Caller;
use crate::state::AppState;

pub async fn list(state: &AppState, _caller: &Caller) -> OpResult<Vec<Image>> {
    Ok(state.images.list().await?)
}

/// The image `reference` names: by its reference, or by its digest.
pub async fn show(state: &AppState, _caller: &Caller, reference: &ImageRef) -> OpResult<Image> {
    let wanted = reference.to_string();
    state
        .images
        .list()
        .await?
        .into_iter()
        .find(|i| {
            i.reference == wanted || reference.digest().is_some_and(|d| d == i.digest.as_str())
        })
        .ok_or_else(|| {
            ImageError::NotFound {
                what: format!("image {reference}"),
            }
            .into()
        })
}

/// Removes the image's name; refused, atomically, while devboxes use it.
pub async fn remove(state: &AppState, caller: &Caller, reference: &ImageRef) -> OpResult<()> {
    tracing::info!(%caller, image = %reference, "remove image");
    Ok(state.images.remove(reference).await?)
}

/// The checkable first step of an import of the spooled `upload`.
pub async fn begin_import(
    state: &AppState,
    caller: &Caller,
    reference: &ImageRef,
    upload: &Path,
    origin: Origin,
) -> OpResult<PendingImport> {
    tracing::info!(%caller, image = %reference, "import");
    Ok(state.images.begin_import(reference, upload, origin).await?)
}

/// The checkable first step of a pull.
pub async fn begin_pull(
    state: &AppState,
    caller: &Caller,
    req: &PullRequest,
) -> OpResult<PendingPull> {
    tracing::info!(%caller, image = %req.reference, "pull");
    Ok(state.images.begin_pull(req).await?)
}
