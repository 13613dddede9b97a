//! The reconciler: makes the database and the runtime agree, at boot and
//! for as long as the server runs.
//!
//! It is shaped like a Kubernetes controller: [`reconcile_one`] looks at one
//! devbox (its record and what the runtime reports), takes the one action
//! the decision table `devbox_model::state::recover` names, and says when to
//! look again; failures go through an error policy with exponential backoff
//! ([`backoff`]). Triggers are the runtime's exit notices and a periodic
//! resync of every devbox, so a devbox whose container died on its own (its
//! PID 1 exited, it was OOM-killed, someone ran `runc kill` on the host) is
//! recorded as stopped, with the reason, within seconds.

mod backoff;

use std::collections::HashSet;
use std::time::Duration;

use devbox_model::state::{Observed, Recovery, recover};
use devbox_model::{DevboxId, State};
use devbox_runtime::{ContainerState, ContainerStatus};
use devbox_store::{DevboxRecord, Transition};
use futures::StreamExt;

use crate::ops::{self, OpError, OpResult};
use crate::state::AppState;
use backoff::Backoff;

/// How often every devbox is looked at, exit notices or not.
const RESYNC: Duration = Duration::from_secs(10);

/// Reconciles every devbox once, then removes containers no record owns.
/// A failure on one devbox is recorded on it and does not stop the others.
pub async fn at_boot(state: &AppState) -> anyhow::Result<()> {
    let devboxes = state.store.list_devboxes().await?;
    let known: HashSet<DevboxId> = devboxes.iter().map(|d| d.id.clone()).collect();
    for devbox in &devboxes {
        if let Err(e) = reconcile_one(state, &devbox.id).await {
            record_failure(state, devbox, &e).await?;
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

/// Runs the reconciler until the server stops.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut exits = state.runtime.exits();
        let mut resync = tokio::time::interval(RESYNC);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Backoff::default();
        loop {
            let due: Vec<DevboxId> = tokio::select! {
                Some(id) = exits.next() => vec![id],
                _ = resync.tick() => match state.store.list_devboxes().await {
                    Ok(all) => all.into_iter().map(|d| d.id).filter(|id| backoff.is_due(id)).collect(),
                    Err(e) => {
                        tracing::error!("reconciler cannot list devboxes: {e}");
                        continue;
                    }
                },
            };
            for id in due {
                match reconcile_one(&state, &id).await {
                    Ok(()) => backoff.succeeded(&id),
                    Err(OpError::Busy { .. }) => {}
                    Err(e) => {
                        let wait = backoff.failed(&id);
                        tracing::warn!(devbox = %id, "reconciling failed, retrying in {wait:?}: {e}");
                        let devbox = state
                            .store
                            .get_devbox_by_id(&id)
                            .await
                            .ok()
                            .flatten()
                            .map(|d| d.name);
                        state.events.publish(devbox_model::api::EventKind::Error {
                            devbox,
                            message: format!(
                                "reconciling failed, retrying in {}s: {e}",
                                wait.as_secs().max(1)
                            ),
                        });
                    }
                }
            }
        }
    })
}

/// Brings one devbox in line with its container, under the devbox's lock
/// (a devbox busy with an operation is left to it).
pub(crate) async fn reconcile_one(state: &AppState, id: &DevboxId) -> OpResult<()> {
    let Some(devbox) = state.store.get_devbox_by_id(id).await? else {
        return Ok(());
    };
    let _guard = state.locks.try_lock_background(&devbox.name)?;
    // Read again under the lock: an operation may have just finished.
    let Some(devbox) = state.store.get_devbox_by_id(id).await? else {
        return Ok(());
    };
    let status = state
        .runtime
        .status(&devbox.id)
        .await
        .map_err(OpError::runtime(&devbox.name, devbox.state))?;
    let observed = match status.state {
        ContainerState::Running { .. } => Observed::Running,
        ContainerState::Exited(_) => Observed::Exited,
        ContainerState::Absent => Observed::Absent,
    };
    let action = recover(devbox.state, observed);
    if action != Recovery::Keep {
        tracing::info!(devbox = %devbox.name, state = %devbox.state, container = ?status.state, ?action, "reconciling");
    }
    match action {
        Recovery::Keep => record_progress(state, &devbox, &status).await,
        Recovery::Adopt => {
            ops::transition::transition(
                state,
                &devbox.id,
                devbox.state,
                State::Running,
                &Transition::plain(),
            )
            .await?;
            record_progress(state, &devbox, &status).await
        }
        Recovery::FinishCreate => {
            ops::transition::transition(
                state,
                &devbox.id,
                State::Creating,
                State::Stopped,
                &Transition::plain(),
            )
            .await?;
            Ok(())
        }
        Recovery::Ended => {
            let stopping = ops::transition::transition(
                state,
                &devbox.id,
                State::Running,
                State::Stopping,
                &Transition::plain(),
            )
            .await?;
            let note = Transition::because(why_it_ended(&status));
            ops::settle_stop(state, &stopping, ops::STOP_GRACE, note)
                .await
                .map(drop)
        }
        Recovery::FinishStop => {
            let stopping = if devbox.state == State::Stopping {
                devbox
            } else {
                ops::transition::transition(
                    state,
                    &devbox.id,
                    devbox.state,
                    State::Stopping,
                    &Transition::plain(),
                )
                .await?
            };
            ops::settle_stop(state, &stopping, ops::STOP_GRACE, Transition::plain())
                .await
                .map(drop)
        }
        Recovery::CleanUpError => state
            .runtime
            .stop(&devbox.id, ops::STOP_GRACE)
            .await
            .map_err(OpError::runtime(&devbox.name, devbox.state)),
        Recovery::FinishDelete => ops::delete::finish(state, &devbox).await,
    }
}

/// Keeps what a running devbox reports (OOM kills, its startup command) up
/// to date in its record, writing only when something changed.
async fn record_progress(
    state: &AppState,
    devbox: &DevboxRecord,
    status: &ContainerStatus,
) -> OpResult<()> {
    if let Some(a) = &status.activity {
        state.activity.note(&devbox.id, a.last_activity);
        if a.busy() {
            state.activity.touch(&devbox.id);
        }
    }
    let command = status.command.as_ref().or(devbox.command_status.as_ref());
    if status.oom_kills != devbox.oom_kills || command != devbox.command_status.as_ref() {
        state
            .store
            .record_status(&devbox.id, status.oom_kills.max(devbox.oom_kills), command)
            .await?;
    }
    Ok(())
}

/// Why a container ended when nobody asked it to.
fn why_it_ended(status: &ContainerStatus) -> String {
    let mut why = match &status.state {
        ContainerState::Exited(Some(exit)) => exit.describe(),
        ContainerState::Exited(None) => "its container ended".to_owned(),
        ContainerState::Absent => "its container disappeared".to_owned(),
        ContainerState::Running { .. } => "it was stopped".to_owned(),
    };
    let exit_was_oom = matches!(&status.state, ContainerState::Exited(Some(e)) if e.oom_killed);
    if status.oom_kills > 0 && !exit_was_oom {
        let n = status.oom_kills;
        why.push_str(&format!(
            "; {n} process{} killed for lack of memory",
            if n == 1 { " was" } else { "es were" }
        ));
    }
    why
}

/// Puts a devbox whose reconciliation failed at boot in `Error`, saying why.
async fn record_failure(
    state: &AppState,
    devbox: &DevboxRecord,
    e: &OpError,
) -> anyhow::Result<()> {
    let msg = format!("recovery of devbox {} failed: {e}", devbox.name);
    tracing::error!("{msg}");
    state.events.publish(devbox_model::api::EventKind::Error {
        devbox: Some(devbox.name.clone()),
        message: msg.clone(),
    });
    let current = state.store.get_devbox_by_id(&devbox.id).await?;
    if let Some(current) = current
        && current.state != State::Error
    {
        ops::transition::transition(
            state,
            &current.id,
            current.state,
            State::Error,
            &Transition::failed(msg),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use devbox_runtime::ExitInfo;

    fn status(state: ContainerState, oom_kills: u64) -> ContainerStatus {
        ContainerStatus {
            state,
            oom_kills,
            command: None,
            active_changes: false,
            activity: None,
        }
    }

    fn exit(code: i32, signal: Option<i32>, oom_killed: bool) -> ContainerState {
        ContainerState::Exited(Some(ExitInfo {
            code,
            signal,
            oom_killed,
            finished_at: Utc::now(),
        }))
    }

    #[test]
    fn the_reason_says_how_the_container_ended() {
        assert_eq!(
            why_it_ended(&status(exit(137, Some(9), true), 1)),
            "exited with 137: out of memory"
        );
        assert_eq!(
            why_it_ended(&status(exit(137, Some(9), false), 0)),
            "exited with 137: killed by SIGKILL"
        );
        assert_eq!(
            why_it_ended(&status(exit(3, None, false), 0)),
            "exited with 3"
        );
        assert_eq!(
            why_it_ended(&status(ContainerState::Exited(None), 2)),
            "its container ended; 2 processes were killed for lack of memory"
        );
        assert_eq!(
            why_it_ended(&status(ContainerState::Absent, 0)),
            "its container disappeared"
        );
    }
}
