//! The typed error of every operation. It says what went wrong in the
//! user's terms (the devbox's name, the image reference, what to do next);
//! `api::error` alone decides which HTTP status each one becomes.

use devbox_image::ImageError;
use devbox_model::{DevboxName, ResourceError, State, TransitionError};
use devbox_runtime::RuntimeError;
use devbox_store::StoreError;

/// Why an operation did not happen (or did not finish).
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("devbox {name} not found")]
    NotFound { name: DevboxName },

    #[error("devbox {name} already exists")]
    AlreadyExists { name: DevboxName },

    #[error(
        "image {reference} not found: import it with `devbox image import` or pull it with `devbox image pull`"
    )]
    ImageNotFound { reference: String },

    #[error("devbox {name} is busy with another operation; try again when it finishes")]
    Busy { name: DevboxName },

    #[error("devbox {name}: {source}")]
    Transition {
        name: DevboxName,
        #[source]
        source: TransitionError,
    },

    #[error("devbox {name} is {state}, not running; start it with `devbox start {name}`")]
    NotRunning { name: DevboxName, state: State },

    #[error("{0}")]
    Resources(#[from] ResourceError),

    #[error("{what} must not be empty")]
    Empty { what: &'static str },

    #[error("working directory {workdir:?} must be an absolute path")]
    Workdir { workdir: String },

    #[error(
        "devbox {name} is {state}: there is nothing to commit, since its stop committed its changes; start it to change it"
    )]
    NothingToCommit { name: DevboxName, state: State },

    #[error("devbox {name} has no commit {commit}; see `devbox history {name}`")]
    UnknownCommit { name: DevboxName, commit: String },

    #[error(
        "port {port} of devbox {name} is the devbox agent's own and is never reachable through the ingress"
    )]
    ReservedPort { name: DevboxName, port: u16 },

    #[error(
        "commit {commit} of devbox {name} is no longer stored: retention reclaimed its image; pin commits to keep them, and see `devbox history {name}` for the ones kept"
    )]
    CommitReclaimed { name: DevboxName, commit: String },

    #[error("devbox {name} not found: it cannot be forked")]
    ForkSourceNotFound { name: DevboxName },

    #[error("invalid commit-exclude pattern: {source}")]
    InvalidExclude {
        #[source]
        source: devbox_layer::IgnoreError,
    },

    #[error("invalid fork source {from:?}: {reason}")]
    InvalidFrom { from: String, reason: &'static str },

    #[error(
        "devbox {name} has changes its last stop could not commit: start and stop it again to commit them first"
    )]
    Uncommitted { name: DevboxName },

    #[error("devbox {name} has no variable {key} to unset")]
    UnknownVariable { name: DevboxName, key: String },

    #[error("cannot {op} devbox {name}: {source}")]
    Failed {
        op: &'static str,
        name: DevboxName,
        #[source]
        source: Box<StepError>,
    },

    #[error("devbox {name}: {source}")]
    Runtime {
        name: DevboxName,
        #[source]
        source: Box<RuntimeError>,
    },

    #[error("cannot collect the node's unused layers: {source}")]
    PruneLayers {
        #[source]
        source: Box<RuntimeError>,
    },

    #[error(transparent)]
    Image(Box<ImageError>),

    #[error(transparent)]
    Store(Box<StoreError>),

    #[error("the operation on devbox {name} ended abnormally: {message}")]
    Aborted { name: DevboxName, message: String },

    #[error("invalid SSH public key: {reason}")]
    InvalidKey { reason: String },

    #[error("the SSH key {fingerprint} is registered already; `devbox key ls` lists yours")]
    KeyExists { fingerprint: String },

    #[error("no SSH key {id} among yours; `devbox key ls` lists them")]
    KeyNotFound { id: String },

    #[error("invalid release version {version:?}: {reason}")]
    InvalidVersion {
        version: String,
        reason: &'static str,
    },

    #[error("release notes must be at most {max} bytes")]
    NotesTooLong { max: usize },

    #[error(
        "devbox {name} has a release {version} already: pick another version, or remove it first with `devbox release rm {name} {version}`"
    )]
    ReleaseExists { name: DevboxName, version: String },

    #[error(
        "image {reference} exists already (pushed, or kept from a deleted devbox of the same name): pick another version, or remove it first with `devbox image rm {reference}`"
    )]
    VersionTaken { reference: String },

    #[error(
        "devbox {name} has no commit to release: commit it with `devbox commit {name}`, or stop it (its stop commits), first"
    )]
    NothingToRelease { name: DevboxName },

    #[error("devbox {name} has no release {version}; `devbox releases {name}` lists them")]
    UnknownRelease { name: DevboxName, version: String },
}

impl OpError {
    /// A runtime error met while operating on devbox `name`. A devbox that
    /// turned out not to run is said in the user's terms.
    pub fn runtime(name: &DevboxName, state: State) -> impl FnOnce(RuntimeError) -> OpError + '_ {
        move |source| match source {
            RuntimeError::NotRunning { .. } => OpError::NotRunning {
                name: name.clone(),
                state,
            },
            source => OpError::Runtime {
                name: name.clone(),
                source: Box::new(source),
            },
        }
    }
}

impl From<ImageError> for OpError {
    fn from(e: ImageError) -> Self {
        OpError::Image(Box::new(e))
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Store(Box::new(e))
    }
}

/// What failed inside a start or stop.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The commit a stop makes, or the head a start runs from.
    #[error(transparent)]
    Commit(Box<OpError>),
}

/// Result of an operation.
pub type OpResult<T> = Result<T, OpError>;
