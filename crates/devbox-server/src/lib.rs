//! The Devbox control plane: the REST API under `/api/v1`, the lifecycle of
//! devboxes, and the reconciler that makes the database and the runtime agree
//! after a restart.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How `devbox server` runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the database, blobs, layers and devboxes live.
    pub data_dir: PathBuf,
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Subnet of the devbox network, e.g. `10.77.0.0/16`; default when `None`.
    pub subnet: Option<String>,
    /// The `runc` binary; found on `PATH` when `None`.
    pub runc: Option<PathBuf>,
}

/// Name of the file in the data directory holding the admin API token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    anyhow::bail!("server not built yet: {config:?}")
}
