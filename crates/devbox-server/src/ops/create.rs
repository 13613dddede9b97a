//! `create`: record a new devbox from an image. It starts stopped; the node
//! fetches its layers at the first start.

use chrono::Utc;
use devbox_model::api::CreateDevbox;
use devbox_model::{ByteSize, DevboxId, DevboxName, Digest, Resources, State};
use devbox_store::{DevboxRecord, StoreError, Transition};

use super::task::detached;
use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::{AppState, repository};

pub async fn create(
    state: &AppState,
    caller: &Caller,
    req: CreateDevbox,
) -> OpResult<DevboxRecord> {
    let (image_label, digest) = source(state, &req).await?;
    tracing::info!(%caller, devbox = %req.name, image = %image_label, "create");
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
    // Patterns that do not parse are refused now, not at the first commit.
    super::commit::check_exclude(&req.commit_exclude)?;
    let state = state.clone();
    let name = req.name.clone();
    detached(state.events.clone(), caller, "create", &name, async move {
        let _guard = state.locks.lock(&req.name).await?;
        let now = Utc::now();
        let record = DevboxRecord {
            id: new_id(),
            name: req.name.clone(),
            image: image_label.clone(),
            image_digest: digest.clone(),
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
                    reference: image_label.clone(),
                },
                e => e.into(),
            })?;
        super::transition::created(&state, &record);
        if let Some(secs) = req.auto_stop.filter(|s| *s > 0) {
            state
                .store
                .set_auto_stop(&record.id, Some(std::time::Duration::from_secs(secs)))
                .await?;
        }
        if req.auto_commit.is_some() || !req.commit_exclude.is_empty() {
            state
                .store
                .set_commit_settings(
                    &record.id,
                    req.auto_commit
                        .filter(|s| *s > 0)
                        .map(std::time::Duration::from_secs),
                    &req.commit_exclude,
                )
                .await?;
        }
        Ok(super::transition::transition(
            &state,
            &record.id,
            State::Creating,
            State::Stopped,
            &Transition::plain(),
        )
        .await?)
    })
    .await
}

/// What the new devbox starts from: an image reference, or another
/// devbox's commit (`dev` for its head, `dev@<commit>`); its label and
/// manifest digest.
async fn source(state: &AppState, req: &CreateDevbox) -> OpResult<(String, Digest)> {
    match (&req.image, &req.from) {
        (Some(_), Some(from)) => Err(OpError::InvalidFrom {
            from: from.clone(),
            reason: "give an image or a devbox to fork, not both",
        }),
        (Some(image_ref), None) => {
            let image = state.images.resolve(image_ref).await.map_err(|e| {
                if e.code() == devbox_model::api::ErrorCode::NotFound {
                    OpError::ImageNotFound {
                        reference: image_ref.to_string(),
                    }
                } else {
                    e.into()
                }
            })?;
            Ok((image_ref.to_string(), image.digest))
        }
        (None, Some(from)) => {
            let (name, commit) = match from.split_once('@') {
                Some((n, c)) => (n, Some(c)),
                None => (from.as_str(), None),
            };
            let name: DevboxName = name.parse().map_err(|_| OpError::InvalidFrom {
                from: from.clone(),
                reason: "expected NAME or NAME@COMMIT",
            })?;
            let src = state
                .store
                .get_devbox(&name)
                .await?
                .ok_or_else(|| OpError::ForkSourceNotFound { name: name.clone() })?;
            let cs = state.store.commit_state(&src.id).await?;
            let commit_id = match commit {
                Some(c) => c.to_owned(),
                None => cs.head.clone().ok_or(OpError::InvalidFrom {
                    from: from.clone(),
                    reason: "that devbox has no commits yet: commit it first with `devbox commit`",
                })?,
            };
            let commit = state
                .store
                .get_commit(&commit_id)
                .await?
                .filter(|c| c.devbox == src.id)
                .ok_or_else(|| OpError::UnknownCommit {
                    name: name.clone(),
                    commit: commit_id.clone(),
                })?;
            let digest = commit.manifest.ok_or_else(|| OpError::CommitReclaimed {
                name: name.clone(),
                commit: commit_id.clone(),
            })?;
            Ok((format!("{}:{commit_id}", repository(&name)), digest))
        }
        (None, None) => Err(OpError::Empty { what: "the image" }),
    }
}

fn new_id() -> DevboxId {
    let mut b = [0u8; 8];
    // The kernel's random source does not fail once the system has booted.
    getrandom::fill(&mut b).expect("random bytes for a devbox ID");
    DevboxId::from_random(b)
}
