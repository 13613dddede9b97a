//! `exec`: start a process in a running devbox.

use devbox_model::{DevboxName, EnvVar, State};
use devbox_runtime::ExecSession;

use super::read::find;
use super::spec::exec_spec;
use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::AppState;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<EnvVar>,
    pub workdir: Option<String>,
    /// `Some((rows, cols))`: on a terminal of that size.
    pub tty: Option<(u16, u16)>,
}

/// Starts the process; the caller streams its input and output and waits
/// for its exit through the session.
pub async fn exec(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    req: ExecRequest,
) -> OpResult<Box<dyn ExecSession>> {
    tracing::debug!(%caller, devbox = %name, cmd = ?req.cmd, "exec");
    let devbox = find(state, name).await?;
    if devbox.state != State::Running {
        return Err(OpError::NotRunning {
            name: devbox.name,
            state: devbox.state,
        });
    }
    let image = state.images.resolve_digest(&devbox.image_digest).await?;
    let spec = exec_spec(&devbox, &image, req.cmd, &req.env, req.workdir, req.tty)?;
    state.activity.touch(&devbox.id);
    state
        .runtime
        .exec(&devbox.id, &spec)
        .await
        .map_err(OpError::runtime(&devbox.name, devbox.state))
}
