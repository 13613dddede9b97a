//! `history`: a devbox's commits, newest first.

use devbox_model::DevboxName;
use devbox_store::{CommitRecord, CommitState};

use super::OpResult;
use super::read::find;
use crate::auth::Caller;
use crate::state::AppState;

/// The devbox's commits, newest first, and its commit state (which says
/// the head).
pub async fn history(
    state: &AppState,
    _caller: &Caller,
    name: &DevboxName,
) -> OpResult<(Vec<CommitRecord>, CommitState)> {
    let devbox = find(state, name).await?;
    let commits = state.store.list_commits(&devbox.id).await?;
    let cs = state.store.commit_state(&devbox.id).await?;
    Ok((commits, cs))
}
