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
mod events;
mod host;
mod idle;
mod ingress;
mod listener;
mod locks;
mod maintenance;
mod ops;
mod reconcile;
mod registry;
mod secret;
mod session;
mod ssh;
mod state;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use devbox_image::ImageStore;
use devbox_runtime::{DEFAULT_SUBNET, LocalRuntime, Runtime, RuntimeConfig, Subnet};
use devbox_store::{SqliteStore, Store};

pub use crate::registry::RegistryConfig;
use crate::state::AppState;
pub use devbox_image::BlobLocation;

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
    /// How commits are written, merged and kept.
    pub commits: CommitPolicy,
    /// The registry under `/v2/`.
    pub registry: RegistryConfig,
    /// Where image blobs are kept.
    pub blob_store: BlobLocation,
    /// Address of the SSH gateway.
    pub ssh_listen: SocketAddr,
    /// Devbox ports are reached as `<port>-<devbox>.<domain>`.
    pub ingress_domain: String,
    /// How long a request to a stopped devbox's port waits for it to start.
    pub wake_timeout: std::time::Duration,
    /// CPU use (in cores, 0.05 for 5% of one) below which a devbox with an
    /// auto-stop window counts as idle.
    pub idle_cpu: f64,
}

/// How commits are written, merged and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPolicy {
    /// Compression of commit layers: gzip (every client reads it) or zstd.
    pub compression: devbox_layer::compression::Compression,
    /// Merge a stopped devbox's own layers into one once it has more.
    pub squash_after: usize,
    /// Keep the images of the last this many commits of each devbox (and
    /// every pinned one, and the one each devbox runs from).
    pub keep: usize,
    /// How often garbage collection runs.
    pub gc_every: std::time::Duration,
    /// Blobs younger than this are never collected: they may belong to a
    /// commit or upload that has not recorded its manifest yet.
    pub gc_grace: std::time::Duration,
}

impl Default for CommitPolicy {
    fn default() -> Self {
        Self {
            compression: devbox_layer::compression::Compression::Gzip,
            squash_after: 8,
            keep: 20,
            gc_every: std::time::Duration::from_secs(3600),
            gc_grace: std::time::Duration::from_secs(600),
        }
    }
}

/// Name of the file in the data directory holding the admin API token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/devbox";

/// Default domain of the ingress: every name under `localhost` resolves to
/// the loopback address.
pub const DEFAULT_INGRESS_DOMAIN: &str = "localhost";

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
    let images = ImageStore::open(&data.join("images"), store.clone(), &config.blob_store)
        .await
        .with_context(|| format!("cannot open the blob store {}", config.blob_store))?;
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
        images: images.clone(),
        runtime,
        locks: Default::default(),
        limits: host::limits(),
        tmp_dir,
        commits: config.commits,
        registry: registry::Registry::new(&images, &config.registry)?,
        agent_secret,
        gateway: Default::default(),
        events: events::EventBus::random(),
        secret: secret::ServerSecret::load_or_create(data)?,
        ingress: Arc::new(ingress::Ingress::new(
            config.ingress_domain.clone(),
            config.wake_timeout,
        )),
        activity: Default::default(),
    };
    reconcile::at_boot(&state)
        .await
        .context("cannot reconcile devboxes with the runtime")?;
    let reconciler = reconcile::spawn(state.clone());
    let maintenance = maintenance::spawn(state.clone());
    let sweeper = state.registry.spawn_sweeper();
    let idle = idle::spawn(state.clone(), config.idle_cpu);

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
    let router = api::router(state.clone());
    let served = listener::serve(listener, state, router, shutdown_signal()).await;
    reconciler.abort();
    maintenance.abort();
    sweeper.abort();
    gateway.abort();
    idle.abort();
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
