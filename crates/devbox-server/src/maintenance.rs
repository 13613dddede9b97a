//! Work the server does on its own schedule: auto-commits of running
//! devboxes whose interval passed, layer merges of stopped devboxes with
//! too many layers, and periodic garbage collection. Each takes the
//! devbox's lock like any operation, so it never races a user's request;
//! a devbox busy with one is left for the next round.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use devbox_model::{DevboxId, State};
use devbox_store::CommitTrigger;

use crate::auth::Caller;
use crate::ops;
use crate::state::AppState;

/// How often the schedule is looked at.
const TICK: Duration = Duration::from_secs(5);

/// Runs the schedule until the server stops.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let caller = Caller {
            token_name: "maintenance".into(),
        };
        let mut last_commit: HashMap<DevboxId, Instant> = HashMap::new();
        let mut last_gc = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = round(&state, &mut last_commit).await {
                tracing::warn!("maintenance round failed: {e}");
            }
            if last_gc.elapsed() >= state.commits.gc_every {
                last_gc = Instant::now();
                if let Err(e) = ops::gc::gc(&state, &caller, false).await {
                    tracing::warn!("garbage collection failed: {e}");
                }
            }
        }
    })
}

async fn round(
    state: &AppState,
    last_commit: &mut HashMap<DevboxId, Instant>,
) -> ops::OpResult<()> {
    let devboxes = state.store.list_devboxes().await?;
    last_commit.retain(|id, _| {
        devboxes
            .iter()
            .any(|d| &d.id == id && d.state == State::Running)
    });
    for devbox in devboxes {
        match devbox.state {
            State::Running => {
                let cs = state.store.commit_state(&devbox.id).await?;
                let Some(every) = cs.auto_commit else {
                    continue;
                };
                let since = *last_commit
                    .entry(devbox.id.clone())
                    .or_insert_with(Instant::now);
                if since.elapsed() < every {
                    continue;
                }
                let Ok(_guard) = state.locks.try_lock_background(&devbox.name) else {
                    continue;
                };
                last_commit.insert(devbox.id.clone(), Instant::now());
                let current = ops::read::find(state, &devbox.name).await?;
                if current.state == State::Running
                    && let Err(e) =
                        ops::commit::commit_run(state, &current, CommitTrigger::Auto, "", false)
                            .await
                {
                    tracing::warn!(devbox = %devbox.name, "auto-commit failed: {e}");
                }
            }
            State::Stopped => {
                let Ok(_guard) = state.locks.try_lock_background(&devbox.name) else {
                    continue;
                };
                let current = ops::read::find(state, &devbox.name).await?;
                if let Err(e) = ops::squash::squash_if_due(state, &current).await {
                    tracing::warn!(devbox = %devbox.name, "merging layers failed: {e}");
                }
            }
            _ => {}
        }
    }
    Ok(())
}
