//! `gc`: retention, then garbage collection.
//!
//! Retention keeps, of each devbox's commits, the images of the last
//! [`crate::CommitPolicy::keep`], every pinned or released one, the head,
//! and whatever another name still holds; the older commits stay in the
//! history with their image reclaimed. Collection then sweeps the blobs no
//! stored manifest names, and the node's unpacked layers no devbox starts
//! from next.

use devbox_model::api::GcReport;
use devbox_store::ImageName;

use super::OpResult;
use super::commit::head_image;
use crate::auth::Caller;
use crate::state::{AppState, repository};

pub async fn gc(state: &AppState, caller: &Caller, dry_run: bool) -> OpResult<GcReport> {
    tracing::info!(%caller, dry_run, "gc");
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    let mut keep_stacks = Vec::new();
    for devbox in state.store.list_devboxes().await? {
        let cs = state.store.commit_state(&devbox.id).await?;
        let repo = repository(&devbox.name);
        let commits = state.store.list_commits(&devbox.id).await?;
        let released: Vec<String> = state
            .store
            .list_releases(&devbox.id)
            .await?
            .into_iter()
            .map(|r| r.commit)
            .collect();
        for (i, c) in commits.iter().enumerate() {
            let keep = i < state.commits.keep
                || c.pinned
                || released.contains(&c.id)
                || cs.head.as_deref() == Some(c.id.as_str())
                || cs.run.contains(&c.id);
            if keep || c.manifest.is_none() {
                continue;
            }
            if dry_run {
                report.commits_expired += 1;
                continue;
            }
            // The store refuses when a devbox still starts from the image
            // (a fork): the commit then keeps it.
            match state.store.remove_image(&repo, ImageName::Tag(&c.id)).await {
                Ok(removal) => {
                    report.commits_expired += 1;
                    if removal.manifest_deleted {
                        report.manifests_removed += 1;
                    }
                }
                Err(
                    devbox_store::StoreError::InUse { .. }
                    | devbox_store::StoreError::NotFound { .. },
                ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // What the devbox starts from next stays on the node.
        for digest in [
            head_image(state, &devbox, &cs).await.ok(),
            cs.active_base.clone(),
        ]
        .into_iter()
        .flatten()
        {
            if let Ok(image) = state.images.resolve_digest(&digest).await {
                keep_stacks.push(image.layers.iter().map(|l| l.diff_id.clone()).collect());
            }
        }
    }
    let blobs = state
        .images
        .collect_blobs(state.commits.gc_grace, dry_run)
        .await?;
    report.manifests_removed += blobs.manifests;
    report.blobs_removed = blobs.blobs;
    report.blob_bytes = blobs.bytes;
    let layers = state
        .runtime
        .prune_layers(&keep_stacks, dry_run)
        .await
        .map_err(|e| super::OpError::PruneLayers {
            source: Box::new(e),
        })?;
    report.layer_dirs_removed = layers.dirs;
    report.layer_bytes = layers.bytes;
    tracing::info!(?report, "garbage collected");
    Ok(report)
}
