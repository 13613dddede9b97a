//! `diff`: what the devbox's next commit would hold.

use devbox_model::DevboxName;
use devbox_model::api::Diff;

use super::read::find;
use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::AppState;

pub async fn diff(state: &AppState, _caller: &Caller, name: &DevboxName) -> OpResult<Diff> {
    let devbox = find(state, name).await?;
    let cs = state.store.commit_state(&devbox.id).await?;
    state
        .runtime
        .diff_changes(&devbox.id, cs.run.last().map(String::as_str), &cs.exclude)
        .await
        .map_err(OpError::runtime(&devbox.name, devbox.state))
}
