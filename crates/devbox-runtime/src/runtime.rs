//! The seam between the control plane and whatever runs devboxes: the
//! [`Runtime`] trait, the specs it takes and the handles it gives back. The
//! local runc implementation is [`crate::LocalRuntime`]; a Kubernetes backend
//! implements the same trait, so nothing here names a path, a process or a
//! network namespace of the node.
//!
//! The vocabulary of the change-set methods follows containerd's snapshotter:
//! a devbox's *active* changes (its overlay upper directory) are read as a
//! layer and, once the control plane has stored that layer, *committed* into
//! the node's layer store, where they serve as a read-only parent of the
//! next start.

use std::fmt;
use std::io::Read;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use devbox_layer::{LayerDescriptor, LayerSource};
use devbox_model::api::CommandStatus;
use devbox_model::{DevboxId, DevboxName, Digest, EnvVar, Resources, Signal};
use futures::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::RuntimeError;

/// What a devbox runs with. The server computes it; the runtime applies it.
#[derive(Debug, Clone)]
pub struct StartSpec {
    pub id: DevboxId,
    /// The hostname inside the devbox.
    pub hostname: DevboxName,
    /// The image's layers and the devbox's committed layers, bottom first.
    /// A node that lacks one fetches it from the start's [`LayerSource`].
    pub layers: Vec<LayerDescriptor>,
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
    /// The control plane's credential for the devbox's agent: with one, the
    /// agent serves SSH on [`crate::AGENT_SSH_PORT`] of the devbox's
    /// loopback interface (reached with [`Runtime::connect`]) and accepts
    /// only this credential's client key; without one it serves no SSH.
    pub agent: Option<crate::AgentKeys>,
}

/// What a successful start reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The devbox's address on the node's devbox network, when it has one.
    /// It stays the same across stops and starts until the devbox is removed.
    pub ip: Option<Ipv4Addr>,
    /// The startup command shortly after the start, when the spec has one:
    /// a command that fails at once shows as exited or failed here.
    pub command: Option<CommandStatus>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// The container runs; `pid` is its init as the node sees it.
    Running { pid: u32 },
    /// The container exists but its init has ended; how, when known.
    Exited(Option<ExitInfo>),
    /// No container.
    Absent,
}

impl ContainerState {
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }
}

/// How a devbox's init ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// Shell style: the exit status, or 128 + n when signal n killed it.
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// The kernel killed it for lack of memory.
    pub oom_killed: bool,
    pub finished_at: DateTime<Utc>,
}

impl ExitInfo {
    /// For people: `exited with 137: out of memory`, `exited with 0`.
    pub fn describe(&self) -> String {
        let mut s = format!("exited with {}", self.code);
        if self.oom_killed {
            s.push_str(": out of memory");
        } else if let Some(name) = self.signal.and_then(Signal::from_number) {
            s.push_str(&format!(": killed by {name}"));
        } else if let Some(n) = self.signal {
            s.push_str(&format!(": killed by signal {n}"));
        }
        s
    }
}

/// A devbox's container as the runtime sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub state: ContainerState,
    /// Processes of the devbox the kernel killed for lack of memory in the
    /// current (or last) run; 0 when unknown.
    pub oom_kills: u64,
    /// The startup command of the current (or last) run, when it has one.
    pub command: Option<CommandStatus>,
    /// The node holds active changes of the devbox: changes of a run not
    /// yet committed into its layers (see [`Runtime::commit_changes`]).
    pub active_changes: bool,
    /// SSH activity the devbox's agent reported in its current (or last)
    /// run, when it did.
    pub activity: Option<crate::AgentActivity>,
}

impl ContainerStatus {
    /// No container at all.
    pub fn absent() -> Self {
        Self {
            state: ContainerState::Absent,
            oom_kills: 0,
            command: None,
            active_changes: false,
            activity: None,
        }
    }
}

/// What part of the console log to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep the stream open and send new output as it is written, until the
    /// devbox's container ends.
    pub follow: bool,
    /// Start with only the last N lines.
    pub tail: Option<usize>,
}

/// The console log as a stream of chunks.
pub type LogStream = BoxStream<'static, Result<Bytes, RuntimeError>>;

/// A readable half of an exec's streams.
pub type ExecReader = Box<dyn AsyncRead + Send + Unpin>;
/// A writable half of an exec's streams.
pub type ExecWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// A process running in a devbox. Dropping a session whose process has not
/// ended kills the process.
#[async_trait]
pub trait ExecSession: Send + fmt::Debug {
    /// The process's input (its standard input, or its terminal). `None`
    /// once taken.
    fn take_stdin(&mut self) -> Option<ExecWriter>;
    /// The process's standard output (or everything its terminal shows).
    fn take_stdout(&mut self) -> Option<ExecReader>;
    /// The process's standard error; never with a terminal.
    fn take_stderr(&mut self) -> Option<ExecReader>;
    /// A handle that signals and resizes the process while another task
    /// waits for it.
    fn control(&self) -> Arc<dyn ExecControl>;
    /// Waits for the process to end and returns its exit code: its status,
    /// or 128 + n when signal n killed it; 127 when the program does not
    /// exist, 126 when it cannot be run. Cancel-safe; after it returned, it
    /// returns the same code again.
    async fn wait(&mut self) -> Result<i32, RuntimeError>;
}

/// Signals and resizes an exec; usable from any task.
pub trait ExecControl: Send + Sync + fmt::Debug {
    /// Delivers `sig` to the process, never to another process that reused
    /// its PID. A process that has ended already is not an error.
    fn signal(&self, sig: Signal) -> Result<(), RuntimeError>;
    /// Sets the window size of the process's terminal (it sees SIGWINCH).
    /// Without a terminal it does nothing.
    fn resize(&self, rows: u16, cols: u16) -> Result<(), RuntimeError>;
}

/// A byte stream to a TCP port inside a devbox.
pub trait Connection: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug> Connection for T {}

/// Which changes [`Runtime::read_changes`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangesRequest {
    /// The name of this read, chosen by the caller (a commit ID): a later
    /// read may count its changes from it.
    pub mark: String,
    /// Count changes from an earlier read of this run whose layer the
    /// caller stored: only what is new, changed or gone since is read (gone
    /// entries as whiteouts). `None`, or a mark the node no longer knows:
    /// every change since the devbox's layers ([`Changes::since`] says which
    /// happened).
    pub since: Option<String>,
    /// The devbox's own ignore patterns (gitignore syntax), on top of the
    /// defaults and the devbox's `/etc/devbox/commit-ignore`.
    pub exclude: Vec<String>,
    /// Freeze the devbox's processes while its files are walked, so the
    /// layer is a point-in-time view (a live commit's `--consistent`).
    pub freeze: bool,
}

/// What a read of changes held, known once its tar was read to the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeStats {
    /// Paths added, modified or deleted.
    pub changes: u64,
    /// Bytes of file content in the layer.
    pub bytes: u64,
    /// Entries the ignore rules left out, and their bytes.
    pub ignored: u64,
    pub ignored_bytes: u64,
}

/// A devbox's active changes as an uncompressed OCI layer tar.
pub struct Changes {
    /// The layer tar; a blocking reader, to be read inside `spawn_blocking`.
    /// An error while the changes are walked surfaces as a read error, so a
    /// consumer never mistakes a truncated walk for a complete layer.
    pub tar: Box<dyn Read + Send>,
    /// The mark the layer counts from: the request's `since`, or `None`
    /// when it holds every change since the devbox's layers.
    pub since: Option<String>,
    /// The read's totals, sent once `tar` reached its end.
    pub stats: std::sync::mpsc::Receiver<ChangeStats>,
}

impl fmt::Debug for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Changes")
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

/// What [`Runtime::prune_layers`] removed (or would).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerPrune {
    pub dirs: u64,
    pub bytes: u64,
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
    /// Starts the devbox: makes the spec's layers available on the node
    /// (fetching from `layers` what it lacks), assembles the root filesystem
    /// (those layers below, the devbox's active changes on top, kept across
    /// stops), gives the devbox its address and network, and runs its
    /// container detached, so it outlives a restart of the control plane.
    ///
    /// Idempotent: a devbox that is running already is left alone and its
    /// current [`Started`] is returned. A stopped container left from an
    /// earlier run is cleaned up first. On failure everything this call set
    /// up (mounts, network, container) is undone; fetched layers and the
    /// active changes are kept, and so is the address.
    ///
    /// Errors: a layer that cannot be fetched or does not match its diffID,
    /// no free address, an unknown user, a mount, network or runc failure.
    async fn start(
        &self,
        spec: &StartSpec,
        layers: &dyn LayerSource,
    ) -> Result<Started, RuntimeError>;

    /// Stops the devbox: SIGTERM to its init, which asks every process to
    /// end; after `grace`, SIGKILL. Then removes the container, its network
    /// and its root filesystem mount. Keeps the active changes and the
    /// address.
    ///
    /// Idempotent: nothing running is `Ok`. Errors: the container survived
    /// SIGKILL, or the teardown failed (and can be retried).
    async fn stop(&self, id: &DevboxId, grace: Duration) -> Result<(), RuntimeError>;

    /// The state of the devbox's container, with what is known of how its
    /// current or last run went.
    async fn status(&self, id: &DevboxId) -> Result<ContainerStatus, RuntimeError>;

    /// Stops the devbox without grace and deletes everything it owned on
    /// this node: active changes, logs, its address. Idempotent.
    async fn remove(&self, id: &DevboxId) -> Result<(), RuntimeError>;

    /// Runs a process in the running devbox. Errors: the devbox is not
    /// running ([`RuntimeError::NotRunning`]), the command is empty, the
    /// user is unknown, or the process could not be started. The process's
    /// own exit code, however bad, is not an error: see
    /// [`ExecSession::wait`].
    async fn exec(
        &self,
        id: &DevboxId,
        spec: &ExecSpec,
    ) -> Result<Box<dyn ExecSession>, RuntimeError>;

    /// Changes the cgroup limits of a running devbox in place. Errors: the
    /// devbox is not running, a memory limit below its current usage
    /// ([`RuntimeError::MemoryBelowUsage`]), or the kernel refused.
    async fn update(&self, id: &DevboxId, resources: &Resources) -> Result<(), RuntimeError>;

    /// The devbox's console log: the output of its init and startup command
    /// (the newest part of it: the log is capped). Empty before the first
    /// start. A followed stream ends once the container has ended and its
    /// last output was sent.
    async fn logs(&self, id: &DevboxId, opts: LogOptions) -> Result<LogStream, RuntimeError>;

    /// Opens a TCP connection to `port` on the devbox's own loopback
    /// interface, from inside its network namespace: it reaches what
    /// listens there on `127.0.0.1` or any address, and nothing of the
    /// node's. Errors: the devbox is not running, or the connection was
    /// refused ([`RuntimeError::Connect`]).
    async fn connect(&self, id: &DevboxId, port: u16) -> Result<Box<dyn Connection>, RuntimeError>;

    /// Reads the devbox's active changes (everything it changed since its
    /// layers) as a layer, running or not. The devbox keeps running and
    /// changing meanwhile unless `req.freeze`; a file changed during the
    /// walk may be caught only by the next read. Reading changes nothing.
    ///
    /// Backends that cannot read changes on the control plane's behalf
    /// return [`RuntimeError::Unsupported`].
    async fn read_changes(
        &self,
        id: &DevboxId,
        req: &ChangesRequest,
    ) -> Result<Changes, RuntimeError>;

    /// Lists what a read of changes would hold now (the same walk and the
    /// same decisions), without reading any file's content: for `devbox
    /// diff`. `since` and `exclude` as in [`ChangesRequest`].
    async fn diff_changes(
        &self,
        id: &DevboxId,
        since: Option<&str>,
        exclude: &[String],
    ) -> Result<devbox_model::api::Diff, RuntimeError>;

    /// Commits the active changes of a stopped devbox into the node's layer
    /// store, without copying: `run_layers` are the diffIDs of the layers
    /// the caller stored from this run's reads, oldest first, which on top
    /// of the layers the run started with make what the devbox's files are
    /// now. The next start that lists exactly those layers on top begins
    /// with no active changes and mounts the committed directory instead of
    /// unpacking them. Paths `exclude` (and the defaults) leave out of the
    /// layers are removed from the active changes first, so the node shows
    /// what any other node would unpack.
    ///
    /// Errors: the devbox runs ([`RuntimeError::UpperInUse`]). Idempotent
    /// once it succeeded: with nothing active, it does nothing.
    async fn commit_changes(
        &self,
        id: &DevboxId,
        run_layers: &[Digest],
        exclude: &[String],
    ) -> Result<(), RuntimeError>;

    /// Removes the node's unpacked layers that none of `keep` (stacks of
    /// diffIDs, bottom first: the images devboxes start from next) needs
    /// and no running devbox mounts. With `dry_run`, removes nothing and
    /// reports what it would.
    async fn prune_layers(
        &self,
        keep: &[Vec<Digest>],
        dry_run: bool,
    ) -> Result<LayerPrune, RuntimeError>;

    /// The devboxes that have a container (running or not), for the
    /// reconciler.
    async fn list(&self) -> Result<Vec<DevboxId>, RuntimeError>;

    /// Devboxes whose container may have ended on its own, as the node
    /// notices; the reconciler reads their [`Runtime::status`] then. Best
    /// effort: the reconciler also checks every devbox periodically.
    fn exits(&self) -> BoxStream<'static, DevboxId>;

    /// The TCP ports something listens on inside the running devbox (on any
    /// of its addresses), ascending. Errors: the devbox is not running.
    async fn listening_ports(&self, id: &DevboxId) -> Result<Vec<u16>, RuntimeError> {
        let _ = id;
        Err(RuntimeError::Unsupported {
            what: "list the ports a devbox listens on",
        })
    }

    /// The CPU time the running devbox's processes used in its current run;
    /// `None` when it does not run or the node cannot tell.
    async fn cpu_usage(&self, id: &DevboxId) -> Result<Option<Duration>, RuntimeError> {
        let _ = id;
        Ok(None)
    }
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
