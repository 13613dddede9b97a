//! The seam between the control plane and whatever runs devboxes: the
//! [`Runtime`] trait and the specs it takes. The local runc implementation is
//! [`crate::LocalRuntime`]; a Kubernetes backend implements the same trait.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use devbox_layer::digest::Digest;
use devbox_model::{DevboxId, DevboxName, EnvVar, Resources, Signal};

use crate::error::RuntimeError;
use crate::exec::ExecProcess;

/// What a devbox runs with. The server computes it; the runtime applies it.
#[derive(Debug, Clone)]
pub struct StartSpec {
    pub id: DevboxId,
    /// The hostname inside the devbox.
    pub hostname: DevboxName,
    /// diffIDs of the image's layers and the devbox's commits, bottom first.
    /// Each must be in the layer store.
    pub layers: Vec<Digest>,
    /// The devbox's address; a host address of the runtime's subnet.
    pub ip: Ipv4Addr,
    pub resources: Resources,
    /// The environment, image and devbox variables already merged.
    pub env: Vec<EnvVar>,
    /// The working directory of the startup command; empty means `/`.
    pub workdir: String,
    /// The image's `User`: `name`, `uid`, `uid:gid` or `name:group`; `None`
    /// means root.
    pub user: Option<String>,
    /// A command the devbox runs at every start, its output going to the
    /// console log. `None`: the devbox only waits for execs.
    pub command: Option<Vec<String>>,
}

/// A process to run in a running devbox.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    pub env: Vec<EnvVar>,
    /// Working directory; empty means `/`.
    pub workdir: String,
    /// As [`StartSpec::user`].
    pub user: Option<String>,
    /// `Some((rows, cols))`: run on a pseudo-terminal of that size.
    pub tty: Option<(u16, u16)>,
}

/// What the runtime knows of a devbox's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// The container runs; `pid` is its init on the host.
    Running { pid: u32 },
    /// The container exists but its init is not running.
    Stopped,
    /// No container.
    Absent,
}

/// The runtime's view of a [`Signal`]: the same number, as rustix spells it.
pub(crate) fn to_rustix(sig: Signal) -> rustix::process::Signal {
    use rustix::process::Signal as S;
    match sig {
        Signal::Hup => S::HUP,
        Signal::Int => S::INT,
        Signal::Quit => S::QUIT,
        Signal::Kill => S::KILL,
        Signal::Usr1 => S::USR1,
        Signal::Usr2 => S::USR2,
        Signal::Term => S::TERM,
        Signal::Winch => S::WINCH,
    }
}

/// Runs devboxes. Every method is idempotent where the doc says so, and an
/// error leaves nothing half-done behind (except as documented). The caller
/// serializes operations on one devbox; different devboxes may be operated
/// on concurrently.
#[async_trait]
pub trait Runtime: Send + Sync + fmt::Debug {
    /// Starts the devbox: mounts its root filesystem (the spec's layers with
    /// the devbox's own upper directory on top, kept across stops), sets up
    /// its network, and runs its container detached, so it outlives a
    /// restart of the server.
    ///
    /// Idempotent: a devbox that is running already is left alone and `Ok`
    /// is returned. A stopped container left from an earlier run is cleaned
    /// up first. On failure everything this call set up (mount, network
    /// namespace, veth, cgroup, container) is undone; the upper directory is
    /// kept.
    ///
    /// Errors: a layer missing from the layer store, an address outside the
    /// subnet, an unknown user, a mount, network or runc failure.
    async fn start(&self, spec: &StartSpec) -> Result<(), RuntimeError>;

    /// Stops the devbox: SIGTERM to its init, which asks every process to
    /// end; after `grace`, SIGKILL. Then removes the container, its network
    /// and its root filesystem mount. Keeps the upper directory (the
    /// devbox's changes).
    ///
    /// Idempotent: nothing running is `Ok`. Errors: the container survived
    /// SIGKILL, or the teardown failed (and can be retried).
    async fn stop(&self, id: &DevboxId, grace: Duration) -> Result<(), RuntimeError>;

    /// The state of the devbox's container.
    async fn state(&self, id: &DevboxId) -> Result<ContainerState, RuntimeError>;

    /// Stops the devbox without grace and deletes everything it owned on
    /// this node: upper and work directories, bundle, logs. Idempotent.
    async fn remove(&self, id: &DevboxId) -> Result<(), RuntimeError>;

    /// Runs a process in the running devbox. Errors: the devbox is not
    /// running, the command is empty, the user is unknown, or the process
    /// could not be started. The process's own exit code, however bad, is
    /// not an error: see [`ExecProcess::wait`].
    async fn exec(&self, id: &DevboxId, spec: &ExecSpec) -> Result<ExecProcess, RuntimeError>;

    /// Changes the cgroup limits of a running devbox in place. Errors: the
    /// devbox is not running, or the kernel refused (say, a memory limit
    /// below current usage).
    async fn update(&self, id: &DevboxId, resources: &Resources) -> Result<(), RuntimeError>;

    /// The devbox's console log: the output of its init and startup command.
    /// It may not exist before the first start.
    fn log_path(&self, id: &DevboxId) -> PathBuf;

    /// The devboxes that have a container (running or not), for the
    /// reconciler.
    async fn list(&self) -> Result<Vec<DevboxId>, RuntimeError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustix_numbers_match_the_model() {
        for s in Signal::ALL {
            assert_eq!(to_rustix(s).as_raw(), s.number(), "{s}");
        }
    }
}
