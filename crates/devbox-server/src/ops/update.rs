//! `update`: change a devbox's resources, environment and startup command.
//! Resource limits apply at once to a running devbox (through its cgroup);
//! environment and command apply at its next start, and until then the
//! devbox shows them as pending.

use devbox_model::api::UpdateDevbox;
use devbox_model::{ByteSize, DevboxName, EnvVar, Operation, Resources, State, plan};
use devbox_store::DevboxRecord;

use super::read::find;
use super::spec::overlay_env;
use super::task::detached;
use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::AppState;

pub async fn update(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    req: UpdateDevbox,
) -> OpResult<DevboxRecord> {
    tracing::info!(%caller, devbox = %name, "update");
    if let Some(cmd) = &req.command
        && cmd.first().is_some_and(|c| c.is_empty())
    {
        return Err(OpError::Empty {
            what: "the command",
        });
    }
    let (state, name) = (state.clone(), name.clone());
    detached(
        state.events.clone(),
        caller,
        "update",
        &name.clone(),
        async move {
            let _guard = state.locks.lock(&name).await?;
            let devbox = find(&state, &name).await?;
            plan(devbox.state, Operation::Update).map_err(|source| OpError::Transition {
                name: name.clone(),
                source,
            })?;
            let resources = Resources {
                cpus: req.cpus.unwrap_or(devbox.resources.cpus),
                memory: req.memory.map_or(devbox.resources.memory, ByteSize),
                pids: req.pids.unwrap_or(devbox.resources.pids),
            };
            resources.validate(&state.limits)?;
            let env = apply_env(&devbox, &req.env, &req.unset_env)?;
            let command = match req.command {
                None => devbox.command.clone(),
                Some(cmd) if cmd.is_empty() => None,
                Some(cmd) => Some(cmd),
            };
            if devbox.state == State::Running && resources != devbox.resources {
                // The kernel's limits first: if it refuses, nothing is recorded.
                state
                    .runtime
                    .update(&devbox.id, &resources)
                    .await
                    .map_err(OpError::runtime(&name, devbox.state))?;
            }
            if req.auto_commit.is_some() || req.commit_exclude.is_some() {
                let cs = state.store.commit_state(&devbox.id).await?;
                let exclude = req.commit_exclude.clone().unwrap_or(cs.exclude);
                super::commit::check_exclude(&exclude)?;
                let auto = match req.auto_commit {
                    Some(0) => None,
                    Some(s) => Some(std::time::Duration::from_secs(s)),
                    None => cs.auto_commit,
                };
                state
                    .store
                    .set_commit_settings(&devbox.id, auto, &exclude)
                    .await?;
            }
            if let Some(secs) = req.auto_stop {
                let after = (secs > 0).then(|| std::time::Duration::from_secs(secs));
                state.store.set_auto_stop(&devbox.id, after).await?;
            }
            Ok(state
                .store
                .update_settings(&devbox.id, resources, &env, command.as_deref())
                .await?)
        },
    )
    .await
}

/// The devbox's variables with `set` applied and `unset` removed. Unsetting
/// a variable the devbox does not have is an error, so a typo is noticed.
fn apply_env(devbox: &DevboxRecord, set: &[EnvVar], unset: &[String]) -> OpResult<Vec<EnvVar>> {
    let mut env = devbox.env.clone();
    for key in unset {
        if !env.iter().any(|e| &e.key == key) {
            return Err(OpError::UnknownVariable {
                name: devbox.name.clone(),
                key: key.clone(),
            });
        }
        env.retain(|e| &e.key != key);
    }
    Ok(overlay_env(env, set))
}
