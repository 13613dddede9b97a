//! `rollback`: the next start runs from an earlier commit. A running
//! devbox is stopped first (committing, as every stop does) and started
//! again from it; later commits stay in the history.

use std::time::Duration;

use devbox_model::{DevboxName, Operation, Plan, State, plan};
use devbox_store::DevboxRecord;

use super::read::find;
use super::task::detached;
use super::{OpError, OpResult, run};
use crate::auth::Caller;
use crate::state::AppState;

pub async fn rollback(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    commit: &str,
    grace: Duration,
) -> OpResult<DevboxRecord> {
    tracing::info!(%caller, devbox = %name, commit, "rollback");
    let (state, name, commit) = (state.clone(), name.clone(), commit.to_owned());
    detached(
        state.events.clone(),
        caller,
        "rollback",
        &name.clone(),
        async move {
            let _guard = state.locks.lock(&name).await?;
            let devbox = find(&state, &name).await?;
            plan(devbox.state, Operation::Update).map_err(|source| OpError::Transition {
                name: name.clone(),
                source,
            })?;
            let target = state
                .store
                .get_commit(&commit)
                .await?
                .filter(|c| c.devbox == devbox.id)
                .ok_or_else(|| OpError::UnknownCommit {
                    name: name.clone(),
                    commit: commit.clone(),
                })?;
            if target.manifest.is_none() {
                return Err(OpError::CommitReclaimed {
                    name: name.clone(),
                    commit,
                });
            }
            let running = devbox.state == State::Running;
            let devbox = if running {
                run::stop(&state, &devbox, grace).await?
            } else {
                let cs = state.store.commit_state(&devbox.id).await?;
                let status = state
                    .runtime
                    .status(&devbox.id)
                    .await
                    .map_err(OpError::runtime(&name, devbox.state))?;
                if cs.active_base.is_some() && status.active_changes {
                    return Err(OpError::Uncommitted { name });
                }
                devbox
            };
            state.store.set_head(&devbox.id, Some(&target.id)).await?;
            if running {
                let devbox = find(&state, &name).await?;
                if let Plan::Begin(_) = plan(devbox.state, Operation::Start)
                    .map_err(|source| OpError::Transition { name, source })?
                {
                    return run::start(&state, &devbox).await;
                }
                return Ok(devbox);
            }
            find(&state, &name).await
        },
    )
    .await
}
