//! The one place state changes are persisted and announced: every
//! transition of a request's operation and of the reconciler goes through
//! [`transition`], which records it conditionally in the store and then
//! publishes it on the event bus.

use devbox_model::api::EventKind;
use devbox_model::{DevboxId, DevboxName, State};
use devbox_store::{DevboxRecord, StoreError, Transition};

use crate::state::AppState;

/// Moves the devbox from `from` to `to` (see `DevboxStore::transition`) and
/// publishes the change. A transition the store refused is not announced.
pub(crate) async fn transition(
    state: &AppState,
    id: &DevboxId,
    from: State,
    to: State,
    note: &Transition,
) -> Result<DevboxRecord, StoreError> {
    let record = state.store.transition(id, from, to, note).await?;
    state.events.publish(EventKind::State {
        devbox: record.name.clone(),
        from: Some(from),
        to,
        error: note.error.clone(),
        reason: note.reason.clone(),
    });
    Ok(record)
}

/// Announces a devbox just recorded, in its first state.
pub(crate) fn created(state: &AppState, record: &DevboxRecord) {
    state.events.publish(EventKind::State {
        devbox: record.name.clone(),
        from: None,
        to: record.state,
        error: None,
        reason: None,
    });
}

/// Announces a devbox whose record is gone.
pub(crate) fn deleted(state: &AppState, name: &DevboxName) {
    state.events.publish(EventKind::Deleted {
        devbox: name.clone(),
    });
}
