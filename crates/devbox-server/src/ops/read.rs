//! Reading devboxes: one by name, or all.

use devbox_model::DevboxName;
use devbox_store::DevboxRecord;

use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::AppState;

/// The devbox of that name.
pub async fn get(state: &AppState, _caller: &Caller, name: &DevboxName) -> OpResult<DevboxRecord> {
    find(state, name).await
}

/// Every devbox, ordered by name.
pub async fn list(state: &AppState, _caller: &Caller) -> OpResult<Vec<DevboxRecord>> {
    Ok(state.store.list_devboxes().await?)
}

/// The devbox of that name, for operations that already checked the caller.
pub(crate) async fn find(state: &AppState, name: &DevboxName) -> OpResult<DevboxRecord> {
    state
        .store
        .get_devbox(name)
        .await?
        .ok_or_else(|| OpError::NotFound { name: name.clone() })
}
