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
    let session = state
        .runtime
        .exec(&devbox.id, &spec)
        .await
        .map_err(OpError::runtime(&devbox.name, devbox.state))?;
    Ok(Box::new(Tracked {
        inner: session,
        _guard: state.activity.session(&devbox.id),
    }))
}

/// An exec that keeps its devbox from counting as idle while it is open.
#[derive(Debug)]
struct Tracked {
    inner: Box<dyn ExecSession>,
    _guard: crate::activity::SessionGuard,
}

#[async_trait::async_trait]
impl ExecSession for Tracked {
    fn take_stdin(&mut self) -> Option<devbox_runtime::ExecWriter> {
        self.inner.take_stdin()
    }
    fn take_stdout(&mut self) -> Option<devbox_runtime::ExecReader> {
        self.inner.take_stdout()
    }
    fn take_stderr(&mut self) -> Option<devbox_runtime::ExecReader> {
        self.inner.take_stderr()
    }
    fn control(&self) -> std::sync::Arc<dyn devbox_runtime::ExecControl> {
        self.inner.control()
    }
    async fn wait(&mut self) -> Result<i32, devbox_runtime::RuntimeError> {
        self.inner.wait().await
    }
}
