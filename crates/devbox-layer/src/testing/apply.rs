//! Applying layer tars in order onto one directory, the way an overlay mount
//! of the unpacked layers shows them, but as a plain tree.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, OFlags, Stat, Timespec, Timestamps, Uid};

use crate::changes::list_dir;
use crate::unpack::tree::{open_dir_at, remove_all, stat_at};
use crate::unpack::{UnpackError, unpack};
use crate::whiteout::{self, is_overlay_whiteout};
use crate::xattr::{self, Target};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("unpacking layer {layer} (0 is the first applied): {source}")]
    Unpack { layer: usize, source: UnpackError },
    #[error("applying layer {layer} at {path:?}: cannot {action}: {source}")]
    Io {
        layer: usize,
        path: String,
        action: &'static str,
        source: io::Error,
    },
}

/// Applies the uncompressed layer tars `layers`, in order, onto the
/// directory `dest` (which may already hold a tree: the base). Each layer is
/// unpacked with [`unpack`] beside `dest` (on the same filesystem) and moved
/// in: whiteouts remove what they name, opaque directories replace what was
/// there, other directories merge and take the layer's metadata, anything
/// else replaces what was there. Hard links within a layer stay links.
pub fn apply_layers<R: Read>(
    layers: impl IntoIterator<Item = R>,
    dest: &Path,
) -> Result<(), ApplyError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    for (layer, tar) in layers.into_iter().enumerate() {
        let io = |action| {
            move |source: io::Error| ApplyError::Io {
                layer,
                path: dest.display().to_string(),
                action,
                source,
            }
        };
        let scratch = scratch_path(dest, layer);
        std::fs::create_dir(&scratch).map_err(io("make a scratch directory"))?;
        let result = (|| {
            unpack(tar, &scratch).map_err(|source| ApplyError::Unpack { layer, source })?;
            let from = rustix::fs::openat(CWD, &scratch, flags, Mode::empty())
                .map_err(|e| io("open the unpacked layer")(e.into()))?;
            let to = rustix::fs::openat(CWD, dest, flags, Mode::empty())
                .map_err(|e| io("open the destination")(e.into()))?;
            let mut ctx = Ctx {
                layer,
                path: Vec::new(),
            };
            ctx.merge(from.as_fd(), to.as_fd())
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result?;
    }
    Ok(())
}

fn scratch_path(dest: &Path, layer: usize) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = dest.parent().unwrap_or(Path::new("/"));
    parent.join(format!(".{name}.layer-{layer}-{}", std::process::id()))
}

struct Ctx {
    layer: usize,
    path: Vec<u8>,
}

impl Ctx {
    fn err(&self, name: &[u8], action: &'static str) -> impl FnOnce(io::Error) -> ApplyError {
        let mut path = self.path.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        let (layer, path) = (self.layer, String::from_utf8_lossy(&path).into_owned());
        move |source| ApplyError::Io {
            layer,
            path,
            action,
            source,
        }
    }

    /// Moves the content of the layer directory `from` into `to`.
    fn merge(&mut self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), ApplyError> {
        let names = list_dir(from).map_err(self.err(b"", "list the layer"))?;
        for name in names {
            let st = stat_at(from, &name)
                .map_err(self.err(&name, "inspect the layer entry"))?
                .expect("listed just now");
            if is_overlay_whiteout(st.st_mode, st.st_rdev) {
                remove_all(to, &name).map_err(self.err(&name, "remove a whited-out entry"))?;
                continue;
            }
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            let existing = stat_at(to, &name).map_err(self.err(&name, "inspect the entry"))?;
            let into_dir =
                existing.is_some_and(|e| FileType::from_raw_mode(e.st_mode) == FileType::Directory);
            if is_dir && into_dir {
                let sub =
                    open_dir_at(from, &name).map_err(self.err(&name, "open the layer dir"))?;
                if !is_opaque(sub.as_fd()).map_err(self.err(&name, "read the opaque xattr"))? {
                    let dest = open_dir_at(to, &name).map_err(self.err(&name, "open the dir"))?;
                    let start = self.push(&name);
                    self.merge(sub.as_fd(), dest.as_fd())?;
                    self.path.truncate(start);
                    copy_meta(sub.as_fd(), dest.as_fd(), &st)
                        .map_err(self.err(&name, "copy the directory's metadata"))?;
                    continue;
                }
            }
            remove_all(to, &name).map_err(self.err(&name, "replace the entry"))?;
            rustix::fs::renameat(from, &name[..], to, &name[..])
                .map_err(|e| self.err(&name, "move the entry in")(e.into()))?;
            if is_dir {
                let moved = open_dir_at(to, &name).map_err(self.err(&name, "open the dir"))?;
                clean(moved.as_fd(), &st).map_err(self.err(&name, "clean the moved dir"))?;
            }
        }
        Ok(())
    }

    fn push(&mut self, name: &[u8]) -> usize {
        let start = self.path.len();
        if start > 0 {
            self.path.push(b'/');
        }
        self.path.extend_from_slice(name);
        start
    }
}

fn is_opaque(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let value = xattr::get(Target::Fd(dir), whiteout::OVERLAY_OPAQUE_XATTR.as_bytes())?;
    Ok(value.as_deref() == Some(whiteout::OVERLAY_OPAQUE_VALUE))
}

/// Removes what only overlayfs reads from a directory moved in whole:
/// whiteouts below it (nothing is below them any more) and opaque marks.
/// `st` is the directory's own status, whose times the removals would change.
fn clean(dir: BorrowedFd<'_>, st: &Stat) -> io::Result<()> {
    xattr::remove(Target::Fd(dir), whiteout::OVERLAY_OPAQUE_XATTR.as_bytes())?;
    for name in list_dir(dir)? {
        let Some(child) = stat_at(dir, &name)? else {
            continue;
        };
        if is_overlay_whiteout(child.st_mode, child.st_rdev) {
            rustix::fs::unlinkat(dir, &name[..], AtFlags::empty())?;
        } else if FileType::from_raw_mode(child.st_mode) == FileType::Directory {
            clean(open_dir_at(dir, &name)?.as_fd(), &child)?;
        }
    }
    rustix::fs::futimens(dir, &times(st))?;
    Ok(())
}

/// Gives `to` the owner, mode, xattrs and times of `from` (whose status is `st`).
fn copy_meta(from: BorrowedFd<'_>, to: BorrowedFd<'_>, st: &Stat) -> io::Result<()> {
    rustix::fs::fchown(
        to,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::fchmod(to, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    for name in xattr::list(Target::Fd(to))? {
        xattr::remove(Target::Fd(to), &name)?;
    }
    for name in xattr::list(Target::Fd(from))? {
        if whiteout::is_overlay_private_xattr(&name) {
            continue;
        }
        if let Some(value) = xattr::get(Target::Fd(from), &name)? {
            xattr::set(Target::Fd(to), &name, &value)?;
        }
    }
    rustix::fs::futimens(to, &times(st))?;
    Ok(())
}

#[allow(clippy::unnecessary_cast)]
fn times(st: &Stat) -> Timestamps {
    let at = |secs: i64, nsec: i64| Timespec {
        tv_sec: secs,
        tv_nsec: nsec as _,
    };
    Timestamps {
        last_access: at(st.st_atime as i64, st.st_atime_nsec as i64),
        last_modification: at(st.st_mtime as i64, st.st_mtime_nsec as i64),
    }
}
