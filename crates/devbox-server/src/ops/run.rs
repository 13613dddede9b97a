//! Starting and stopping a devbox's run: the steps `start`, `stop`,
//! `restart` and the reconciler share. Each persists its transient state
//! before it touches the runtime and its settled state after, through
//! conditional transitions, so a writer that lost a race fails instead of
//! overwriting what another one recorded.

use std::time::Duration;

use devbox_model::State;
use devbox_store::{DevboxRecord, Transition};

use super::error::StepError;
use super::spec::start_spec;
use super::{OpError, OpResult};
use crate::state::AppState;

/// How long processes get between SIGTERM and SIGKILL when the caller does
/// not say.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Starts `devbox` (stopped or in error): `Starting`, the runtime's start,
/// then `Running`. On failure the runtime is cleaned up and the devbox is
/// left in `Error` with the reason.
pub(crate) async fn start(state: &AppState, devbox: &DevboxRecord) -> OpResult<DevboxRecord> {
    let starting = super::transition::transition(
        state,
        &devbox.id,
        devbox.state,
        State::Starting,
        &Transition::plain(),
    )
    .await?;
    let result = async {
        let from = run_image(state, &starting).await?;
        let image = state.images.resolve_digest(&from).await?;
        let (mut spec, applied) = start_spec(&starting, &image);
        spec.agent = Some(state.agent_secret.keys_for(&starting.id));
        let started = state.runtime.start(&spec, &state.images).await?;
        let cs = state.store.commit_state(&starting.id).await?;
        if cs.active_base.as_ref() != Some(&from) {
            state.store.set_run(&starting.id, Some(&from)).await?;
        }
        state
            .store
            .record_start(&starting.id, &applied, started.ip)
            .await?;
        state
            .store
            .record_status(&starting.id, 0, started.command.as_ref())
            .await?;
        Ok::<_, StepError>(())
    }
    .await;
    match result {
        Ok(()) => {
            // A start is activity: an idle window begins now.
            state.activity.touch(&starting.id);
            Ok(super::transition::transition(
                state,
                &starting.id,
                State::Starting,
                State::Running,
                &Transition::plain(),
            )
            .await?)
        }
        Err(source) => {
            let err = OpError::Failed {
                op: "start",
                name: starting.name.clone(),
                source: Box::new(source),
            };
            if let Err(cleanup) = state.runtime.stop(&starting.id, Duration::ZERO).await {
                tracing::warn!(devbox = %starting.name, "cleanup after a failed start: {cleanup}");
            }
            super::transition::transition(
                state,
                &starting.id,
                State::Starting,
                State::Error,
                &Transition::failed(err.to_string()),
            )
            .await?;
            Err(err)
        }
    }
}

/// The image a start runs from: the one the devbox's uncommitted changes
/// sit on while the node still holds them (a stop that could not commit
/// them), else its head commit's, else the image it was created from.
async fn run_image(
    state: &AppState,
    devbox: &DevboxRecord,
) -> Result<devbox_model::Digest, StepError> {
    let cs = state.store.commit_state(&devbox.id).await?;
    if let Some(base) = &cs.active_base {
        let status = state.runtime.status(&devbox.id).await?;
        if status.active_changes {
            return Ok(base.clone());
        }
    }
    super::commit::head_image(state, devbox, &cs)
        .await
        .map_err(|e| StepError::Commit(Box::new(e)))
}

/// Stops `devbox` (running or in error): `Stopping`, the runtime's stop,
/// then `Stopped`. On failure the devbox is left in `Error` with the reason.
pub(crate) async fn stop(
    state: &AppState,
    devbox: &DevboxRecord,
    grace: Duration,
) -> OpResult<DevboxRecord> {
    let stopping = super::transition::transition(
        state,
        &devbox.id,
        devbox.state,
        State::Stopping,
        &Transition::plain(),
    )
    .await?;
    settle_stop(state, &stopping, grace, Transition::plain()).await
}

/// The rest of a stop once `Stopping` is recorded (also the reconciler's,
/// for a devbox whose container ended on its own): stop the runtime, record
/// what the last run reported, then `Stopped` with `note`.
pub(crate) async fn settle_stop(
    state: &AppState,
    stopping: &DevboxRecord,
    grace: Duration,
    note: Transition,
) -> OpResult<DevboxRecord> {
    let result = async {
        // What the run reported is read before the teardown removes it.
        let status = state.runtime.status(&stopping.id).await?;
        state.runtime.stop(&stopping.id, grace).await?;
        state
            .store
            .record_status(
                &stopping.id,
                status.oom_kills.max(stopping.oom_kills),
                status.command.as_ref().or(stopping.command_status.as_ref()),
            )
            .await?;
        Ok::<_, StepError>(())
    }
    .await;
    // Every stop commits, once the processes are gone: nothing is lost.
    let result = match result {
        Ok(()) => super::commit::commit_stop(state, stopping)
            .await
            .map_err(|e| match e {
                OpError::Failed { source, .. } => *source,
                other => StepError::Commit(Box::new(other)),
            }),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(super::transition::transition(
            state,
            &stopping.id,
            State::Stopping,
            State::Stopped,
            &note,
        )
        .await?),
        Err(source) => {
            let err = OpError::Failed {
                op: "stop",
                name: stopping.name.clone(),
                source: Box::new(source),
            };
            super::transition::transition(
                state,
                &stopping.id,
                State::Stopping,
                State::Error,
                &Transition::failed(err.to_string()),
            )
            .await?;
            Err(err)
        }
    }
}
