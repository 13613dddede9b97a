//! The Devbox control plane: the REST API under `/api/v1` (`api`), the
//! operations every request and the reconciler go through (`ops`, one file
//! per verb), and the reconciler that keeps the database and the runtime in
//! agreement (`reconcile`). It is the only crate that knows HTTP server
//! types, and it drives devboxes only through the `Runtime` trait: this file
//! is the one place that names the local runtime.

mod activity;
mod api;
mod auth;
mod datadir;
mod host;
mod locks;
mod ops;
mod reconcile;
mod ssh;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use devbox_image::ImageStore;
use devbox_runtime::{DEFAULT_SUBNET, LocalRuntime, Runtime, RuntimeConfig, Subnet};
use devbox_store::{SqliteStore, Store};

use crate::state::AppState;

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
    /// Name of the devbox bridge; `devbox0` when `None`.
    pub bridge: Option<String>,
    /// Address of the SSH gateway.
    pub ssh_listen: SocketAddr,
}

/// Name of the file in the data directory holding the admin API token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/devbox";

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// Default address of the SSH gateway.
pub const DEFAULT_SSH_LISTEN: &str = ssh::DEFAULT_SSH_LISTEN;

/// Runs the server until SIGINT or SIGTERM. Devboxes keep running when it
/// stops; the next start adopts them.
pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    let data = &config.data_dir;
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create data directory {}", data.display()))?;
    // Before anything else touches the directory.
    let _lock = datadir::lock(data)?;
    let tmp_dir = data.join("tmp");
    // Leftover uploads of a previous run are garbage.
    let _ = std::fs::remove_dir_all(&tmp_dir);
    std::fs::create_dir_all(&tmp_dir)?;

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&data.join("devbox.db"))?);
    auth::ensure_admin_token(&store, &data.join(ADMIN_TOKEN_FILE)).await?;
    let images = ImageStore::open_local(&data.join("images"), store.clone())?;
    let agent_secret = ssh::AgentSecret::load_or_create(&data.join(ssh::AGENT_SECRET_FILE))?;
    let host_key = ssh::host_key(&data.join(ssh::HOST_KEY_FILE))?;

    let subnet: Subnet = config
        .subnet
        .as_deref()
        .unwrap_or(DEFAULT_SUBNET)
        .parse()
        .context("invalid --subnet")?;
    // The runtime looks a bare name up on PATH and names the package to
    // install when it is missing.
    let runc = config.runc.clone().unwrap_or_else(|| PathBuf::from("runc"));
    let runtime = LocalRuntime::new(RuntimeConfig {
        root: data.join("runtime"),
        runc,
        subnet,
        bridge: config
            .bridge
            .clone()
            .unwrap_or_else(|| devbox_runtime::DEFAULT_BRIDGE.to_owned()),
        console_log_max: devbox_runtime::DEFAULT_CONSOLE_LOG_MAX,
    })
    .await
    .context("cannot start the devbox runtime")?;

    let runtime: Arc<dyn Runtime> = Arc::new(runtime);
    let state = AppState {
        store,
        images,
        runtime,
        locks: Default::default(),
        limits: host::limits(),
        tmp_dir,
        agent_secret,
        gateway: Default::default(),
        activity: Default::default(),
    };
    reconcile::at_boot(&state)
        .await
        .context("cannot reconcile devboxes with the runtime")?;
    let reconciler = reconcile::spawn(state.clone());

    // Listening last: a client that can connect finds everything ready.
    let ssh_listener = ssh::bind(config.ssh_listen).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let ssh_addr = ssh_listener.local_addr()?;
    tracing::info!("SSH gateway listening on {ssh_addr}");
    let gateway = ssh::Gateway::new(state.clone(), host_key, ssh_addr.port());
    let _ = state.gateway.set(gateway.clone());
    let gateway = tokio::spawn(gateway.run(ssh_listener));

    tracing::info!(
        "devbox server listening on http://{}",
        listener.local_addr()?
    );
    let served = axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    reconciler.abort();
    gateway.abort();
    served?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down; devboxes keep running");
}
