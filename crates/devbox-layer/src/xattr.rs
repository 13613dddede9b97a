//! Extended attributes by file descriptor, or by (directory fd, name) for files
//! that cannot be opened for that (symlinks, fifos). The latter go through
//! `/proc/self/fd/<dir>/<name>` with the `l*` calls: the directory is reached
//! through its descriptor and the last component is never followed, so no
//! path is resolved through anything a tar or a devbox could have planted.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

/// A file addressed for xattr calls.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a, Fd: AsFd> {
    /// An open regular file or directory.
    Fd(Fd),
    /// The entry `name` of directory `dir`, never followed if it is a symlink.
    At(Fd, &'a [u8]),
}

fn proc_path<Fd: AsFd>(dir: &Fd, name: &[u8]) -> PathBuf {
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd()));
    path.push(OsStr::from_bytes(name));
    path
}

/// The names of all xattrs of `target`, sorted.
pub(crate) fn list<Fd: AsFd>(target: Target<'_, Fd>) -> io::Result<Vec<Vec<u8>>> {
    let query = || match &target {
        Target::Fd(fd) => rustix::fs::flistxattr_query(fd),
        Target::At(dir, name) => rustix::fs::llistxattr_query(proc_path(dir, name)),
    };
    let fetch = |buf: &mut [u8]| match &target {
        Target::Fd(fd) => rustix::fs::flistxattr(fd, buf),
        Target::At(dir, name) => rustix::fs::llistxattr(proc_path(dir, name), buf),
    };
    let raw = read_sized(query, fetch)?.unwrap_or_default();
    let mut names: Vec<Vec<u8>> = raw
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    names.sort();
    Ok(names)
}

/// The value of xattr `name`, or `None` if it does not exist (anymore).
pub(crate) fn get<Fd: AsFd>(target: Target<'_, Fd>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let query = || match &target {
        Target::Fd(fd) => rustix::fs::fgetxattr_query(fd, name),
        Target::At(dir, file) => rustix::fs::lgetxattr_query(proc_path(dir, file), name),
    };
    let fetch = |buf: &mut [u8]| match &target {
        Target::Fd(fd) => rustix::fs::fgetxattr(fd, name, buf),
        Target::At(dir, file) => rustix::fs::lgetxattr(proc_path(dir, file), name, buf),
    };
    read_sized(query, fetch)
}

/// Sets xattr `name` to `value`, creating or replacing it.
pub(crate) fn set<Fd: AsFd>(target: Target<'_, Fd>, name: &[u8], value: &[u8]) -> io::Result<()> {
    let flags = XattrFlags::empty();
    match target {
        Target::Fd(fd) => rustix::fs::fsetxattr(fd, name, value, flags)?,
        Target::At(dir, file) => rustix::fs::lsetxattr(proc_path(&dir, file), name, value, flags)?,
    }
    Ok(())
}

/// Removes xattr `name`; one that is already gone is no error.
pub(crate) fn remove<Fd: AsFd>(target: Target<'_, Fd>, name: &[u8]) -> io::Result<()> {
    let result = match target {
        Target::Fd(fd) => rustix::fs::fremovexattr(fd, name),
        Target::At(dir, file) => rustix::fs::lremovexattr(proc_path(&dir, file), name),
    };
    match result {
        Ok(()) | Err(Errno::NODATA) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs a size query and a fetch, retrying when the value grew in between.
/// A missing attribute gives `None`.
fn read_sized(
    query: impl Fn() -> rustix::io::Result<usize>,
    fetch: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Option<Vec<u8>>> {
    loop {
        let size = match query() {
            Ok(size) => size,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Some(Vec::new()));
        }
        let mut buf = vec![0u8; size];
        match fetch(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}
