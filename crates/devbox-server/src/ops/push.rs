//! Pushing a stored image to another registry.

use devbox_image::PendingPush;
use devbox_model::api::PushRequest;

use super::OpResult;
use crate::auth::Caller;
use crate::state::AppState;

/// The checkable first step of a push: the image is found and the
/// destination registry answered.
pub async fn begin(state: &AppState, caller: &Caller, req: &PushRequest) -> OpResult<PendingPush> {
    tracing::info!(%caller, image = %req.reference, destination = %req.destination, "push");
    Ok(state.images.begin_push(req).await?)
}
