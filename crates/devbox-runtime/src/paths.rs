//! The on-disk layout under the runtime's root directory.
//!
//! ```text
//! <root>/bin/devbox-agent          the agent, bind-mounted into every devbox
//! <root>/layers/sha256/<hex>/      one unpacked layer per diffID (LayerStore)
//! <root>/runc/                     runc's state (`runc --root`)
//! <root>/addresses/<ip>            address claims, holding the devbox's ID
//! <root>/devboxes/<id>/            everything one devbox owns, see DevboxPaths
//! ```

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
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
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
    /// The address the devbox holds (see `addresses.rs`).
    pub fn address(&self) -> PathBuf {
        self.dir.join("address")
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
