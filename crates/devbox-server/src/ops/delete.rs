//! `delete`: remove a devbox and everything it owns on the node. A running
//! devbox is stopped without grace first.

use devbox_model::{DevboxName, Operation, Plan, State, plan};
use devbox_store::Transition;

use super::read::find;
use super::task::detached;
use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::AppState;

/// Deletes the devbox. A devbox that is gone already is `NotFound`.
pub async fn delete(state: &AppState, caller: &Caller, name: &DevboxName) -> OpResult<()> {
    tracing::info!(%caller, devbox = %name, "delete");
    let (state, name) = (state.clone(), name.clone());
    detached(&name.clone(), async move {
        let _guard = state.locks.try_lock(&name)?;
        let devbox = find(&state, &name).await?;
        if let Plan::Noop =
            plan(devbox.state, Operation::Delete).map_err(|source| OpError::Transition {
                name: name.clone(),
                source,
            })?
        {
            return Ok(());
        }
        let deleting = state
            .store
            .transition(
                &devbox.id,
                devbox.state,
                State::Deleting,
                &Transition::plain(),
            )
            .await?;
        finish(&state, &deleting).await
    })
    .await
}

/// The rest of a delete once `Deleting` is recorded (also the reconciler's).
pub(crate) async fn finish(
    state: &AppState,
    deleting: &devbox_store::DevboxRecord,
) -> OpResult<()> {
    if let Err(source) = state.runtime.remove(&deleting.id).await {
        let err = OpError::Failed {
            op: "delete",
            name: deleting.name.clone(),
            source: Box::new(source.into()),
        };
        state
            .store
            .transition(
                &deleting.id,
                State::Deleting,
                State::Error,
                &Transition::failed(err.to_string()),
            )
            .await?;
        return Err(err);
    }
    state.store.delete_devbox(&deleting.id).await?;
    state.activity.forget(&deleting.id);
    Ok(())
}
