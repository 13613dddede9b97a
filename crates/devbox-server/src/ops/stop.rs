//! `stop`: end a devbox's run, keeping its changes. Stopping a stopped
//! devbox changes nothing.

use std::time::Duration;

use devbox_model::{DevboxName, Operation, Plan, plan};
use devbox_store::DevboxRecord;

use super::read::find;
use super::task::detached;
use super::{OpError, OpResult, run};
use crate::auth::Caller;
use crate::state::AppState;

/// Stops the devbox; its processes get `grace` between SIGTERM and SIGKILL.
pub async fn stop(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    grace: Duration,
) -> OpResult<DevboxRecord> {
    tracing::info!(%caller, devbox = %name, ?grace, "stop");
    let (state, name) = (state.clone(), name.clone());
    detached(
        state.events.clone(),
        caller,
        "stop",
        &name.clone(),
        async move {
            let _guard = state.locks.lock(&name).await?;
            let devbox = find(&state, &name).await?;
            match plan(devbox.state, Operation::Stop)
                .map_err(|source| OpError::Transition { name, source })?
            {
                Plan::Noop => Ok(devbox),
                Plan::Begin(_) => run::stop(&state, &devbox, grace).await,
            }
        },
    )
    .await
}
