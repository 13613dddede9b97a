//! Overlay mounts for tests, in a test's own temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The options the runtime mounts devboxes with, for an upperdir.
pub fn devbox_options(lower: &str, upper: &Path, work: &Path) -> String {
    format!(
        "lowerdir={lower},upperdir={},workdir={},index=off,metacopy=off,redirect_dir=off,xino=off",
        upper.display(),
        work.display()
    )
}

/// An overlay mount, unmounted when dropped.
pub struct Mount(PathBuf);

impl Mount {
    pub fn overlay(target: &Path, options: &str) -> Mount {
        let status = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", options])
            .arg(target)
            .status()
            .expect("running mount(8)");
        assert!(
            status.success(),
            "mount -t overlay -o {options} failed: overlayfs is required"
        );
        Mount(target.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
