//! The on-disk layout under the runtime's root directory.
//!
//! ```text
//! <root>/bin/devbox-agent          the agent, bind-mounted into every devbox
//! <root>/layers/sha256/<hex>/      one unpacked layer per diffID (LayerStore)
//! <root>/runc/                     runc's state (`runc --root`)
//! <root>/addresses/<ip>            address claims, holding the devbox's ID
//! <root>/devboxes/<id>/            everything one devbox owns, see DevboxPaths
//! ```
//!
//! # The console log
//!
//! The shim (`devbox-agent shim`, started by `shim::run_detached`) is the
//! only writer of a devbox's console log. It appends the container's output
//! to `console.log`; when a write would take that file past half of
//! `RuntimeConfig::console_log_max`, it renames it to `console.log.1`
//! (replacing the older one) and starts a new `console.log`. So:
//! - the pair never holds more than the maximum;
//! - the newest output is always at the end of `console.log`;
//! - the whole log is `console.log.1` followed by `console.log`, and a
//!   reader reads them in that order;
//! - a line shorter than half the maximum is never split between the two;
//! - a reader following `console.log` must reopen it by name when the file
//!   it holds has been renamed (its inode is then `console.log.1`'s).
//!
//! Logs are kept across runs (a new run appends) and removed with the
//! devbox.

use std::path::{Path, PathBuf};

use devbox_model::DevboxId;

#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn agent(&self) -> PathBuf {
        self.root.join("bin/devbox-agent")
    }
    pub fn layers(&self) -> PathBuf {
        self.root.join("layers/sha256")
    }
    /// Address claims, one file per address (see `addresses.rs`).
    pub fn addresses(&self) -> PathBuf {
        self.root.join("addresses")
    }
    pub fn runc_root(&self) -> PathBuf {
        self.root.join("runc")
    }
    pub fn devboxes(&self) -> PathBuf {
        self.root.join("devboxes")
    }
    pub fn devbox(&self, id: &DevboxId) -> DevboxPaths {
        DevboxPaths {
            dir: self.devboxes().join(id.as_str()),
        }
    }
}

/// `<root>/devboxes/<id>/`.
#[derive(Debug, Clone)]
pub(crate) struct DevboxPaths {
    pub dir: PathBuf,
}

impl DevboxPaths {
    /// The overlay upper directory: the devbox's changes, kept across stops.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    /// Overlay's work directory; same filesystem as `upper`.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// The merged root filesystem (the overlay mount point).
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// The stub layer: empty mount targets, rebuilt at every start.
    pub fn stub(&self) -> PathBuf {
        self.dir.join("stub")
    }
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    pub fn config(&self) -> PathBuf {
        self.bundle().join("config.json")
    }
    /// The current console log; its older part is `console.log.1` beside
    /// it, see the module's documentation.
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    /// How the container's init ended (JSON, written by the shim). Removed
    /// at every start, so it always speaks of the last run.
    pub fn exit_file(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    /// Locked by the shim while it lives, with its PID inside.
    pub fn shim_lock(&self) -> PathBuf {
        self.dir.join("shim.lock")
    }
    /// Where runc writes the host PID of the container's init.
    pub fn init_pid(&self) -> PathBuf {
        self.dir.join("init.pid")
    }
    /// The status directory the agent writes (`command.json`), mounted
    /// read-write at `/.devbox/run`. Its content comes from inside the
    /// devbox and is untrusted.
    pub fn run(&self) -> PathBuf {
        self.dir.join("run")
    }
    /// runc's own log of the last start, read when the start fails.
    pub fn runc_log(&self) -> PathBuf {
        self.dir.join("runc.log")
    }
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }
    pub fn etc_file(&self, name: &str) -> PathBuf {
        self.etc().join(name)
    }
    /// Process specs and pid files of running execs.
    pub fn exec(&self) -> PathBuf {
        self.dir.join("exec")
    }
    /// Indexes of the upper directory as of the reads of changes a later
    /// read may count from, one file per mark.
    pub fn index_dir(&self) -> PathBuf {
        self.dir.join("index")
    }
    /// The diffIDs of the layers the current (or last) run started on, so
    /// that committing its changes knows which stack they sit on.
    pub fn lowers(&self) -> PathBuf {
        self.dir.join("lowers.json")
    }
    /// The agent's keys (its host key, the one client key it accepts),
    /// mounted read-only at `/.devbox/keys`.
    pub fn keys(&self) -> PathBuf {
        self.dir.join("keys")
    }
    /// The control plane's credential for the agent, which the runtime's
    /// own execs log in with; never inside the devbox.
    pub fn agent_credential(&self) -> PathBuf {
        self.dir.join("agent.credential")
    }
    /// The address the devbox holds (see `addresses.rs`).
    pub fn address(&self) -> PathBuf {
        self.dir.join("address")
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
