//! What every request handler shares.

use std::path::PathBuf;
use std::sync::Arc;

use devbox_image::ImageStore;
use devbox_model::ResourceLimits;
use devbox_runtime::{LocalRuntime, Subnet};
use devbox_store::Store;
use tokio::sync::Mutex;

use crate::locks::DevboxLocks;

/// Shared state of the server; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub images: ImageStore,
    pub runtime: Arc<LocalRuntime>,
    pub locks: DevboxLocks,
    /// Serializes creates, so two devboxes never pick the same address.
    pub create_lock: Arc<Mutex<()>>,
    pub limits: ResourceLimits,
    pub subnet: Subnet,
    /// Scratch space for uploads, inside the data directory.
    pub tmp_dir: PathBuf,
}
