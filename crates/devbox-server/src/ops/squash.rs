//! Layer merge: a stopped devbox with more than
//! [`crate::CommitPolicy::squash_after`] layers of its own gets them merged
//! into one, server-side and streaming. The head commit's image is rewritten
//! with the merged layer (same files, byte for byte); the commits whose
//! layers were merged stay in the history, their own images kept as long as
//! retention keeps them, so rolling back to them still works until then.

use devbox_model::State;
use devbox_store::DevboxRecord;

use super::commit::head_image;
use super::{OpError, OpResult};
use crate::state::{AppState, repository};

/// Merges the devbox's own layers when it has too many. Returns whether it
/// did. The caller holds the devbox's lock.
pub(crate) async fn squash_if_due(state: &AppState, devbox: &DevboxRecord) -> OpResult<bool> {
    if devbox.state != State::Stopped {
        return Ok(false);
    }
    let cs = state.store.commit_state(&devbox.id).await?;
    let Some(head) = cs.head.clone() else {
        return Ok(false);
    };
    let base = state.images.resolve_digest(&devbox.image_digest).await?;
    let current = state
        .images
        .resolve_digest(&head_image(state, devbox, &cs).await?)
        .await?;
    let keep = base.layers.len();
    if current.layers.len() <= keep + state.commits.squash_after
        || current.layers[..keep] != base.layers[..]
    {
        return Ok(false);
    }
    let own = &current.layers[keep..];
    let started = std::time::Instant::now();
    let pending = state
        .images
        .squash_layers(own, state.commits.compression)
        .await?;
    let merged = pending.store(&state.images).await?;
    // No history entry of its own: every layer has one, and the merged
    // layer's is the last of those it merged.
    let manifest = state
        .images
        .derive(&current.digest, keep, std::slice::from_ref(&merged), &[])
        .await?;
    // Every commit whose layers the merged one now holds.
    let merged_commits: Vec<String> = state
        .store
        .list_commits(&devbox.id)
        .await?
        .into_iter()
        .filter(|c| c.id != head && own.iter().any(|l| l.diff_id == c.diff_id))
        .map(|c| c.id)
        .collect();
    state
        .store
        .replace_commit_image(&head, &manifest, &repository(&devbox.name), &merged_commits)
        .await
        .map_err(OpError::from)?;
    tracing::info!(
        devbox = %devbox.name,
        layers = own.len(),
        bytes = merged.size,
        took = ?started.elapsed(),
        "merged the devbox's layers"
    );
    Ok(true)
}
