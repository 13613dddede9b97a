//! Create, start, stop, restart and delete: each persists its transient state
//! before touching the runtime and its settled state after, so the reconciler
//! can finish or undo it after a crash (see `devbox_model::state`).
//!
//! Every operation runs in its own task: a client that disconnects mid-way
//! does not cancel an operation half done.

use std::collections::HashSet;
use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Duration;

use chrono::Utc;
use devbox_image::ResolvedImage;
use devbox_model::api::{CreateDevbox, Devbox};
use devbox_model::{DevboxId, DevboxName, EnvVar, Operation, Plan, Resources, State, plan};
use devbox_runtime::{Runtime, StartSpec};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long processes get between SIGTERM and SIGKILL on stop.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs `f` to completion in its own task, whatever happens to the caller.
async fn detached<T: Send + 'static>(
    f: impl Future<Output = ApiResult<T>> + Send + 'static,
) -> ApiResult<T> {
    tokio::spawn(f)
        .await
        .map_err(|e| ApiError::internal(format!("operation failed: {e}")))?
}

/// The devbox of that name, or 404.
pub async fn get(state: &AppState, name: &DevboxName) -> ApiResult<Devbox> {
    state
        .store
        .get_devbox(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("devbox {name} not found")))
}

/// Records a new devbox and makes its image's layers ready on this node.
pub async fn create(state: AppState, req: CreateDevbox) -> ApiResult<Devbox> {
    let defaults = Resources::default();
    let resources = Resources {
        cpus: req.cpus.unwrap_or(defaults.cpus),
        memory: req.memory.map_or(defaults.memory, devbox_model::ByteSize),
        pids: req.pids.unwrap_or(defaults.pids),
    };
    resources.validate(&state.limits)?;
    if let Some(cmd) = &req.command
        && (cmd.is_empty() || cmd[0].is_empty())
    {
        return Err(ApiError::invalid("command must not be empty"));
    }
    let image = state.images.resolve(&req.image).await.map_err(|e| {
        let api = ApiError::from(e);
        if api.code == devbox_model::api::ErrorCode::NotFound {
            ApiError::not_found(format!(
                "image {} not found: import it with `devbox image import` or pull it with `devbox image pull`",
                req.image
            ))
        } else {
            api
        }
    })?;
    detached(async move {
        let _guard = state.locks.try_lock(&req.name)?;
        let devbox = {
            let _create = state.create_lock.lock().await;
            if state.store.get_devbox(&req.name).await?.is_some() {
                return Err(ApiError::new(
                    devbox_model::api::ErrorCode::AlreadyExists,
                    format!("devbox {} already exists", req.name),
                ));
            }
            let ip = allocate_ip(&state).await?;
            let now = Utc::now();
            let devbox = Devbox {
                id: new_id()?,
                name: req.name.clone(),
                image: req.image.to_string(),
                image_digest: image
                    .digest
                    .parse()
                    .map_err(|e: devbox_model::DigestError| ApiError::internal(e.to_string()))?,
                reason: None,
                oom_kills: 0,
                command_status: None,
                pending: Vec::new(),
                state: State::Creating,
                error: None,
                resources,
                env: req.env.clone(),
                command: req.command.clone(),
                ip: ip.to_string(),
                created_at: now,
                updated_at: now,
            };
            state.store.insert_devbox(&devbox).await?;
            devbox
        };
        if let Err(e) = ensure_layers(&state, &image).await {
            // Nothing but the record exists yet: roll the create back.
            state.store.delete_devbox(&devbox.id).await?;
            return Err(e);
        }
        state
            .store
            .set_state(&devbox.id, State::Stopped, None)
            .await?;
        get(&state, &devbox.name).await
    })
    .await
}

fn new_id() -> ApiResult<DevboxId> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b)
        .map_err(|e| ApiError::internal(format!("cannot get random bytes: {e}")))?;
    Ok(DevboxId::from_random(b))
}

async fn allocate_ip(state: &AppState) -> ApiResult<Ipv4Addr> {
    let used: HashSet<Ipv4Addr> = state
        .store
        .list_devboxes()
        .await?
        .iter()
        .filter_map(|d| d.ip.parse().ok())
        .collect();
    state.subnet.allocate(&used).ok_or_else(|| {
        ApiError::conflict(format!(
            "no free address left in the devbox subnet {}",
            state.subnet
        ))
    })
}

/// Unpacks every layer of `image` that the node's layer store lacks.
pub async fn ensure_layers(state: &AppState, image: &ResolvedImage) -> ApiResult<()> {
    for layer in &image.layers {
        let layers = state.runtime.layers();
        if layers.contains(&layer.diff_id) {
            continue;
        }
        let reader = state.images.open_blob(&layer.digest).await?;
        let runtime = state.runtime.clone();
        let (diff_id, compression) = (layer.diff_id.clone(), layer.compression);
        tokio::task::spawn_blocking(move || runtime.layers().unpack(&diff_id, reader, compression))
            .await
            .map_err(|e| ApiError::internal(format!("layer unpack failed: {e}")))??;
    }
    Ok(())
}

/// The image's environment with the devbox's on top (same key: devbox wins).
pub fn merge_env(image_env: &[String], devbox_env: &[EnvVar]) -> Vec<EnvVar> {
    let base = image_env.iter().filter_map(|e| e.parse().ok()).collect();
    overlay_env(base, devbox_env)
}

/// `base` with every variable of `over` set on top (same key: `over` wins).
pub fn overlay_env(mut base: Vec<EnvVar>, over: &[EnvVar]) -> Vec<EnvVar> {
    for e in over {
        base.retain(|x| x.key != e.key);
        base.push(e.clone());
    }
    base
}

async fn start_spec(state: &AppState, devbox: &Devbox) -> ApiResult<StartSpec> {
    let image = state
        .images
        .resolve_digest(devbox.image_digest.as_str())
        .await?;
    ensure_layers(state, &image).await?;
    let ip = devbox.ip.parse().map_err(|_| {
        ApiError::internal(format!(
            "devbox {} has a malformed address {:?}",
            devbox.name, devbox.ip
        ))
    })?;
    Ok(StartSpec {
        id: devbox.id.clone(),
        hostname: devbox.name.clone(),
        layers: image.layers.iter().map(|l| l.diff_id.clone()).collect(),
        ip,
        resources: devbox.resources,
        env: merge_env(&image.config.env, &devbox.env),
        workdir: image
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        user: image.config.user.clone().filter(|u| !u.is_empty()),
        command: devbox.command.clone(),
    })
}

/// Starts the container; on failure cleans up and records the error.
async fn do_start(state: &AppState, devbox: &Devbox) -> ApiResult<()> {
    state
        .store
        .set_state(&devbox.id, State::Starting, None)
        .await?;
    let result = async {
        let spec = start_spec(state, devbox).await?;
        state.runtime.start(&spec).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => {
            state
                .store
                .set_state(&devbox.id, State::Running, None)
                .await?;
            Ok(())
        }
        Err(e) => {
            let msg = format!("cannot start devbox {}: {}", devbox.name, e.message);
            if let Err(cleanup) = state.runtime.stop(&devbox.id, Duration::ZERO).await {
                tracing::warn!(devbox = %devbox.name, "cleanup after failed start: {cleanup}");
            }
            state
                .store
                .set_state(&devbox.id, State::Error, Some(&msg))
                .await?;
            Err(ApiError::new(e.code, msg))
        }
    }
}

/// Stops the container, keeping the devbox's changes.
async fn do_stop(state: &AppState, devbox: &Devbox) -> ApiResult<()> {
    state
        .store
        .set_state(&devbox.id, State::Stopping, None)
        .await?;
    match state.runtime.stop(&devbox.id, STOP_GRACE).await {
        Ok(()) => {
            state
                .store
                .set_state(&devbox.id, State::Stopped, None)
                .await?;
            Ok(())
        }
        Err(e) => {
            let msg = format!("cannot stop devbox {}: {e}", devbox.name);
            state
                .store
                .set_state(&devbox.id, State::Error, Some(&msg))
                .await?;
            Err(ApiError::internal(msg))
        }
    }
}

/// Runs a lifecycle operation under the devbox's lock.
pub async fn operate(
    state: AppState,
    name: DevboxName,
    op: Operation,
) -> ApiResult<Option<Devbox>> {
    detached(async move {
        let _guard = state.locks.try_lock(&name)?;
        let devbox = get(&state, &name).await?;
        let begin = match plan(devbox.state, op)? {
            Plan::Noop => return Ok(Some(devbox)),
            Plan::Begin(s) => s,
        };
        match (op, begin) {
            (Operation::Start, _) | (Operation::Restart, State::Starting) => {
                do_start(&state, &devbox).await?
            }
            (Operation::Stop, _) => do_stop(&state, &devbox).await?,
            (Operation::Restart, _) => {
                do_stop(&state, &devbox).await?;
                do_start(&state, &devbox).await?;
            }
            (Operation::Delete, _) => {
                state
                    .store
                    .set_state(&devbox.id, State::Deleting, None)
                    .await?;
                if let Err(e) = state.runtime.remove(&devbox.id).await {
                    let msg = format!("cannot delete devbox {}: {e}", devbox.name);
                    state
                        .store
                        .set_state(&devbox.id, State::Error, Some(&msg))
                        .await?;
                    return Err(ApiError::internal(msg));
                }
                state.store.delete_devbox(&devbox.id).await?;
                return Ok(None);
            }
        }
        get(&state, &name).await.map(Some)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devbox_env_overrides_image_env() {
        let image = vec![
            "PATH=/bin".to_owned(),
            "FOO=image".to_owned(),
            "junk".to_owned(),
        ];
        let devbox = vec!["FOO=bar".parse().unwrap(), "NEW=1".parse().unwrap()];
        let merged: Vec<String> = merge_env(&image, &devbox)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(merged, ["PATH=/bin", "FOO=bar", "NEW=1"]);
    }
}
