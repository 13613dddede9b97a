//! `logs`: the devbox's console log, whole, tailed or followed.

use devbox_model::DevboxName;
use devbox_runtime::{LogOptions, LogStream};

use super::read::find;
use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::AppState;

pub async fn logs(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    opts: LogOptions,
) -> OpResult<LogStream> {
    tracing::debug!(%caller, devbox = %name, "logs");
    let devbox = find(state, name).await?;
    state
        .runtime
        .logs(&devbox.id, opts)
        .await
        .map_err(OpError::runtime(&devbox.name, devbox.state))
}
