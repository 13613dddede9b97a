//! `commit`: the devbox's changes as a layer on the image it runs from, in
//! one streaming pass (walk, tar, compress, hash, blob), recorded with its
//! image in one transaction. Also the commit a stop makes, and the one the
//! auto-commit interval makes.
//!
//! Order of writes: the layer blob, then the config blob, then (in one
//! database transaction) the manifest, its tag, the commit record and the
//! devbox's head. A crash anywhere leaves the previous commit the head and
//! the devbox usable; what was written before is unreferenced and garbage
//! collection reclaims it.

use chrono::Utc;
use devbox_image::HistoryEntry;
use devbox_model::api::CommitRequest;
use devbox_model::{DevboxName, Digest, State};
use devbox_runtime::ChangesRequest;
use devbox_store::{CommitRecord, CommitState, CommitTrigger, DevboxRecord};

use super::read::find;
use super::task::detached;
use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::{AppState, repository};

/// `devbox commit`: commits a running devbox's changes while it runs on.
pub async fn commit(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    req: CommitRequest,
) -> OpResult<CommitRecord> {
    tracing::info!(%caller, devbox = %name, consistent = req.consistent, "commit");
    let (state, name) = (state.clone(), name.clone());
    detached(
        state.events.clone(),
        caller,
        "commit",
        &name.clone(),
        async move {
            let _guard = state.locks.lock(&name).await?;
            let devbox = find(&state, &name).await?;
            if devbox.state != State::Running {
                return Err(OpError::NothingToCommit {
                    name,
                    state: devbox.state,
                });
            }
            let message = req.message.unwrap_or_default();
            let commit = commit_run(
                &state,
                &devbox,
                CommitTrigger::Manual,
                &message,
                req.consistent,
            )
            .await?
            .expect("a manual commit is made even when nothing changed");
            if req.pin {
                state.store.set_pinned(&commit.id, true).await?;
                return Ok(CommitRecord {
                    pinned: true,
                    ..commit
                });
            }
            Ok(commit)
        },
    )
    .await
}

/// Refuses ignore patterns that do not parse, naming the pattern.
pub(crate) fn check_exclude(patterns: &[String]) -> OpResult<()> {
    devbox_layer::IgnoreSet::empty()
        .add_list(patterns, "commit-exclude")
        .map_err(|source| OpError::InvalidExclude { source })
}

/// A fresh commit ID: 16 hex digits.
fn new_commit_id() -> String {
    let mut b = [0u8; 8];
    // The kernel's random source does not fail once the system has booted.
    getrandom::fill(&mut b).expect("random bytes for a commit ID");
    hex::encode(b)
}

/// The manifest the devbox's next commit goes on top of: its head's image,
/// or the image it was created from.
pub(crate) async fn head_image(
    state: &AppState,
    devbox: &DevboxRecord,
    cs: &CommitState,
) -> OpResult<Digest> {
    let Some(head) = &cs.head else {
        return Ok(devbox.image_digest.clone());
    };
    let commit = state
        .store
        .get_commit(head)
        .await?
        .ok_or_else(|| OpError::UnknownCommit {
            name: devbox.name.clone(),
            commit: head.clone(),
        })?;
    commit.manifest.ok_or_else(|| OpError::CommitReclaimed {
        name: devbox.name.clone(),
        commit: head.clone(),
    })
}

/// Commits the devbox's changes since its current run's last commit (all
/// of them for the run's first), whether it runs or not. Returns `None`
/// when nothing changed and the trigger is not a manual commit (which is
/// made anyway, as a named point in the history). The caller holds the
/// devbox's lock.
pub(crate) async fn commit_run(
    state: &AppState,
    devbox: &DevboxRecord,
    trigger: CommitTrigger,
    message: &str,
    freeze: bool,
) -> OpResult<Option<CommitRecord>> {
    let cs = state.store.commit_state(&devbox.id).await?;
    let base = head_image(state, devbox, &cs).await?;
    let id = new_commit_id();
    let req = ChangesRequest {
        mark: id.clone(),
        since: cs.run.last().cloned(),
        exclude: cs.exclude.clone(),
        freeze,
    };
    let failed = |source: devbox_runtime::RuntimeError| OpError::Failed {
        op: "commit",
        name: devbox.name.clone(),
        source: Box::new(source.into()),
    };
    let changes = state
        .runtime
        .read_changes(&devbox.id, &req)
        .await
        .map_err(failed)?;
    let stats_rx = changes.stats;
    let pending = state
        .images
        .write_layer(changes.tar, state.commits.compression)
        .await
        .map_err(|e| OpError::Failed {
            op: "commit",
            name: devbox.name.clone(),
            source: Box::new(e.into()),
        })?;
    // The totals are sent before the tar's end, so they are there now; a
    // walk that ended without them failed, and the layer above already said so.
    let Ok(stats) = stats_rx.try_recv() else {
        pending.discard();
        return Err(OpError::Failed {
            op: "commit",
            name: devbox.name.clone(),
            source: Box::new(
                devbox_runtime::RuntimeError::Changes {
                    id: devbox.id.clone(),
                    message: "the walk of the changes ended without its totals".into(),
                }
                .into(),
            ),
        });
    };
    if stats.changes == 0 && trigger != CommitTrigger::Manual {
        pending.discard();
        return Ok(None);
    }
    let layer = pending.store(&state.images).await?;
    let now = Utc::now();
    let history = HistoryEntry {
        created: now,
        created_by: format!("devbox commit ({})", trigger.as_str()),
        comment: message.to_owned(),
    };
    let keep = state.images.resolve_digest(&base).await?.layers.len();
    let manifest = state
        .images
        .derive(&base, keep, std::slice::from_ref(&layer), &[history])
        .await?;
    let record = CommitRecord {
        id,
        devbox: devbox.id.clone(),
        seq: 0,
        parent: cs.head.clone(),
        created_at: now,
        trigger,
        message: message.to_owned(),
        manifest: None,
        layer_digest: layer.digest,
        diff_id: layer.diff_id,
        layer_size: layer.size,
        excluded_bytes: stats.ignored_bytes,
        pinned: false,
        merged_into: None,
    };
    let recorded = state
        .store
        .record_commit(&record, &manifest, &repository(&devbox.name))
        .await?;
    tracing::info!(
        devbox = %devbox.name,
        commit = %recorded.id,
        trigger = trigger.as_str(),
        changes = stats.changes,
        bytes = layer.size,
        "committed"
    );
    Ok(Some(recorded))
}

/// The stop's commit, once the container is down: commits what changed
/// since the run's last commit, then hands the whole run's changes to the
/// node as the committed form of its layers, and ends the run. The caller
/// holds the devbox's lock.
pub(crate) async fn commit_stop(state: &AppState, devbox: &DevboxRecord) -> OpResult<()> {
    let status = state
        .runtime
        .status(&devbox.id)
        .await
        .map_err(OpError::runtime(&devbox.name, devbox.state))?;
    if !status.active_changes {
        // Nothing of the run is left on the node (committed before a crash,
        // or never started): the run is over.
        return Ok(state.store.set_run(&devbox.id, None).await?);
    }
    commit_run(state, devbox, CommitTrigger::Stop, "", false).await?;
    let cs = state.store.commit_state(&devbox.id).await?;
    let mut run_layers = Vec::with_capacity(cs.run.len());
    for id in &cs.run {
        let c = state
            .store
            .get_commit(id)
            .await?
            .ok_or_else(|| OpError::UnknownCommit {
                name: devbox.name.clone(),
                commit: id.clone(),
            })?;
        run_layers.push(c.diff_id);
    }
    state
        .runtime
        .commit_changes(&devbox.id, &run_layers, &cs.exclude)
        .await
        .map_err(|source| OpError::Failed {
            op: "commit",
            name: devbox.name.clone(),
            source: Box::new(source.into()),
        })?;
    Ok(state.store.set_run(&devbox.id, None).await?)
}
