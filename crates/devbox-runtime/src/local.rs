//! [`LocalRuntime`]: devboxes as runc containers on this machine, with
//! overlayfs root filesystems and a bridged network.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use devbox_layer::digest::Digest;
use devbox_layer::{LayerDescriptor, LayerSource};
use devbox_model::{DevboxId, Resources};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::addresses::Addresses;
use crate::bundle::{self, BundleInput};
use crate::cmd::find_program;
use crate::config::{RuntimeConfig, validate_bridge};
use crate::error::RuntimeError;
use crate::exec::ExecProcess;
use crate::layers::LayerStore;
use crate::network::{self, BridgeClaim, Network};
use crate::paths::{DevboxPaths, Paths};
use crate::runc::{Runc, Status};
use crate::runtime::{
    Changes, ChangesRequest, Connection, ContainerState, ContainerStatus, ExecSession, ExecSpec,
    ExitInfo, LayerPrune, LogOptions, LogStream, Runtime, StartSpec, Started,
};
use crate::stub::{self, StubError};
use crate::{
    activity, agent, agent_keys, cgroup, changes, command_status, connect, diff, hostfiles, logs,
    overlay, ports, shim, sys, users,
};

/// How long a container may take to die after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How often a stopping container's state is polled.
const POLL: Duration = Duration::from_millis(100);

/// How often [`Runtime::exits`] looks for containers that ended.
const EXIT_POLL: Duration = Duration::from_secs(1);

/// The runc implementation of [`Runtime`]. Cloning shares everything.
#[derive(Debug, Clone)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RuntimeConfig,
    paths: Paths,
    layers: LayerStore,
    runc: Runc,
    network: Network,
    addresses: Addresses,
    /// Held for the runtime's life: no other runtime may use its bridge.
    _bridge: BridgeClaim,
    nofile: u64,
    /// Devboxes whose end [`Runtime::exits`] reports.
    watched: std::sync::Mutex<HashSet<DevboxId>>,
}

fn create_dir(path: &Path, mode: u32) -> Result<(), RuntimeError> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(RuntimeError::io("create", path)(e)),
    }
}

fn create_dir_all(path: &Path) -> Result<(), RuntimeError> {
    fs::create_dir_all(path).map_err(RuntimeError::io("create", path))
}

fn remove_if_exists(path: &Path) -> Result<(), RuntimeError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("remove", path)(e)),
    }
}

/// Whether `path` is a mount point other than its parent's filesystem.
fn is_mounted(path: &Path) -> Result<bool, RuntimeError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let (Ok(a), Ok(b)) = (fs::symlink_metadata(path), fs::symlink_metadata(parent)) else {
        return Ok(false);
    };
    Ok(a.dev() != b.dev())
}

/// The open-file limit devboxes get: [`bundle::NOFILE`], unless the runtime
/// lacks `CAP_SYS_RESOURCE` (as inside some sandboxes), in which case runc
/// cannot raise a limit above the runtime's own hard limit.
fn grantable_nofile() -> u64 {
    use rustix::thread::CapabilitySet;
    let can_raise = rustix::thread::capabilities(None)
        .map(|c| c.effective.contains(CapabilitySet::SYS_RESOURCE))
        .unwrap_or(false);
    let limit = if can_raise {
        fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(bundle::NOFILE)
    } else {
        rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .maximum
            .unwrap_or(bundle::NOFILE)
    };
    limit.min(bundle::NOFILE)
}

fn overlay_available() -> bool {
    fs::read_to_string("/proc/filesystems")
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().last() == Some("overlay"))
        })
        .unwrap_or(false)
}

impl LocalRuntime {
    /// Checks the prerequisites (root, runc, overlayfs, `ip`, `iptables`),
    /// prepares the directories under `config.root`, installs the agent
    /// binary when it changed, and sets up the bridge and NAT. Idempotent.
    pub async fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        validate_bridge(&config.bridge)?;
        if !rustix::process::geteuid().is_root() {
            return Err(RuntimeError::NotRoot);
        }
        let runc_bin = find_program(&config.runc).ok_or_else(|| RuntimeError::RuncNotFound {
            path: config.runc.clone(),
        })?;
        if !overlay_available() {
            return Err(RuntimeError::OverlayUnavailable);
        }
        let ip = find_program(Path::new("ip")).ok_or(RuntimeError::ToolNotFound {
            tool: "ip",
            package: "iproute2",
        })?;
        let iptables = find_program(Path::new("iptables")).ok_or(RuntimeError::ToolNotFound {
            tool: "iptables",
            package: "iptables",
        })?;
        let paths = Paths {
            root: config.root.clone(),
        };
        // The root holds every devbox's files: nobody but root may look in.
        if !paths.root.exists() {
            if let Some(parent) = paths.root.parent() {
                create_dir_all(parent)?;
            }
            create_dir(&paths.root, 0o700)?;
        }
        for dir in [paths.root.join("bin"), paths.layers(), paths.runc_root()] {
            create_dir_all(&dir)?;
        }
        create_dir(&paths.devboxes(), 0o700)?;
        let layers = LayerStore::new(paths.layers());
        layers.clean_leftovers()?;
        agent::install(&paths.agent())?;
        let network = Network {
            ip,
            iptables,
            bridge: config.bridge.clone(),
            subnet: config.subnet,
        };
        let bridge = network::claim(&config.bridge, &paths.root)?;
        network.ensure_host(&bridge).await?;
        let runc = Runc {
            bin: runc_bin,
            root: paths.runc_root(),
        };
        let addresses = Addresses::new(paths.addresses(), config.subnet);
        adopt_unrecorded_addresses(&paths, &addresses)?;
        addresses.release_orphans(|id| paths.devbox(id).dir)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                paths,
                layers,
                runc,
                network,
                addresses,
                _bridge: bridge,
                nofile: grantable_nofile(),
                watched: Default::default(),
            }),
        })
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, HashSet<DevboxId>> {
        self.inner.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ignore rules of a devbox's commits: the defaults, its own
    /// `/etc/devbox/commit-ignore` (read from its merged view while it
    /// runs, else from its upper directory, then its layers topmost first),
    /// then `exclude`.
    fn ignore_set(
        &self,
        id: &DevboxId,
        exclude: &[String],
    ) -> Result<devbox_layer::IgnoreSet, RuntimeError> {
        let p = self.inner.paths.devbox(id);
        let mut roots = Vec::new();
        if is_mounted(&p.rootfs()).unwrap_or(false) {
            roots.push(p.rootfs());
        } else {
            roots.push(p.upper());
            if let Ok(lowers) = read_lowers(&p) {
                roots.extend(self.inner.layers.resolve(&lowers).dirs);
            }
        }
        changes::ignore_set(&roots, exclude).map_err(|message| RuntimeError::Changes {
            id: id.clone(),
            message,
        })
    }

    /// The node's store of unpacked layers, shared by every devbox.
    pub fn layers(&self) -> &LayerStore {
        &self.inner.layers
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The devbox's overlay upper directory: everything it changed since
    /// its layers, with overlay whiteouts. A commit packs it.
    pub fn upper_dir(&self, id: &DevboxId) -> PathBuf {
        self.inner.paths.devbox(id).upper()
    }

    /// Moves the upper directory of a stopped devbox into the layer store as
    /// the layer `diff_id` (the caller packed it and knows its diffID), so
    /// the next start mounts it as a lower layer without unpacking anything.
    /// The next start begins with an empty upper directory.
    pub async fn promote_upper(
        &self,
        id: &DevboxId,
        diff_id: &Digest,
    ) -> Result<PathBuf, RuntimeError> {
        let p = self.inner.paths.devbox(id);
        if matches!(
            self.inner.runc.state(id).await?,
            Some(Status::Running(_) | Status::Paused(_))
        ) || is_mounted(&p.rootfs())?
        {
            return Err(RuntimeError::UpperInUse { id: id.clone() });
        }
        self.inner.layers.adopt(diff_id, &p.upper())
    }

    async fn wait_not_running(&self, id: &DevboxId, limit: Duration) -> Result<bool, RuntimeError> {
        let deadline = Instant::now() + limit;
        loop {
            match self.inner.runc.state(id).await? {
                Some(Status::Running(_) | Status::Paused(_)) => {}
                _ => return Ok(true),
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Kills and deletes the container (if any), then removes the network
    /// and the mount. Idempotent; what is already gone is skipped. `known`
    /// is the container's state when the caller has just read it, which
    /// saves asking runc again.
    async fn teardown(
        &self,
        id: &DevboxId,
        known: Option<Option<Status>>,
    ) -> Result<(), RuntimeError> {
        let status = match known {
            Some(s) => s,
            None => self.inner.runc.state(id).await?,
        };
        if let Some(status) = status {
            if status != Status::Stopped {
                // An error here usually means it died meanwhile; the wait
                // tells.
                let _ = self.inner.runc.kill(id, "KILL").await;
                if !self.wait_not_running(id, KILL_WAIT).await? {
                    return Err(RuntimeError::StopTimeout {
                        id: id.clone(),
                        waited: KILL_WAIT,
                    });
                }
            }
            self.inner.runc.delete(id).await?;
        }
        let p = self.inner.paths.devbox(id);
        shim::wait_gone(id, &p).await?;
        if let Some(exit) = shim::read_exit(&p) {
            tracing::info!(devbox = %id, code = exit.code, oom_killed = exit.oom_killed, "its last run ended");
        }
        self.inner.network.detach(id).await?;
        let rootfs = p.rootfs();
        sys::unmount_all(&rootfs).map_err(|source| RuntimeError::Unmount {
            id: id.clone(),
            path: rootfs.clone(),
            source,
        })?;
        remove_if_exists(&p.stub())?;
        remove_if_exists(&p.exec())?;
        Ok(())
    }

    fn validate(&self, spec: &StartSpec) -> Result<(), RuntimeError> {
        if bundle::workdir(&spec.workdir).is_none() {
            return Err(RuntimeError::InvalidWorkdir {
                id: spec.id.clone(),
                workdir: spec.workdir.clone(),
            });
        }
        Ok(())
    }

    /// Makes the spec's stack available on this node: the directories that
    /// show it, topmost first (chain directories where the node has them),
    /// after unpacking every plain layer it lacks, fetched from `source`.
    async fn fetch_layers(
        &self,
        layers: &[LayerDescriptor],
        source: &dyn LayerSource,
    ) -> Result<Vec<PathBuf>, RuntimeError> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let resolved = self.inner.layers.resolve(&diff_ids);
        for &i in &resolved.plain {
            let layer = &layers[i];
            if self.inner.layers.contains(&layer.diff_id) {
                continue;
            }
            let reader =
                source
                    .open_layer(layer)
                    .await
                    .map_err(|source| RuntimeError::LayerFetch {
                        diff_id: layer.diff_id.clone(),
                        source,
                    })?;
            let store = self.inner.layers.clone();
            let (diff_id, compression) = (layer.diff_id.clone(), layer.compression);
            tokio::task::spawn_blocking(move || store.unpack(&diff_id, reader, compression))
                .await
                .map_err(|e| {
                    RuntimeError::io("unpack layer", Path::new(layer.diff_id.as_str()))(
                        io::Error::other(e),
                    )
                })??;
        }
        Ok(resolved.dirs)
    }

    /// Whether the run that is current now goes on: the container runs with
    /// the same init (a restart in between counts as an end). An error
    /// counts as an end, so a followed log ends rather than hanging forever.
    async fn liveness(&self, id: &DevboxId) -> Result<logs::Liveness, RuntimeError> {
        let run = match self.inner.runc.state(id).await? {
            Some(Status::Running(pid) | Status::Paused(pid)) => Some(pid),
            _ => None,
        };
        let (rt, id) = (self.clone(), id.clone());
        Ok(Box::new(move || {
            let (rt, id) = (rt.clone(), id.clone());
            Box::pin(async move {
                match (run, rt.inner.runc.state(&id).await) {
                    (Some(pid), Ok(Some(Status::Running(now) | Status::Paused(now)))) => now == pid,
                    _ => false,
                }
            })
        }))
    }

    /// Creates the devbox's directories. A new upper directory takes the
    /// owner and mode of the image's root directory, since the upper root is
    /// what the devbox sees as `/`.
    fn prepare_dirs(&self, p: &DevboxPaths, top_layer: Option<&Path>) -> Result<(), RuntimeError> {
        create_dir(p.dir(), 0o700)?;
        for dir in [
            p.work(),
            p.rootfs(),
            p.etc(),
            p.bundle(),
            p.exec(),
            p.keys(),
        ] {
            create_dir(&dir, 0o755)?;
        }
        let upper = p.upper();
        if !upper.exists() {
            let tmp = p.dir().join("upper.new");
            remove_if_exists(&tmp)?;
            create_dir(&tmp, 0o755)?;
            if let Some(meta) = top_layer.and_then(|l| fs::metadata(l).ok()) {
                std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()))
                    .map_err(RuntimeError::io("chown", &tmp))?;
                fs::set_permissions(&tmp, fs::Permissions::from_mode(meta.mode() & 0o7777))
                    .map_err(RuntimeError::io("chmod", &tmp))?;
            }
            fs::rename(&tmp, &upper).map_err(RuntimeError::io("rename", &upper))?;
        }
        Ok(())
    }

    async fn start_inner(
        &self,
        spec: &StartSpec,
        ip: Ipv4Addr,
        layer_dirs: Vec<PathBuf>,
    ) -> Result<(), RuntimeError> {
        let id = &spec.id;
        let p = self.inner.paths.devbox(id);
        self.prepare_dirs(&p, layer_dirs.first().map(PathBuf::as_path))?;

        let write = |name: &str, content: String| {
            let path = p.etc_file(name);
            fs::write(&path, content).map_err(RuntimeError::io("write", &path))
        };
        for file in bundle::EtcFile::ALL {
            let content = match file {
                bundle::EtcFile::Hosts => hostfiles::hosts(ip, &spec.hostname),
                bundle::EtcFile::Hostname => hostfiles::hostname(&spec.hostname),
                bundle::EtcFile::ResolvConf => hostfiles::resolv_conf()?,
            };
            write(file.name(), content)?;
        }

        let mut visible = vec![p.upper()];
        visible.extend(layer_dirs.iter().cloned());
        stub::build(&p.stub(), &visible).map_err(|e| match e {
            StubError::Io { path, source } => RuntimeError::Io {
                op: "build the stub layer at",
                path,
                source,
            },
            StubError::TooManySymlinks { target } => RuntimeError::Stub {
                id: id.clone(),
                path: format!("/{target}"),
                reason: "too many levels of symbolic links",
            },
        })?;

        let mut lowers = vec![p.stub()];
        lowers.extend(layer_dirs);
        let options = overlay::options(&lowers, &p.upper(), &p.work());
        tracing::debug!(devbox = %id, options = %overlay::describe(&options), "mounting overlay");
        sys::mount_overlay(&p.rootfs(), "devbox", &options).map_err(|message| {
            RuntimeError::Mount {
                id: id.clone(),
                path: p.rootfs(),
                message,
            }
        })?;

        let user = users::resolve_in(&p.rootfs(), spec.user.as_deref()).map_err(|reason| {
            RuntimeError::User {
                id: id.clone(),
                user: spec.user.clone().unwrap_or_default(),
                reason,
            }
        })?;

        command_status::reset(&p.run(), user.uid, user.gid)?;
        agent_keys::install(&p.keys(), &p.agent_credential(), spec.agent.as_ref())?;

        self.inner.network.attach(id, ip).await?;

        let oci = bundle::spec(&BundleInput {
            id,
            hostname: &spec.hostname,
            rootfs: p.rootfs(),
            agent: self.inner.paths.agent(),
            etc: p.etc(),
            run: p.run(),
            keys: p.keys(),
            ssh: spec.agent.is_some(),
            netns: network::netns_path(id),
            resources: &spec.resources,
            env: &spec.env,
            workdir: &spec.workdir,
            user: &user,
            command: spec.command.as_deref(),
            nofile: self.inner.nofile,
        })
        .map_err(|source| RuntimeError::Bundle {
            id: id.clone(),
            source,
        })?;
        let config = p.config();
        let json = serde_json::to_vec_pretty(&oci).expect("a runtime spec serializes");
        fs::write(&config, json).map_err(RuntimeError::io("write", &config))?;

        shim::run_detached(
            &self.inner.runc,
            id,
            &self.inner.paths,
            self.inner.config.console_log_max,
        )
        .await
    }
}

#[async_trait]
impl Runtime for LocalRuntime {
    async fn start(
        &self,
        spec: &StartSpec,
        source: &dyn LayerSource,
    ) -> Result<Started, RuntimeError> {
        let id = &spec.id;
        let p = self.inner.paths.devbox(id);
        let status = self.inner.runc.state(id).await?;
        if let Some(Status::Running(_) | Status::Paused(_)) = status {
            return Ok(Started {
                ip: self.inner.addresses.of(&p.address())?,
                command: None,
            });
        }
        self.validate(spec)?;
        // Topmost first, as overlayfs lists lower directories.
        let layer_dirs = self.fetch_layers(&spec.layers, source).await?;
        // Leftovers of a run that ended or a start that was cut short.
        self.teardown(id, Some(status)).await?;
        create_dir(p.dir(), 0o700)?;
        let ip = self.inner.addresses.ensure(id, &p.address())?;
        write_lowers(&p, &spec.layers)?;
        match self.start_inner(spec, ip, layer_dirs).await {
            Ok(()) => {
                self.watched().insert(id.clone());
                tracing::info!(devbox = %id, %ip, "devbox started");
                let command = match &spec.command {
                    Some(_) => Some(settle_command(&p.run()).await),
                    None => None,
                };
                Ok(Started {
                    ip: Some(ip),
                    command,
                })
            }
            Err(e) => {
                if let Err(undo) = self.teardown(id, None).await {
                    tracing::warn!(devbox = %id, error = %undo, "cannot undo a failed start");
                }
                Err(e)
            }
        }
    }

    async fn stop(&self, id: &DevboxId, grace: Duration) -> Result<(), RuntimeError> {
        let mut status = self.inner.runc.state(id).await?;
        if let Some(Status::Running(_) | Status::Paused(_)) = status {
            if let Some(Status::Paused(_)) = status {
                // A frozen devbox cannot act on SIGTERM.
                let _ = self.inner.runc.resume(id).await;
            }
            let mut stopped = false;
            if !grace.is_zero() {
                // The agent asks every process to end, then exits.
                if let Err(e) = self.inner.runc.kill(id, "TERM").await {
                    tracing::debug!(devbox = %id, error = %e, "SIGTERM not delivered");
                }
                stopped = self.wait_not_running(id, grace).await?;
            }
            if !stopped {
                let _ = self.inner.runc.kill(id, "KILL").await;
                if !self.wait_not_running(id, KILL_WAIT).await? {
                    return Err(RuntimeError::StopTimeout {
                        id: id.clone(),
                        waited: KILL_WAIT,
                    });
                }
            }
            tracing::info!(devbox = %id, "devbox stopped");
            status = Some(Status::Stopped);
        }
        self.teardown(id, Some(status)).await
    }

    async fn status(&self, id: &DevboxId) -> Result<ContainerStatus, RuntimeError> {
        let p = self.inner.paths.devbox(id);
        let state = match self.inner.runc.state(id).await? {
            None => ContainerState::Absent,
            Some(Status::Running(pid) | Status::Paused(pid)) => ContainerState::Running { pid },
            Some(Status::Created | Status::Stopped) => {
                ContainerState::Exited(shim::read_exit(&p).map(|e| ExitInfo {
                    code: e.code,
                    signal: e.signal,
                    oom_killed: e.oom_killed,
                    finished_at: e.finished_at,
                }))
            }
        };
        // The cgroup goes with the container; without one, nothing is known.
        let oom_kills = match state {
            ContainerState::Absent => 0,
            _ => cgroup::oom_kills(id),
        };
        Ok(ContainerStatus {
            state,
            oom_kills,
            command: command_status::read(&p.run()),
            active_changes: p.upper().is_dir(),
            activity: activity::read(&p.run()),
        })
    }

    async fn remove(&self, id: &DevboxId) -> Result<(), RuntimeError> {
        self.stop(id, Duration::ZERO).await?;
        let p = self.inner.paths.devbox(id);
        // Never delete through a mount: that would reach into the layers.
        if is_mounted(&p.rootfs())? {
            return Err(RuntimeError::Unmount {
                id: id.clone(),
                path: p.rootfs(),
                source: io::Error::from(io::ErrorKind::ResourceBusy),
            });
        }
        self.inner.addresses.release(id, &p.address())?;
        remove_if_exists(p.dir())?;
        tracing::info!(devbox = %id, "devbox removed");
        Ok(())
    }

    async fn exec(
        &self,
        id: &DevboxId,
        spec: &ExecSpec,
    ) -> Result<Box<dyn ExecSession>, RuntimeError> {
        if !matches!(self.inner.runc.state(id).await?, Some(Status::Running(_))) {
            return Err(RuntimeError::NotRunning { id: id.clone() });
        }
        if spec.cmd.is_empty() {
            return Err(RuntimeError::EmptyCommand { id: id.clone() });
        }
        let cwd = bundle::workdir(&spec.workdir).ok_or_else(|| RuntimeError::InvalidWorkdir {
            id: id.clone(),
            workdir: spec.workdir.clone(),
        })?;
        let p = self.inner.paths.devbox(id);
        let user = users::resolve_in(&p.rootfs(), spec.user.as_deref()).map_err(|reason| {
            RuntimeError::User {
                id: id.clone(),
                user: spec.user.clone().unwrap_or_default(),
                reason,
            }
        })?;
        let process = bundle::exec_process(
            &spec.cmd,
            &spec.env,
            cwd,
            &user,
            spec.tty,
            self.inner.nofile,
        )
        .map_err(|source| RuntimeError::Bundle {
            id: id.clone(),
            source,
        })?;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = p.exec();
        create_dir(&dir, 0o755)?;
        let process_file = dir.join(format!("{name}.json"));
        let pid_file = dir.join(format!("{name}.pid"));
        let json = serde_json::to_vec(&process).expect("a process spec serializes");
        fs::write(&process_file, json).map_err(RuntimeError::io("write", &process_file))?;
        let cmd = self.inner.runc.exec(id, &process_file, &pid_file);
        let written = process_file.clone();
        let session =
            ExecProcess::spawn(id, cmd, spec.tty, process_file, pid_file).inspect_err(|_| {
                // Nothing will run this process description any more.
                let _ = fs::remove_file(&written);
            })?;
        Ok(Box::new(session))
    }

    async fn update(&self, id: &DevboxId, resources: &Resources) -> Result<(), RuntimeError> {
        if !matches!(
            self.inner.runc.state(id).await?,
            Some(Status::Running(_) | Status::Paused(_))
        ) {
            return Err(RuntimeError::NotRunning { id: id.clone() });
        }
        // The kernel would not refuse a limit below the usage: it would
        // reclaim, then kill processes of the devbox. Say so instead.
        if let Ok(usage) = cgroup::memory_usage(id)
            && resources.memory.0 < usage
        {
            return Err(RuntimeError::MemoryBelowUsage {
                id: id.clone(),
                limit: resources.memory,
                usage: devbox_model::ByteSize(usage),
            });
        }
        self.inner.runc.update(id, resources).await
    }

    async fn logs(&self, id: &DevboxId, opts: LogOptions) -> Result<LogStream, RuntimeError> {
        let p = self.inner.paths.devbox(id);
        let current = p.console_log();
        let older = current.with_extension("log.1");
        logs::stream(current, older, opts, self.liveness(id).await?)
    }

    async fn listening_ports(&self, id: &DevboxId) -> Result<Vec<u16>, RuntimeError> {
        let Some(Status::Running(pid)) = self.inner.runc.state(id).await? else {
            return Err(RuntimeError::NotRunning { id: id.clone() });
        };
        ports::listening(pid).map_err(|source| RuntimeError::Io {
            op: "read",
            path: format!("/proc/{pid}/net/tcp").into(),
            source,
        })
    }

    async fn cpu_usage(&self, id: &DevboxId) -> Result<Option<Duration>, RuntimeError> {
        if !matches!(self.inner.runc.state(id).await?, Some(Status::Running(_))) {
            return Ok(None);
        }
        match cgroup::cpu_usage(id) {
            Ok(d) => Ok(Some(d)),
            Err(e) => {
                tracing::debug!(devbox = %id, "cannot read the CPU usage: {e}");
                Ok(None)
            }
        }
    }

    async fn connect(&self, id: &DevboxId, port: u16) -> Result<Box<dyn Connection>, RuntimeError> {
        if !matches!(self.inner.runc.state(id).await?, Some(Status::Running(_))) {
            return Err(RuntimeError::NotRunning { id: id.clone() });
        }
        let stream = connect::connect(id, network::netns_path(id), port).await?;
        Ok(Box::new(stream))
    }

    async fn read_changes(
        &self,
        id: &DevboxId,
        req: &ChangesRequest,
    ) -> Result<Changes, RuntimeError> {
        if !changes::valid_mark(&req.mark) {
            return Err(RuntimeError::InvalidMark {
                mark: req.mark.clone(),
            });
        }
        let p = self.inner.paths.devbox(id);
        let upper = p.upper();
        if !upper.is_dir() {
            return Err(RuntimeError::io("read the changes in", &upper)(
                io::Error::from(io::ErrorKind::NotFound),
            ));
        }
        let ignore = self.ignore_set(id, &req.exclude)?;
        // The filesystem's own clock, before the walk: what changes from
        // here on is packed again by the next read.
        let watermark =
            devbox_layer::Watermark::take(p.dir()).map_err(|e| RuntimeError::Changes {
                id: id.clone(),
                message: e.to_string(),
            })?;
        let since = req
            .since
            .as_deref()
            .filter(|s| changes::previous_index(&p.index_dir(), Some(s)).is_some())
            .map(str::to_owned);
        let frozen =
            req.freeze && matches!(self.inner.runc.state(id).await?, Some(Status::Running(_))) && {
                self.inner.runc.pause(id).await?;
                true
            };
        let thaw = {
            let (runc, id) = (self.inner.runc.clone(), id.clone());
            move || {
                if frozen {
                    // The walk runs on a thread of its own, outside tokio.
                    let status = std::process::Command::new(&runc.bin)
                        .arg("--root")
                        .arg(&runc.root)
                        .args(["resume", id.as_str()])
                        .status();
                    if !matches!(status, Ok(s) if s.success()) {
                        tracing::error!(devbox = %id, ?status, "cannot thaw the devbox after reading its changes");
                    }
                }
            }
        };
        let job = changes::Job {
            upper: upper.clone(),
            index_dir: p.index_dir(),
            mark: req.mark.clone(),
            since: since.clone(),
            ignore,
            watermark,
        };
        let (reader, stats) =
            changes::start(job, thaw).map_err(RuntimeError::io("read the changes in", &upper))?;
        Ok(Changes {
            tar: Box::new(reader),
            since,
            stats,
        })
    }

    async fn diff_changes(
        &self,
        id: &DevboxId,
        since: Option<&str>,
        exclude: &[String],
    ) -> Result<devbox_model::api::Diff, RuntimeError> {
        let p = self.inner.paths.devbox(id);
        let upper = p.upper();
        if !upper.is_dir() {
            return Ok(devbox_model::api::Diff::default());
        }
        let ignore = self.ignore_set(id, exclude)?;
        let previous = changes::previous_index(&p.index_dir(), since);
        let since = previous.as_ref().and(since.map(str::to_owned));
        let (id2, upper2) = (id.clone(), upper.clone());
        tokio::task::spawn_blocking(move || {
            diff::list(&upper2, previous.as_deref(), &ignore, since)
        })
        .await
        .map_err(|e| RuntimeError::io("list the changes in", &upper)(io::Error::other(e)))?
        .map_err(|message| RuntimeError::Changes { id: id2, message })
    }

    async fn commit_changes(
        &self,
        id: &DevboxId,
        run_layers: &[Digest],
        exclude: &[String],
    ) -> Result<(), RuntimeError> {
        let p = self.inner.paths.devbox(id);
        if !p.upper().exists() {
            return Ok(());
        }
        if matches!(
            self.inner.runc.state(id).await?,
            Some(Status::Running(_) | Status::Paused(_))
        ) || is_mounted(&p.rootfs())?
        {
            return Err(RuntimeError::UpperInUse { id: id.clone() });
        }
        let ignore = self.ignore_set(id, exclude)?;
        let upper = p.upper();
        let pruned = {
            let dir = upper.clone();
            tokio::task::spawn_blocking(move || changes::prune(&dir, &ignore))
                .await
                .map_err(|e| RuntimeError::io("prune", &upper)(io::Error::other(e)))?
                .map_err(RuntimeError::io("prune", &upper))?
        };
        tracing::debug!(devbox = %id, pruned, "pruned what the commit left out");
        let Ok(lowers) = read_lowers(&p) else {
            // A run started before its layers were recorded: its changes are
            // in the stored layers, which the next start unpacks.
            remove_if_exists(&upper)?;
            remove_if_exists(&p.index_dir())?;
            return Ok(());
        };
        if run_layers.is_empty() {
            // Nothing was committed, so nothing but what the commits leave
            // out may be there; an upper directory with more is refused.
            if fs::read_dir(&upper).is_ok_and(|mut d| d.next().is_some()) {
                return Err(RuntimeError::Changes {
                    id: id.clone(),
                    message: "it has changes that no layer holds; commit them first".into(),
                });
            }
            remove_if_exists(&upper)?;
            remove_if_exists(&p.index_dir())?;
            return Ok(());
        }
        let mut stack = lowers.clone();
        stack.extend_from_slice(run_layers);
        let chains = devbox_layer::chain_ids(&stack);
        let top = &chains[chains.len() - 1];
        match run_layers {
            // One layer from the whole upper directory: it is that layer,
            // unpacked, and serves any stack that has the layer.
            [only] if self.inner.layers.chain(top).is_none() => {
                self.inner.layers.adopt(only, &upper)?;
            }
            _ => {
                let parent = lowers.len().checked_sub(1).map(|i| &chains[i]);
                self.inner.layers.adopt_chain(top, parent, &upper)?;
            }
        }
        remove_if_exists(&p.index_dir())?;
        Ok(())
    }

    async fn prune_layers(
        &self,
        keep: &[Vec<Digest>],
        dry_run: bool,
    ) -> Result<LayerPrune, RuntimeError> {
        let store = &self.inner.layers;
        let mut keep_layers: HashSet<Digest> = HashSet::new();
        let mut keep_chains: HashSet<Digest> = HashSet::new();
        let mut stacks: Vec<Vec<Digest>> = keep.to_vec();
        // What running devboxes mount stays whatever the caller keeps.
        for id in self.list().await? {
            let p = self.inner.paths.devbox(&id);
            if let Ok(lowers) = read_lowers(&p) {
                stacks.push(lowers);
            }
        }
        for stack in &stacks {
            keep_layers.extend(stack.iter().cloned());
            keep_chains.extend(devbox_layer::chain_ids(stack));
        }
        let mut report = LayerPrune::default();
        for diff_id in store.list()? {
            if !keep_layers.contains(&diff_id) {
                report.dirs += 1;
                report.bytes += tree_size(&store.path(&diff_id));
                if !dry_run {
                    store.remove(&diff_id)?;
                }
            }
        }
        for chain in store.list_chains()? {
            if !keep_chains.contains(&chain) {
                report.dirs += 1;
                report.bytes += tree_size(&store.chain_dir(&chain));
                if !dry_run {
                    store.remove_chain(&chain)?;
                }
            }
        }
        Ok(report)
    }

    async fn list(&self) -> Result<Vec<DevboxId>, RuntimeError> {
        let mut ids: Vec<DevboxId> = self
            .inner
            .runc
            .list()
            .await?
            .into_iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn exits(&self) -> BoxStream<'static, DevboxId> {
        // The watch begins now, not when the stream is first polled, so an
        // exit between the call and the first poll is not missed. Devboxes
        // this runtime starts are watched from their start on, so one that
        // ends before the next poll is noticed too.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let rt = self.clone();
        tokio::spawn(async move {
            let mut first = true;
            while !tx.is_closed() {
                if let Ok(running) = rt.inner.runc.running().await {
                    let now: HashSet<DevboxId> =
                        running.into_iter().filter_map(|s| s.parse().ok()).collect();
                    let ended: Vec<DevboxId> = {
                        let mut watched = rt.watched();
                        if first {
                            // Adopt what ran before this runtime did.
                            watched.extend(now.iter().cloned());
                            first = false;
                        }
                        let ended = watched.difference(&now).cloned().collect();
                        watched.retain(|id| now.contains(id));
                        ended
                    };
                    for id in ended {
                        if tx.send(id).is_err() {
                            return;
                        }
                    }
                }
                tokio::time::sleep(EXIT_POLL).await;
            }
        });
        tokio_stream_of(rx)
    }
}

/// How long a start waits for its startup command to fail at once.
const COMMAND_SETTLE: Duration = Duration::from_millis(150);

/// The startup command's status shortly after a start: a command that cannot
/// be run, or that exits at once, is seen as such; one still running after
/// [`COMMAND_SETTLE`] is reported running.
async fn settle_command(run: &Path) -> devbox_model::api::CommandStatus {
    use devbox_model::api::CommandStatus;
    let deadline = Instant::now() + COMMAND_SETTLE;
    loop {
        match command_status::read(run) {
            Some(done @ (CommandStatus::Exited { .. } | CommandStatus::Failed { .. })) => {
                return done;
            }
            _ if Instant::now() >= deadline => return CommandStatus::Running,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// A receiver as a stream.
fn tokio_stream_of<T: Send + 'static>(
    rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> BoxStream<'static, T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) }).boxed()
}

/// Records the layers a run starts on, so that committing its changes
/// knows the stack they sit on.
fn write_lowers(p: &DevboxPaths, layers: &[LayerDescriptor]) -> Result<(), RuntimeError> {
    let ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let path = p.lowers();
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_vec(&ids).expect("strings serialize");
    fs::write(&tmp, json).map_err(RuntimeError::io("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(RuntimeError::io("rename", &path))
}

/// The layers the devbox's current (or last) run started on.
fn read_lowers(p: &DevboxPaths) -> Result<Vec<Digest>, RuntimeError> {
    let path = p.lowers();
    let text = fs::read(&path).map_err(RuntimeError::io("read", &path))?;
    let ids: Vec<String> = serde_json::from_slice(&text).map_err(|e| {
        RuntimeError::io("parse", &path)(io::Error::new(io::ErrorKind::InvalidData, e))
    })?;
    ids.iter()
        .map(|s| {
            s.parse().map_err(|e: devbox_layer::DigestError| {
                RuntimeError::io("parse", &path)(io::Error::new(io::ErrorKind::InvalidData, e))
            })
        })
        .collect()
}

/// Bytes of the regular files below `dir`, best effort.
fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Records the address of devboxes that got one before addresses were
/// claimed here (their `/etc/hosts` names it), so a start of another devbox
/// never takes the address of one that still runs.
fn adopt_unrecorded_addresses(paths: &Paths, addresses: &Addresses) -> Result<(), RuntimeError> {
    let Ok(entries) = fs::read_dir(paths.devboxes()) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<DevboxId>().ok())
        else {
            continue;
        };
        let p = paths.devbox(&id);
        if p.address().exists() {
            continue;
        }
        let hosts = fs::read_to_string(p.etc_file("hosts")).unwrap_or_default();
        if let Some(ip) = hostfiles::address_in_hosts(&hosts) {
            addresses.adopt(&id, &p.address(), ip)?;
        }
    }
    Ok(())
}
