//! The errors of the runtime. Each names the devbox, path, layer or command
//! involved, so a message in the server's log is enough to act on.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use devbox_layer::LayerSourceError;
use devbox_layer::digest::Digest;
use devbox_model::DevboxId;

/// Everything that can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runc not found: install it with `apt-get install runc` (looked for {path:?})")]
    RuncNotFound { path: PathBuf },
    #[error("{tool} not found: install it with `apt-get install {package}`")]
    ToolNotFound {
        tool: &'static str,
        package: &'static str,
    },
    #[error("overlayfs is not available in this kernel: load it with `modprobe overlay`")]
    OverlayUnavailable,
    #[error("the devbox runtime must run as root")]
    NotRoot,
    #[error("invalid subnet {input:?}: {reason}")]
    InvalidSubnet { input: String, reason: &'static str },
    #[error("invalid bridge name {name:?}: {reason}")]
    InvalidBridge { name: String, reason: &'static str },
    #[error(
        "bridge {bridge} is used by the devbox runtime in {owner} (pid {pid}); pass --bridge and --subnet for a second server"
    )]
    BridgeInUse {
        bridge: String,
        /// The other runtime's root directory, or a description when its
        /// lock file could not be read.
        owner: String,
        pid: String,
    },
    #[error(
        "bridge {bridge} has {found}, not {wanted}: pass the matching --subnet or another --bridge"
    )]
    BridgeAddress {
        bridge: String,
        found: String,
        wanted: String,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed output that could not be understood: {reason}")]
    CommandOutput { command: String, reason: String },
    #[error("fetch layer {diff_id}: {source}")]
    LayerFetch {
        diff_id: Digest,
        #[source]
        source: LayerSourceError,
    },
    #[error("layer {expected}: the uncompressed content has digest {actual}")]
    DiffIdMismatch { expected: Digest, actual: Digest },
    #[error("unpack layer {diff_id}: {source}")]
    Unpack {
        diff_id: Digest,
        #[source]
        source: devbox_layer::unpack::UnpackError,
    },
    #[error("decompress layer {diff_id}: {source}")]
    Decompress {
        diff_id: Digest,
        #[source]
        source: devbox_layer::compression::CompressionError,
    },
    #[error("read layer {diff_id}: {source}")]
    LayerRead {
        diff_id: Digest,
        #[source]
        source: io::Error,
    },
    #[error(
        "no free address left in the devbox subnet {subnet}: remove devboxes or pass a larger --subnet"
    )]
    NoFreeAddress { subnet: String },
    #[error("devbox {id}: working directory {workdir:?} is not an absolute path")]
    InvalidWorkdir { id: DevboxId, workdir: String },
    #[error("devbox {id}: an exec needs a command")]
    EmptyCommand { id: DevboxId },
    #[error("devbox {id}: user {user:?}: {reason}")]
    User {
        id: DevboxId,
        user: String,
        reason: String,
    },
    #[error("devbox {id}: prepare the root filesystem: cannot resolve {path:?}: {reason}")]
    Stub {
        id: DevboxId,
        path: String,
        reason: &'static str,
    },
    #[error("devbox {id}: mount overlay at {path}: {message}")]
    Mount {
        id: DevboxId,
        path: PathBuf,
        message: String,
    },
    #[error("devbox {id}: unmount {path}: {source}")]
    Unmount {
        id: DevboxId,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("devbox {id}: build the runc bundle: {source}")]
    Bundle {
        id: DevboxId,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("devbox {id}: runc could not start the container: {message}")]
    RuncStart { id: DevboxId, message: String },
    #[error("devbox {id} is not running")]
    NotRunning { id: DevboxId },
    #[error("devbox {id}: connect to port {port} inside the devbox: {source}")]
    Connect {
        id: DevboxId,
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error(
        "devbox {id}: a memory limit of {limit} is below the {usage} it uses now; stop it first or choose a larger limit"
    )]
    MemoryBelowUsage {
        id: DevboxId,
        limit: devbox_model::ByteSize,
        usage: devbox_model::ByteSize,
    },
    #[error("this runtime cannot {what}")]
    Unsupported { what: &'static str },
    #[error("invalid change mark {mark:?}: use letters, digits, '-' and '_' (at most 64)")]
    InvalidMark { mark: String },
    #[error("devbox {id}: read its changes: {message}")]
    Changes { id: DevboxId, message: String },
    #[error("devbox {id}: its shim (pid {pid}) is still running after SIGKILL")]
    ShimStuck { id: DevboxId, pid: String },
    #[error("devbox {id} still runs {waited:?} after SIGKILL")]
    StopTimeout { id: DevboxId, waited: Duration },
    #[error("devbox {id}: the upper directory cannot become a layer while the devbox runs")]
    UpperInUse { id: DevboxId },
    #[error("exec in devbox {id}: allocate a terminal: {source}")]
    Pty {
        id: DevboxId,
        #[source]
        source: io::Error,
    },
    #[error("exec in devbox {id}: {op}: {source}")]
    Exec {
        id: DevboxId,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl RuntimeError {
    /// An IO error on `path` while doing `op` ("create", "read", ...).
    pub(crate) fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| RuntimeError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}
