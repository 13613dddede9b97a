//! Makes the database and the runtime agree when the server starts: running
//! containers are adopted, operations cut short by a crash are finished or
//! rolled back (the decision table is `devbox_model::state::recover`), and
//! containers no record owns are removed.

use std::collections::HashSet;

use devbox_model::State;
use devbox_model::api::Devbox;
use devbox_model::state::{Recovery, recover};
use devbox_runtime::{ContainerState, Runtime};

use crate::error::ApiError;
use crate::lifecycle::{STOP_GRACE, ensure_layers};
use crate::state::AppState;

/// Reconciles every devbox; a failure on one is recorded on it and does not stop the others.
pub async fn reconcile(state: &AppState) -> anyhow::Result<()> {
    let devboxes = state.store.list_devboxes().await?;
    let known: HashSet<_> = devboxes.iter().map(|d| d.id.clone()).collect();
    for devbox in &devboxes {
        if let Err(e) = reconcile_one(state, devbox).await {
            let msg = format!("recovery of devbox {} failed: {}", devbox.name, e.message);
            tracing::error!("{msg}");
            state
                .store
                .set_state(&devbox.id, State::Error, Some(&msg))
                .await?;
        }
    }
    for id in state.runtime.list().await? {
        if !known.contains(&id) {
            tracing::warn!(%id, "removing a container that no devbox owns");
            state.runtime.remove(&id).await?;
        }
    }
    Ok(())
}

async fn reconcile_one(state: &AppState, devbox: &Devbox) -> Result<(), ApiError> {
    let running = matches!(
        state.runtime.state(&devbox.id).await?,
        ContainerState::Running { .. }
    );
    let action = recover(devbox.state, running);
    if action != Recovery::Keep {
        tracing::info!(devbox = %devbox.name, state = %devbox.state, running, ?action, "recovering");
    }
    match action {
        Recovery::Keep => {}
        Recovery::Adopt => {
            if devbox.state != State::Running {
                state
                    .store
                    .set_state(&devbox.id, State::Running, None)
                    .await?;
            }
        }
        Recovery::FinishCreate => {
            let image = state
                .images
                .resolve_digest(devbox.image_digest.as_str())
                .await?;
            ensure_layers(state, &image).await?;
            state
                .store
                .set_state(&devbox.id, State::Stopped, None)
                .await?;
        }
        Recovery::FinishStop => {
            state.runtime.stop(&devbox.id, STOP_GRACE).await?;
            state
                .store
                .set_state(&devbox.id, State::Stopped, None)
                .await?;
        }
        Recovery::CleanUpError => {
            state.runtime.stop(&devbox.id, STOP_GRACE).await?;
        }
        Recovery::FinishDelete => {
            state.runtime.remove(&devbox.id).await?;
            state.store.delete_devbox(&devbox.id).await?;
        }
    }
    Ok(())
}
