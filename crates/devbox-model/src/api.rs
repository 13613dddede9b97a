//! Request and response bodies of the REST API under `/api/v1`, and the
//! messages of its streaming endpoints. The server and the CLI both use these
//! types, so the two cannot drift apart.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{DevboxId, DevboxName, Digest, EnvVar, ImageRef, Resources, State};

/// Path prefix of every API route.
pub const API_PREFIX: &str = "/api/v1";

/// Every error response: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A machine-readable code and a message for people.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// The error codes the API returns; each maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed or a value is out of range.
    InvalidArgument,
    /// 401: no token, or a wrong one.
    Unauthorized,
    /// 404: the devbox, image or route does not exist.
    NotFound,
    /// 409: a devbox or image of that name exists already.
    AlreadyExists,
    /// 409: the operation conflicts with the current state.
    Conflict,
    /// 405: the route does not take this method.
    MethodNotAllowed,
    /// 413: the body is larger than the route accepts.
    PayloadTooLarge,
    /// 415: the body is not of a type the route accepts.
    UnsupportedMediaType,
    /// 502: a remote registry failed or refused.
    Upstream,
    /// 507: the disk is full.
    InsufficientStorage,
    /// 500: a failure inside the server.
    Internal,
    /// 403: the credentials are valid but do not allow this (an expired or
    /// revoked link, a wrong token for a private port).
    Forbidden,
    /// 503: not ready yet (a devbox woken by a request is starting).
    Unavailable,
    /// 504: a devbox woken by a request did not answer in time.
    GatewayTimeout,
}

impl ErrorCode {
    /// The HTTP status code of this error.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists | ErrorCode::Conflict => 409,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Upstream => 502,
            ErrorCode::InsufficientStorage => 507,
            ErrorCode::Internal => 500,
            ErrorCode::Forbidden => 403,
            ErrorCode::Unavailable => 503,
            ErrorCode::GatewayTimeout => 504,
        }
    }
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// `POST /api/v1/devboxes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDevbox {
    #[schema(value_type = String, example = "web")]
    pub name: DevboxName,
    /// The image to start from; exactly one of `image` and `from`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "base:1")]
    pub image: Option<ImageRef>,
    /// Fork: start from another devbox's commit, `dev` (its head) or
    /// `dev@<commit id>`; exactly one of `image` and `from`.
    #[serde(default)]
    pub from: Option<String>,
    /// Commit the running devbox this often (seconds) when something
    /// changed; none by default.
    #[serde(default)]
    pub auto_commit: Option<u64>,
    /// Paths its commits leave out (gitignore syntax), on top of the
    /// defaults (`/tmp`, `/var/tmp`, `/run`) and `/etc/devbox/commit-ignore`
    /// inside the devbox.
    #[serde(default)]
    pub commit_exclude: Vec<String>,
    /// CPU cores; default 1.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory limit in bytes; default 1 GiB.
    #[serde(default)]
    pub memory: Option<u64>,
    /// Process limit; default 4096.
    #[serde(default)]
    pub pids: Option<u32>,
    /// Environment for the startup command and every exec.
    #[serde(default)]
    #[schema(value_type = Vec<String>, example = json!(["FOO=bar"]))]
    pub env: Vec<EnvVar>,
    /// A command the devbox runs at every start, its output going to the log.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Stop the devbox (committing, as every stop does) once it has been
    /// idle this many seconds: no sessions, no ingress requests, and CPU
    /// use below the server's threshold. None by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_stop: Option<u64>,
}

/// A devbox as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Devbox {
    #[schema(value_type = String)]
    pub id: DevboxId,
    #[schema(value_type = String)]
    pub name: DevboxName,
    /// The image reference it was created from.
    pub image: String,
    /// The manifest digest that reference resolved to at creation.
    #[schema(value_type = String)]
    pub image_digest: Digest,
    pub state: State,
    /// Why the last operation failed, while the state is `error`.
    pub error: Option<String>,
    /// Why the devbox is in its state when nobody asked for it, e.g.
    /// `exited with 137: out of memory` after its container died.
    #[serde(default)]
    pub reason: Option<String>,
    pub resources: Resources,
    #[schema(value_type = Vec<String>, example = json!(["FOO=bar"]))]
    pub env: Vec<EnvVar>,
    pub command: Option<Vec<String>>,
    /// Address on the devbox network; empty until the runtime gave it one
    /// (at its first start).
    pub ip: String,
    /// Processes of the devbox the kernel killed for lack of memory, in its
    /// current (or last) run.
    #[serde(default)]
    pub oom_kills: u64,
    /// The startup command of the current (or last) run, when it has one.
    #[serde(default)]
    pub command_status: Option<CommandStatus>,
    /// Settings changed while the devbox runs that apply at its next start:
    /// `env`, `command`.
    #[serde(default)]
    pub pending: Vec<String>,
    /// The commit the next start runs from; none before the first commit.
    #[serde(default)]
    pub head: Option<String>,
    /// The auto-commit interval in seconds, when one is set.
    #[serde(default)]
    pub auto_commit: Option<u64>,
    /// The devbox's own commit ignore patterns.
    #[serde(default)]
    pub commit_exclude: Vec<String>,
    /// The idle time in seconds after which it stops, when one is set.
    #[serde(default)]
    pub auto_stop: Option<u64>,
    /// Its last SSH session or forwarded connection, exec, terminal or
    /// ingress request (or the end of its last session), as far as the
    /// server knows; none when none was seen.
    #[serde(default)]
    pub last_activity: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How the startup command of a devbox is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CommandStatus {
    /// It runs.
    Running,
    /// It ended with this exit code (128 + n when signal n killed it).
    Exited { code: i32 },
    /// It could not be started at all (no such program, not executable).
    Failed { message: String },
}

impl std::fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandStatus::Running => f.write_str("running"),
            CommandStatus::Exited { code } => write!(f, "exited with {code}"),
            CommandStatus::Failed { message } => write!(f, "failed to start: {message}"),
        }
    }
}

/// `PATCH /api/v1/devboxes/{name}`: change a devbox's settings. Absent
/// fields stay as they are. Resource limits apply at once to a running
/// devbox (a memory limit below its current usage is refused); `env` and
/// `command` apply at its next start.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDevbox {
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory limit in bytes.
    #[serde(default)]
    pub memory: Option<u64>,
    #[serde(default)]
    pub pids: Option<u32>,
    /// Variables to set (same key: replaced).
    #[serde(default)]
    #[schema(value_type = Vec<String>, example = json!(["FOO=bar"]))]
    pub env: Vec<EnvVar>,
    /// Keys of variables to remove.
    #[serde(default)]
    pub unset_env: Vec<String>,
    /// The new startup command; an empty list removes it.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// The new auto-commit interval in seconds; 0 turns it off.
    #[serde(default)]
    pub auto_commit: Option<u64>,
    /// The new commit ignore patterns (replacing the old ones).
    #[serde(default)]
    pub commit_exclude: Option<Vec<String>>,
    /// The new idle time in seconds after which it stops; 0 turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_stop: Option<u64>,
}

/// Query of `POST /api/v1/devboxes/{name}/stop` and `.../restart`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
pub struct StopQuery {
    /// Seconds the devbox's processes get between SIGTERM and SIGKILL;
    /// default 10.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// `POST /api/v1/devboxes/{name}/exec`: run a command and collect its output.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<String>, example = json!(["FOO=bar"]))]
    pub env: Vec<EnvVar>,
    /// Working directory; default the image's, else `/`.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Bytes written to the command's standard input, then closed.
    #[serde(default)]
    pub stdin: Option<String>,
}

/// The result of a collected exec. Output that is not UTF-8 is replaced
/// lossily; use the streaming exec for binary output.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecResponse {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Streaming exec over a WebSocket at `GET /api/v1/devboxes/{name}/exec/ws`.
///
/// The client's first message is a text frame with [`ExecClientMsg::Start`].
/// Binary frames carry data, their first byte naming the stream (see
/// [`stream`]); text frames carry JSON control messages.
pub mod stream {
    /// Client to server: bytes for the command's standard input.
    pub const STDIN: u8 = 0;
    /// Server to client: the command's standard output (or the pty).
    pub const STDOUT: u8 = 1;
    /// Server to client: the command's standard error (never with a pty).
    pub const STDERR: u8 = 2;
}

/// Control messages from the client.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecClientMsg {
    Start {
        cmd: Vec<String>,
        #[serde(default)]
        #[schema(value_type = Vec<String>)]
        env: Vec<EnvVar>,
        #[serde(default)]
        workdir: Option<String>,
        /// Allocate a pseudo-terminal.
        #[serde(default)]
        tty: bool,
        #[serde(default)]
        rows: Option<u16>,
        #[serde(default)]
        cols: Option<u16>,
    },
    /// The terminal was resized.
    Resize { rows: u16, cols: u16 },
    /// Deliver a signal (`INT`, `TERM`, `HUP`, `KILL`, `QUIT`, `USR1`, `USR2`, `WINCH`).
    Signal { signal: String },
    /// Close the command's standard input.
    Eof,
}

/// Control messages from the server.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecServerMsg {
    /// The command exited (128 + n when killed by signal n); the server closes next.
    Exit { code: i32 },
    /// The command could not be run.
    Error { code: ErrorCode, message: String },
}

/// An image in the local store.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Image {
    /// `repository:tag`, or `repository@digest` for an image held without a
    /// tag (pulled by digest).
    pub reference: String,
    pub repository: String,
    /// Empty for an image held without a tag.
    pub tag: String,
    /// Manifest digest.
    #[schema(value_type = String)]
    pub digest: Digest,
    /// Compressed size of all layers, in bytes.
    pub size: u64,
    pub layers: usize,
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/images/pull`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    #[schema(value_type = String, example = "localhost:5000/busybox:latest")]
    pub reference: ImageRef,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Use plain HTTP (and accept any certificate) for this registry.
    #[serde(default)]
    pub insecure: bool,
}

/// One line of the newline-delimited JSON stream that `POST
/// /api/v1/images/pull` and `POST /api/v1/images/import` answer with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProgressEvent {
    /// The manifest was resolved; these layers will be fetched.
    Resolved {
        digest: String,
        layers: Vec<LayerInfo>,
    },
    /// Bytes of one layer done so far.
    Progress {
        digest: String,
        current: u64,
        total: u64,
    },
    /// A layer is stored (or was already).
    LayerDone { digest: String, cached: bool },
    /// The image is stored under its reference.
    Done { image: Image },
    /// The operation failed; nothing was tagged.
    Error { error: ErrorDetail },
}

/// A layer of a manifest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LayerInfo {
    pub digest: String,
    pub size: u64,
}

/// Query of `GET /api/v1/devboxes/{name}/logs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
pub struct LogsQuery {
    /// Keep the response open and send new output as it is written.
    #[serde(default)]
    pub follow: bool,
    /// Only the last N lines.
    #[serde(default)]
    pub tail: Option<usize>,
}

/// Query of `POST /api/v1/images/import`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
pub struct ImportQuery {
    /// Reference to store the image under.
    pub name: String,
    /// What the upload was made from on the client (a file or directory
    /// name), so that errors name it instead of the server's spool file.
    #[serde(default)]
    pub source: Option<String>,
}

/// `POST /api/v1/devboxes/{name}/commits`: commit a running devbox's
/// changes now, while it keeps running.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    #[serde(default)]
    pub message: Option<String>,
    /// Freeze the devbox's processes while its files are read, for a
    /// point-in-time commit.
    #[serde(default)]
    pub consistent: bool,
    /// Keep this commit whatever the retention.
    #[serde(default)]
    pub pin: bool,
}

/// How a commit came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CommitTrigger {
    Manual,
    Auto,
    Stop,
    Release,
}

/// A commit as the API shows it (`devbox history`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Commit {
    /// 16 hex digits; the image's tag in the devbox's repository.
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub trigger: CommitTrigger,
    pub message: String,
    /// The commit's image (manifest digest); `null` once retention
    /// reclaimed it.
    #[schema(value_type = Option<String>)]
    pub digest: Option<Digest>,
    /// The image as a reference, `admin/<devbox>:<id>`.
    pub reference: String,
    /// Size of the commit's own layer blob in bytes.
    pub layer_size: u64,
    /// Bytes the ignore rules left out.
    pub excluded_bytes: u64,
    pub parent: Option<String>,
    pub pinned: bool,
    /// The commit whose image now holds this one's layer merged with
    /// others.
    pub merged_into: Option<String>,
    /// This is the commit the next start runs from.
    pub head: bool,
}

/// `POST /api/v1/devboxes/{name}/rollback`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The commit the next start runs from.
    pub commit: String,
}

/// What changed about a path since the last commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PathChange {
    Added,
    Modified,
    Deleted,
}

/// One path of `devbox diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiffEntry {
    /// Absolute inside the devbox.
    pub path: String,
    pub change: PathChange,
    /// `file`, `dir`, `symlink` or `fifo`; `null` for a deleted path of the
    /// image, whose type only the image knows.
    pub kind: Option<String>,
    /// A regular file's size in bytes; 0 otherwise.
    pub size: u64,
}

/// A path the next commit leaves out, with everything below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IgnoredEntry {
    pub path: String,
    pub dir: bool,
    pub entries: u64,
    pub bytes: u64,
}

/// `GET /api/v1/devboxes/{name}/diff`: what the next commit would hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Diff {
    /// The commit the changes are counted from; `null`: from the image the
    /// devbox's current run started on.
    pub since: Option<String>,
    pub entries: Vec<DiffEntry>,
    pub ignored: Vec<IgnoredEntry>,
    pub added: u64,
    pub modified: u64,
    pub deleted: u64,
    /// Bytes of added and modified files.
    pub bytes: u64,
    pub ignored_bytes: u64,
}

/// `POST /api/v1/gc`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Say what would be reclaimed, reclaim nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a garbage collection reclaimed (or would).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct GcReport {
    pub dry_run: bool,
    /// Commits whose images retention removed (the commits stay as history).
    pub commits_expired: u64,
    pub manifests_removed: u64,
    pub blobs_removed: u64,
    pub blob_bytes: u64,
    /// Unpacked layer directories of the node.
    pub layer_dirs_removed: u64,
    pub layer_bytes: u64,
}

/// Body of `POST /api/v1/images/push`: copy a stored image to another
/// registry. The server pushes; the answer is a stream of
/// [`ProgressEvent`]s, `Done` carrying the image under its destination.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PushRequest {
    /// The stored image, as `devbox image ls` names it.
    #[schema(value_type = String, example = "base:1")]
    pub reference: ImageRef,
    /// Where it goes, e.g. `registry.example.com/team/base:1`.
    #[schema(value_type = String, example = "localhost:5000/team/base:1")]
    pub destination: ImageRef,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Use plain HTTP (and accept any certificate) for the destination.
    #[serde(default)]
    pub insecure: bool,
}

/// A registered SSH public key (`GET /api/v1/keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SshKey {
    /// Short ID for `devbox key rm`.
    pub id: String,
    pub name: String,
    /// OpenSSH algorithm name, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The key in OpenSSH's one-line format.
    pub public_key: String,
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /api/v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSshKey {
    /// One line of a `.pub` file: ed25519, ecdsa, or rsa of at least 2048 bits.
    pub public_key: String,
    /// A name for the key; its comment when absent.
    #[serde(default)]
    pub name: Option<String>,
}

/// The SSH gateway (`GET /api/v1/ssh`): what `devbox ssh-config` writes
/// into a known hosts file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SshInfo {
    /// The gateway's host key in OpenSSH's one-line format.
    pub host_key: String,
    /// The port the gateway listens on.
    pub port: u16,
}

/// An IDE that opens devboxes over SSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ide {
    /// VS Code with Remote-SSH.
    Vscode,
    /// JetBrains Gateway.
    Jetbrains,
}

/// Query of `GET /api/v1/devboxes/{name}/open`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
pub struct IdeQuery {
    pub ide: Ide,
}

/// A link that opens a devbox in an IDE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdeLink {
    pub ide: Ide,
    /// `vscode://vscode-remote/ssh-remote+<host>/<workdir>` or
    /// `jetbrains-gateway://connect#type=ssh&...`.
    pub url: String,
    /// The SSH host the IDE connects to: the `Host` entry of `devbox
    /// ssh-config` for VS Code, the gateway for JetBrains Gateway.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The directory the IDE opens.
    pub workdir: String,
}

// Events: `GET /api/v1/events`.

/// One event of the server's stream (`GET /api/v1/events`, server-sent
/// events). Its SSE `id` is `<server boot>-<seq>`, so a client that
/// reconnects with `Last-Event-ID` resumes after it, or is told with a
/// [`EventKind::Gap`] that the events in between are gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Increases by one with every event of this server's run.
    pub seq: u64,
    pub time: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A devbox changed state (`from` is absent for a devbox just created).
    State {
        #[schema(value_type = String)]
        devbox: DevboxName,
        from: Option<State>,
        to: State,
        /// Why the operation failed, with a change to `error`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Why the devbox changed state on its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A devbox is gone.
    Deleted {
        #[schema(value_type = String)]
        devbox: DevboxName,
    },
    /// An operation began: `start`, `stop`, `commit`, `gc`, ...
    OperationStarted {
        op: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        devbox: Option<DevboxName>,
        /// Who asked: `token:<name>`, or the server's own tasks.
        caller: String,
    },
    /// An operation ended well.
    OperationFinished {
        op: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        devbox: Option<DevboxName>,
        caller: String,
    },
    /// An operation failed.
    OperationFailed {
        op: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        devbox: Option<DevboxName>,
        caller: String,
        message: String,
    },
    /// Something failed outside any request, e.g. the reconciler's retry.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        devbox: Option<DevboxName>,
        message: String,
    },
    /// The stream cannot resume where the client asked (the server
    /// restarted, or the event is older than those it keeps, or the client
    /// read too slowly): events were missed, and a client should reload
    /// what it shows. It has no SSE `id`.
    Gap { message: String },
}

// Ports and the ingress: `/api/v1/devboxes/{name}/ports`.

/// Who may reach a port of a devbox through the server's ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortAccess {
    /// The owner's token as a bearer, the web page's session, or a signed
    /// link (`devbox port share`). The default.
    #[default]
    Private,
    /// Anyone who can reach the server.
    Public,
}

impl std::fmt::Display for PortAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PortAccess::Private => "private",
            PortAccess::Public => "public",
        })
    }
}

/// A port of a devbox: one it listens on, or one with settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Port {
    pub port: u16,
    pub access: PortAccess,
    /// Something listens on it inside the devbox now (always false while it
    /// is stopped).
    pub listening: bool,
    /// The port by host name: `http://8080-dev.localhost:7070/`.
    pub url: String,
    /// The same by path, where no wildcard DNS exists:
    /// `http://127.0.0.1:7070/proxy/dev/8080/`.
    pub path_url: String,
}

/// `PUT /api/v1/devboxes/{name}/ports/{port}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPort {
    pub access: PortAccess,
}

/// `POST /api/v1/devboxes/{name}/ports/{port}/share`: a signed link that
/// reaches a private port without a token until it expires.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// Seconds the link works; default 3600, at most 30 days.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// A signed link. `DELETE .../share` revokes every link of the port.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShareLink {
    pub url: String,
    pub path_url: String,
    pub expires_at: DateTime<Utc>,
}

// Web page sessions: `/api/v1/session`.

/// `POST /api/v1/session`: sign in on the web page with an API token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub token: String,
}

/// A web page session (its cookie is `HttpOnly`, so the page never sees it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    /// Send it as `X-CSRF-Token` with every request that changes something.
    pub csrf: String,
    /// Who the session acts as: `token:<name>`.
    pub caller: String,
    pub expires_at: DateTime<Utc>,
}

// Releases: `/api/v1/devboxes/{name}/releases`.

/// `POST /api/v1/devboxes/{name}/releases`: publish a commit of the devbox
/// as a version, the tag `admin/<devbox>:<version>` of its image.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRelease {
    /// The image tag: 1 to 128 letters, digits, `_`, `.` and `-`, not
    /// starting with `.` or `-`, and not 16 hex digits (a commit ID's form).
    #[schema(example = "v1.0")]
    pub version: String,
    /// What the release is, for people.
    #[serde(default)]
    pub notes: Option<String>,
    /// The commit to release. By default the devbox's head; a running
    /// devbox's changes since it are committed first (trigger `release`).
    #[serde(default)]
    pub commit: Option<String>,
}

/// A release as the API shows it (`devbox releases`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Release {
    pub version: String,
    /// The commit it was made from.
    pub commit: String,
    /// The image's manifest digest, what a pull of `reference` gets.
    #[schema(value_type = String)]
    pub digest: Digest,
    /// The image as a reference, `admin/<devbox>:<version>`.
    pub reference: String,
    pub notes: String,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_rejects_bad_names_with_the_validation_message() {
        let e = serde_json::from_str::<CreateDevbox>(r#"{"name":"Web","image":"base:1"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid devbox name"), "{e}");
        let e = serde_json::from_str::<CreateDevbox>(r#"{"name":"web","image":"base:1","cpu":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn exec_messages_are_tagged() {
        let m: ExecClientMsg =
            serde_json::from_str(r#"{"type":"resize","rows":24,"cols":80}"#).unwrap();
        assert!(matches!(m, ExecClientMsg::Resize { rows: 24, cols: 80 }));
        let s = serde_json::to_string(&ExecServerMsg::Exit { code: 3 }).unwrap();
        assert_eq!(s, r#"{"type":"exit","code":3}"#);
    }

    #[test]
    fn error_codes_map_to_statuses() {
        assert_eq!(ErrorCode::Conflict.http_status(), 409);
        assert_eq!(ErrorCode::Unauthorized.http_status(), 401);
        let s = serde_json::to_string(&ErrorCode::InvalidArgument).unwrap();
        assert_eq!(s, "\"invalid_argument\"");
    }
}
