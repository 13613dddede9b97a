//! `restart`: stop (if running) and start again, under one lock.

use std::time::Duration;

use devbox_model::{DevboxName, Operation, Plan, State, plan};
use devbox_store::DevboxRecord;

use super::read::find;
use super::task::detached;
use super::{OpError, OpResult, run};
use crate::auth::Caller;
use crate::state::AppState;

pub async fn restart(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    grace: Duration,
) -> OpResult<DevboxRecord> {
    tracing::info!(%caller, devbox = %name, ?grace, "restart");
    let (state, name) = (state.clone(), name.clone());
    detached(
        state.events.clone(),
        caller,
        "restart",
        &name.clone(),
        async move {
            let _guard = state.locks.lock(&name).await?;
            let devbox = find(&state, &name).await?;
            let begin = match plan(devbox.state, Operation::Restart)
                .map_err(|source| OpError::Transition { name, source })?
            {
                Plan::Noop => return Ok(devbox),
                Plan::Begin(s) => s,
            };
            let stopped = match begin {
                State::Stopping => run::stop(&state, &devbox, grace).await?,
                _ => devbox,
            };
            run::start(&state, &stopped).await
        },
    )
    .await
}
