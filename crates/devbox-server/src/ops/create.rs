//! `create`: record a new devbox from an image. It starts stopped; the node
//! fetches its layers at the first start.

use chrono::Utc;
use devbox_model::api::CreateDevbox;
use devbox_model::{ByteSize, DevboxId, Resources, State};
use devbox_store::{DevboxRecord, StoreError, Transition};

use super::task::detached;
use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::AppState;

pub async fn create(
    state: &AppState,
    caller: &Caller,
    req: CreateDevbox,
) -> OpResult<DevboxRecord> {
    let Some(image_ref) = req.image.clone() else {
        return Err(OpError::Empty { what: "the image" });
    };
    tracing::info!(%caller, devbox = %req.name, image = %image_ref, "create");
    let defaults = Resources::default();
    let resources = Resources {
        cpus: req.cpus.unwrap_or(defaults.cpus),
        memory: req.memory.map_or(defaults.memory, ByteSize),
        pids: req.pids.unwrap_or(defaults.pids),
    };
    resources.validate(&state.limits)?;
    if let Some(cmd) = &req.command
        && cmd.first().is_none_or(|c| c.is_empty())
    {
        return Err(OpError::Empty {
            what: "the command",
        });
    }
    let image = state.images.resolve(&image_ref).await.map_err(|e| {
        if e.code() == devbox_model::api::ErrorCode::NotFound {
            OpError::ImageNotFound {
                reference: image_ref.to_string(),
            }
        } else {
            e.into()
        }
    })?;
    let state = state.clone();
    let name = req.name.clone();
    detached(&name, async move {
        let _guard = state.locks.try_lock(&req.name)?;
        let now = Utc::now();
        let record = DevboxRecord {
            id: new_id(),
            name: req.name.clone(),
            image: image_ref.to_string(),
            image_digest: image.digest.clone(),
            state: State::Creating,
            error: None,
            reason: None,
            resources,
            env: req.env.clone(),
            command: req.command.clone(),
            applied: None,
            ip: None,
            oom_kills: 0,
            command_status: None,
            created_at: now,
            updated_at: now,
        };
        state
            .store
            .insert_devbox(&record)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists { .. } => OpError::AlreadyExists {
                    name: req.name.clone(),
                },
                // The image was removed between its resolution and now.
                StoreError::NotFound { .. } => OpError::ImageNotFound {
                    reference: image_ref.to_string(),
                },
                e => e.into(),
            })?;
        Ok(state
            .store
            .transition(
                &record.id,
                State::Creating,
                State::Stopped,
                &Transition::plain(),
            )
            .await?)
    })
    .await
}

fn new_id() -> DevboxId {
    let mut b = [0u8; 8];
    // The kernel's random source does not fail once the system has booted.
    getrandom::fill(&mut b).expect("random bytes for a devbox ID");
    DevboxId::from_random(b)
}
