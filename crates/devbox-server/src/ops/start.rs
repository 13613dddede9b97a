//! `start`: run a stopped devbox (or one in error). Starting a running
//! devbox changes nothing.

use devbox_model::{DevboxName, Operation, Plan, plan};
use devbox_store::DevboxRecord;

use super::read::find;
use super::task::detached;
use super::{OpError, OpResult, run};
use crate::auth::Caller;
use crate::state::AppState;

pub async fn start(state: &AppState, caller: &Caller, name: &DevboxName) -> OpResult<DevboxRecord> {
    tracing::info!(%caller, devbox = %name, "start");
    let (state, name) = (state.clone(), name.clone());
    detached(
        state.events.clone(),
        caller,
        "start",
        &name.clone(),
        async move {
            let _guard = state.locks.lock(&name).await?;
            let devbox = find(&state, &name).await?;
            match plan(devbox.state, Operation::Start)
                .map_err(|source| OpError::Transition { name, source })?
            {
                Plan::Noop => Ok(devbox),
                Plan::Begin(_) => run::start(&state, &devbox).await,
            }
        },
    )
    .await
}
