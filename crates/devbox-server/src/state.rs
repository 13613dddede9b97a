//! What every request handler and the reconciler share.

use std::path::PathBuf;
use std::sync::Arc;

use devbox_image::ImageStore;
use devbox_model::ResourceLimits;
use devbox_runtime::Runtime;
use devbox_store::Store;

use crate::locks::DevboxLocks;

/// Shared state of the server; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub images: ImageStore,
    /// Whatever runs devboxes; the server knows it only through the trait.
    pub runtime: Arc<dyn Runtime>,
    pub locks: DevboxLocks,
    pub limits: ResourceLimits,
    /// Scratch space for uploads, inside the data directory.
    pub tmp_dir: PathBuf,
    pub commits: crate::CommitPolicy,
    /// What the registry under `/v2/` keeps for the server's life.
    pub registry: crate::registry::Registry,
    /// What every devbox's agent credential is derived from.
    pub agent_secret: crate::ssh::AgentSecret,
    /// The SSH gateway, once it listens; the HTTPS tunnel serves its
    /// streams.
    pub gateway: Arc<std::sync::OnceLock<crate::ssh::Gateway>>,
    /// State changes and operations, for `/api/v1/events`.
    pub events: crate::events::EventBus,
    /// Signs links to ports and web sessions.
    pub secret: crate::secret::ServerSecret,
    /// The ingress's settings and the devboxes it woke.
    pub ingress: Arc<crate::ingress::Ingress>,
    /// Sessions and requests of each devbox, for `last_activity` and idle
    /// auto-stop.
    pub activity: crate::activity::Activity,
}

/// The single owner of every devbox until users exist: commits live in the
/// image repository `<owner>/<devbox>`.
pub const OWNER: &str = "admin";

/// The image repository of a devbox's commits.
pub fn repository(devbox: &devbox_model::DevboxName) -> String {
    format!("{OWNER}/{devbox}")
}
