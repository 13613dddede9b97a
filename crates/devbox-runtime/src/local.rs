//! [`LocalRuntime`]: devboxes as runc containers on this machine, with
//! overlayfs root filesystems and a bridged network.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use devbox_layer::digest::Digest;
use devbox_model::{DevboxId, Resources};

use crate::bundle::{self, BundleInput};
use crate::cmd::find_program;
use crate::config::{RuntimeConfig, validate_bridge};
use crate::error::RuntimeError;
use crate::exec::ExecProcess;
use crate::layers::LayerStore;
use crate::network::{self, BridgeClaim, Network};
use crate::paths::{DevboxPaths, Paths};
use crate::runc::{Runc, Status};
use crate::runtime::{ContainerState, ExecSpec, Runtime, StartSpec};
use crate::stub::{self, StubError};
use crate::{agent, command_status, hostfiles, overlay, shim, sys, users};

/// How long a container may take to die after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How often a stopping container's state is polled.
const POLL: Duration = Duration::from_millis(100);

/// The runc implementation of [`Runtime`].
#[derive(Debug)]
pub struct LocalRuntime {
    config: RuntimeConfig,
    paths: Paths,
    layers: LayerStore,
    runc: Runc,
    network: Network,
    /// Held for the runtime's life: no other runtime may use its bridge.
    _bridge: BridgeClaim,
    nofile: u64,
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
        Ok(Self {
            config,
            paths,
            layers,
            runc,
            network,
            _bridge: bridge,
            nofile: grantable_nofile(),
        })
    }

    /// The shared store of unpacked layers.
    pub fn layers(&self) -> &LayerStore {
        &self.layers
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The devbox's overlay upper directory: everything it changed since
    /// its layers, with overlay whiteouts. A commit packs it.
    pub fn upper_dir(&self, id: &DevboxId) -> PathBuf {
        self.paths.devbox(id).upper()
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
        let p = self.paths.devbox(id);
        if matches!(
            self.runc.state(id).await?,
            Some(Status::Running(_) | Status::Paused(_))
        ) || is_mounted(&p.rootfs())?
        {
            return Err(RuntimeError::UpperInUse { id: id.clone() });
        }
        self.layers.adopt(diff_id, &p.upper())
    }

    async fn wait_not_running(&self, id: &DevboxId, limit: Duration) -> Result<bool, RuntimeError> {
        let deadline = Instant::now() + limit;
        loop {
            match self.runc.state(id).await? {
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
    /// and the mount. Idempotent; what is already gone is skipped.
    async fn teardown(&self, id: &DevboxId) -> Result<(), RuntimeError> {
        if let Some(status) = self.runc.state(id).await? {
            if status != Status::Stopped {
                // An error here usually means it died meanwhile; the wait
                // tells.
                let _ = self.runc.kill(id, "KILL").await;
                if !self.wait_not_running(id, KILL_WAIT).await? {
                    return Err(RuntimeError::StopTimeout {
                        id: id.clone(),
                        waited: KILL_WAIT,
                    });
                }
            }
            self.runc.delete(id).await?;
        }
        let p = self.paths.devbox(id);
        shim::wait_gone(id, &p).await?;
        if let Some(exit) = shim::read_exit(&p) {
            tracing::info!(devbox = %id, code = exit.code, oom_killed = exit.oom_killed, "its last run ended");
        }
        self.network.detach(id).await?;
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
        if let Some(missing) = spec.layers.iter().find(|d| !self.layers.contains(d)) {
            return Err(RuntimeError::LayerMissing {
                diff_id: missing.clone(),
            });
        }
        if !self.config.subnet.is_devbox_address(spec.ip) {
            return Err(RuntimeError::InvalidAddress {
                id: spec.id.clone(),
                ip: spec.ip,
                subnet: self.config.subnet.to_string(),
            });
        }
        if bundle::workdir(&spec.workdir).is_none() {
            return Err(RuntimeError::InvalidWorkdir {
                id: spec.id.clone(),
                workdir: spec.workdir.clone(),
            });
        }
        Ok(())
    }

    /// Creates the devbox's directories. A new upper directory takes the
    /// owner and mode of the image's root directory, since the upper root is
    /// what the devbox sees as `/`.
    fn prepare_dirs(&self, p: &DevboxPaths, top_layer: Option<&Path>) -> Result<(), RuntimeError> {
        create_dir(p.dir(), 0o700)?;
        for dir in [p.work(), p.rootfs(), p.etc(), p.bundle(), p.exec()] {
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

    async fn start_inner(&self, spec: &StartSpec) -> Result<(), RuntimeError> {
        let id = &spec.id;
        let p = self.paths.devbox(id);
        // Topmost first, as overlayfs lists lower directories.
        let layer_dirs: Vec<PathBuf> = spec
            .layers
            .iter()
            .rev()
            .map(|d| self.layers.path(d))
            .collect();
        self.prepare_dirs(&p, layer_dirs.first().map(PathBuf::as_path))?;

        let write = |name: &str, content: String| {
            let path = p.etc_file(name);
            fs::write(&path, content).map_err(RuntimeError::io("write", &path))
        };
        for file in bundle::EtcFile::ALL {
            let content = match file {
                bundle::EtcFile::Hosts => hostfiles::hosts(spec.ip, &spec.hostname),
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

        self.network.attach(id, spec.ip).await?;

        let oci = bundle::spec(&BundleInput {
            id,
            hostname: &spec.hostname,
            rootfs: p.rootfs(),
            agent: self.paths.agent(),
            etc: p.etc(),
            run: p.run(),
            netns: network::netns_path(id),
            resources: &spec.resources,
            env: &spec.env,
            workdir: &spec.workdir,
            user: &user,
            command: spec.command.as_deref(),
            nofile: self.nofile,
        })
        .map_err(|source| RuntimeError::Bundle {
            id: id.clone(),
            source,
        })?;
        let config = p.config();
        let json = serde_json::to_vec_pretty(&oci).expect("a runtime spec serializes");
        fs::write(&config, json).map_err(RuntimeError::io("write", &config))?;

        shim::run_detached(&self.runc, id, &self.paths, self.config.console_log_max).await
    }
}

#[async_trait]
impl Runtime for LocalRuntime {
    async fn start(&self, spec: &StartSpec) -> Result<(), RuntimeError> {
        let id = &spec.id;
        if let Some(Status::Running(_) | Status::Paused(_)) = self.runc.state(id).await? {
            return Ok(());
        }
        self.validate(spec)?;
        // Leftovers of a run that ended or a start that was cut short.
        self.teardown(id).await?;
        match self.start_inner(spec).await {
            Ok(()) => {
                tracing::info!(devbox = %id, ip = %spec.ip, "devbox started");
                Ok(())
            }
            Err(e) => {
                if let Err(undo) = self.teardown(id).await {
                    tracing::warn!(devbox = %id, error = %undo, "cannot undo a failed start");
                }
                Err(e)
            }
        }
    }

    async fn stop(&self, id: &DevboxId, grace: Duration) -> Result<(), RuntimeError> {
        if let Some(Status::Running(_) | Status::Paused(_)) = self.runc.state(id).await? {
            let mut stopped = false;
            if !grace.is_zero() {
                // The agent asks every process to end, then exits.
                if let Err(e) = self.runc.kill(id, "TERM").await {
                    tracing::debug!(devbox = %id, error = %e, "SIGTERM not delivered");
                }
                stopped = self.wait_not_running(id, grace).await?;
            }
            if !stopped {
                let _ = self.runc.kill(id, "KILL").await;
                if !self.wait_not_running(id, KILL_WAIT).await? {
                    return Err(RuntimeError::StopTimeout {
                        id: id.clone(),
                        waited: KILL_WAIT,
                    });
                }
            }
            tracing::info!(devbox = %id, "devbox stopped");
        }
        self.teardown(id).await
    }

    async fn state(&self, id: &DevboxId) -> Result<ContainerState, RuntimeError> {
        Ok(match self.runc.state(id).await? {
            None => ContainerState::Absent,
            Some(Status::Running(pid) | Status::Paused(pid)) => ContainerState::Running { pid },
            Some(Status::Created | Status::Stopped) => ContainerState::Stopped,
        })
    }

    async fn remove(&self, id: &DevboxId) -> Result<(), RuntimeError> {
        self.stop(id, Duration::ZERO).await?;
        let p = self.paths.devbox(id);
        // Never delete through a mount: that would reach into the layers.
        if is_mounted(&p.rootfs())? {
            return Err(RuntimeError::Unmount {
                id: id.clone(),
                path: p.rootfs(),
                source: io::Error::from(io::ErrorKind::ResourceBusy),
            });
        }
        remove_if_exists(p.dir())?;
        tracing::info!(devbox = %id, "devbox removed");
        Ok(())
    }

    async fn exec(&self, id: &DevboxId, spec: &ExecSpec) -> Result<ExecProcess, RuntimeError> {
        if !matches!(self.runc.state(id).await?, Some(Status::Running(_))) {
            return Err(RuntimeError::NotRunning { id: id.clone() });
        }
        if spec.cmd.is_empty() {
            return Err(RuntimeError::EmptyCommand { id: id.clone() });
        }
        let cwd = bundle::workdir(&spec.workdir).ok_or_else(|| RuntimeError::InvalidWorkdir {
            id: id.clone(),
            workdir: spec.workdir.clone(),
        })?;
        let p = self.paths.devbox(id);
        let user = users::resolve_in(&p.rootfs(), spec.user.as_deref()).map_err(|reason| {
            RuntimeError::User {
                id: id.clone(),
                user: spec.user.clone().unwrap_or_default(),
                reason,
            }
        })?;
        let process = bundle::exec_process(&spec.cmd, &spec.env, cwd, &user, spec.tty, self.nofile)
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
        let cmd = self.runc.exec(id, &process_file, &pid_file);
        let written = process_file.clone();
        ExecProcess::spawn(id, cmd, spec.tty, process_file, pid_file).inspect_err(|_| {
            // Nothing will run this process description any more.
            let _ = fs::remove_file(&written);
        })
    }

    async fn update(&self, id: &DevboxId, resources: &Resources) -> Result<(), RuntimeError> {
        if !matches!(
            self.runc.state(id).await?,
            Some(Status::Running(_) | Status::Paused(_))
        ) {
            return Err(RuntimeError::NotRunning { id: id.clone() });
        }
        self.runc.update(id, resources).await
    }

    fn log_path(&self, id: &DevboxId) -> PathBuf {
        self.paths.devbox(id).console_log()
    }

    async fn list(&self) -> Result<Vec<DevboxId>, RuntimeError> {
        let mut ids: Vec<DevboxId> = self
            .runc
            .list()
            .await?
            .into_iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}
