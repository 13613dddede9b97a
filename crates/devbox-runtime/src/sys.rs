//! Every mount and unmount the runtime performs, and its only `unsafe`
//! code: registering a terminal's file descriptor with tokio's reactor.
//! `rustix` offers the new mount API safely.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::CWD;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags, fsconfig_create,
    fsconfig_set_string, fsmount, fsopen, move_mount,
};

use tokio::io::unix::AsyncFd;

use crate::overlay::MountOption;

/// Registers a non-blocking descriptor with the tokio reactor.
#[allow(unsafe_code)]
pub(crate) fn async_fd(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: tokio requires the descriptor to stay open and to be the same
    // one for the whole life of the `AsyncFd`. An `OwnedFd` owns its
    // descriptor, closes it only when dropped (which happens when the
    // `AsyncFd` is), and always returns the same number from `as_raw_fd`.
    unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
}

/// Mounts an overlay with `options` at `target` through `fsopen`/`fsconfig`.
/// On failure, the message includes what the kernel logged about it (the
/// `fsopen` file descriptor carries overlayfs's own explanation).
pub(crate) fn mount_overlay(
    target: &Path,
    source: &str,
    options: &[MountOption],
) -> Result<(), String> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| format!("fsopen: {e}"))?;
    let explain = |step: String, e: rustix::io::Errno| {
        let log = kernel_log(&fs);
        if log.is_empty() {
            format!("{step}: {e}")
        } else {
            format!("{step}: {e} ({log})")
        }
    };
    fsconfig_set_string(&fs, "source", source).map_err(|e| explain("set source".into(), e))?;
    for (key, value) in options {
        fsconfig_set_string(&fs, *key, value.as_str())
            .map_err(|e| explain(format!("set {key}={value}"), e))?;
    }
    fsconfig_create(&fs).map_err(|e| explain("create".into(), e))?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| explain("fsmount".into(), e))?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| format!("move mount to {}: {e}", target.display()))
}

/// The messages the kernel queued on an `fsopen` descriptor.
fn kernel_log(fs: &rustix::fd::OwnedFd) -> String {
    let mut lines = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 || lines.len() > 16 {
            break;
        }
        lines.push(String::from_utf8_lossy(&buf[..n]).trim().to_owned());
    }
    lines.join("; ")
}

/// Unmounts everything stacked on `target`. Not being a mount point, or not
/// existing, is success: unmounting is idempotent.
pub(crate) fn unmount_all(target: &Path) -> io::Result<()> {
    loop {
        match rustix::mount::unmount(target, UnmountFlags::NOFOLLOW) {
            Ok(()) => continue,
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
