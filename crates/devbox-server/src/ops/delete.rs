//! `delete`: remove a devbox and everything it owns on the node. A running
//! devbox is stopped without grace first.

use devbox_model::{DevboxName, Operation, Plan, State, plan};
use devbox_store::{StoreError, Transition};

use super::read::find;
use super::task::detached;
use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::{AppState, repository};

/// Deletes the devbox. A devbox that is gone already is `NotFound`.
pub async fn delete(state: &AppState, caller: &Caller, name: &DevboxName) -> OpResult<()> {
    tracing::info!(%caller, devbox = %name, "delete");
    let (state, name) = (state.clone(), name.clone());
    detached(
        state.events.clone(),
        caller,
        "delete",
        &name.clone(),
        async move {
            let _guard = state.locks.lock(&name).await?;
            let devbox = find(&state, &name).await?;
            if let Plan::Noop =
                plan(devbox.state, Operation::Delete).map_err(|source| OpError::Transition {
                    name: name.clone(),
                    source,
                })?
            {
                return Ok(());
            }
            let deleting = super::transition::transition(
                &state,
                &devbox.id,
                devbox.state,
                State::Deleting,
                &Transition::plain(),
            )
            .await?;
            finish(&state, &deleting).await
        },
    )
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
        super::transition::transition(
            state,
            &deleting.id,
            State::Deleting,
            State::Error,
            &Transition::failed(err.to_string()),
        )
        .await?;
        return Err(err);
    }
    let commits = state.store.list_commits(&deleting.id).await?;
    state.store.delete_devbox(&deleting.id).await?;
    super::transition::deleted(state, &deleting.name);
    state.activity.forget(&deleting.id);
    // Its commits' images go with it, unless another devbox was forked from
    // one (the store keeps that one) or another name holds it.
    let repo = repository(&deleting.name);
    for c in commits {
        match state
            .store
            .remove_image(&repo, devbox_store::ImageName::Tag(&c.id))
            .await
        {
            Ok(_) | Err(StoreError::InUse { .. } | StoreError::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(devbox = %deleting.name, commit = %c.id, "cannot remove a commit's image: {e}")
            }
        }
    }
    state.activity.forget(&deleting.id);
    Ok(())
}
