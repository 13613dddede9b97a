//! Packing a directory, or an overlayfs upperdir, into an uncompressed layer tar.

mod error;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

pub use error::PackError;

use crate::entry::MAX_NAME_LEN;
use crate::tar_writer::{CopyError, EntryHeader, EntryKind, TarWriter};
use crate::whiteout;
use crate::xattr::{self, Target};

/// How to read the source directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackOptions {
    /// The source is an overlayfs upperdir: translate its whiteouts and opaque
    /// directories into OCI whiteout entries.
    pub overlay: bool,
}

/// What a pack wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Tar entries written, whiteouts and opaque markers included.
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Sockets and device nodes left out: neither can be carried by a layer
    /// (unpack refuses device nodes, and a devbox's /dev comes from the runtime).
    pub skipped: u64,
}

/// Overlayfs xattrs that mean part of a file or directory lives in a lower
/// layer. With the mount options the runtime uses they never appear; if they
/// do, the upperdir alone does not describe the change, and packing it would
/// silently lose data.
const NOT_SELF_CONTAINED: [&[u8]; 2] = [b"trusted.overlay.metacopy", b"trusted.overlay.redirect"];

/// Writes `src` as an uncompressed tar stream to `out`.
///
/// Names are relative to `src` without a leading `./`, directories end in
/// `/`, and the root itself is not an entry. Entries come sorted by name
/// within each directory, each directory before its content, so the same tree
/// always gives the same bytes. Owners are numeric; modes, whole-second
/// mtimes, xattrs, symlinks, fifos, long names and large files (PAX) are kept;
/// files with several links become tar hard links to the first name seen.
/// Sockets and device nodes are skipped and counted.
///
/// With `opts.overlay`, `src` is an overlayfs upperdir: a character device 0/0
/// becomes `.wh.<name>` (never a tar hard link, although the kernel may link
/// whiteouts to one shared inode), a directory with `trusted.overlay.opaque=y`
/// gets a `<dir>/.wh..wh..opq` entry right after it, and overlay-private xattrs
/// are dropped (they are dropped without `overlay` too, since no layer may
/// carry them).
///
/// The tree may change while it is packed (a live commit): entries that vanish
/// are left out, and a file that shrinks is padded with zeros to the size it
/// had when its header was written.
pub fn pack_dir<W: Write>(src: &Path, out: W, opts: &PackOptions) -> Result<PackStats, PackError> {
    let source = |source| PackError::Source {
        path: src.to_path_buf(),
        source,
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root = rustix::fs::openat(CWD, src, flags, Mode::empty()).map_err(|e| source(e.into()))?;
    let names = list_dir(root.as_fd()).map_err(source)?;

    let mut packer = Packer {
        out: TarWriter::new(out),
        overlay: opts.overlay,
        links: HashMap::new(),
        stats: PackStats::default(),
    };
    // Directories are walked with an explicit stack so that depth costs heap, not thread stack.
    let mut stack = vec![Frame {
        fd: root,
        prefix: Vec::new(),
        names: names.into_iter(),
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.names.next() else {
            stack.pop();
            continue;
        };
        let mut rel = frame.prefix.clone();
        rel.extend_from_slice(&name);
        if let Some(child) = packer.entry(frame.fd.as_fd(), &name, rel)? {
            stack.push(child);
        }
    }
    packer
        .out
        .finish()
        .map_err(|source| PackError::Write { source })?;
    Ok(packer.stats)
}

/// A directory being walked: its descriptor, its name with a trailing `/`, and
/// its remaining children.
struct Frame {
    fd: OwnedFd,
    prefix: Vec<u8>,
    names: std::vec::IntoIter<Vec<u8>>,
}

struct Packer<W: Write> {
    out: TarWriter<W>,
    overlay: bool,
    /// First name written for each multiply-linked inode, by (device, inode).
    links: HashMap<(u64, u64), Vec<u8>>,
    stats: PackStats,
}

/// An xattr list, and whether it marks an opaque directory.
struct Xattrs {
    list: Vec<(Vec<u8>, Vec<u8>)>,
    opaque: bool,
}

impl<W: Write> Packer<W> {
    /// Writes the entry `name` of `dir`, named `rel` in the archive. Returns the
    /// frame to walk next if it is a directory.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: Vec<u8>,
    ) -> Result<Option<Frame>, PackError> {
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(io_err(&rel, "inspect the entry", e.into())),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => return self.directory(dir, name, rel),
            FileType::RegularFile => self.regular(dir, name, &rel)?,
            FileType::Symlink => self.symlink(dir, name, &rel, &st)?,
            FileType::Fifo => self.fifo(dir, name, &rel, &st)?,
            FileType::CharacterDevice if self.overlay && st.st_rdev == 0 => {
                self.whiteout(&rel, &st)?
            }
            _ => self.stats.skipped += 1,
        }
        Ok(None)
    }

    fn directory(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: Vec<u8>,
    ) -> Result<Option<Frame>, PackError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            // Removed or replaced since it was listed: it is no longer a directory here.
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
            Err(e) => return Err(io_err(&rel, "open the directory", e.into())),
        };
        let st =
            rustix::fs::fstat(&fd).map_err(|e| io_err(&rel, "inspect the directory", e.into()))?;
        let xattrs = self.xattrs(Target::Fd(fd.as_fd()), &rel)?;
        let mut prefix = rel;
        prefix.push(b'/');
        self.header(&prefix, EntryKind::Dir, b"", &st, 0, &xattrs.list)?;
        if xattrs.opaque {
            let mut marker = prefix.clone();
            marker.extend_from_slice(whiteout::OPAQUE_MARKER);
            self.marker(&marker, &st)?;
        }
        let names = list_dir(fd.as_fd()).map_err(|e| io_err(&prefix, "list the directory", e))?;
        Ok(Some(Frame {
            fd,
            prefix,
            names: names.into_iter(),
        }))
    }

    fn regular(&mut self, dir: BorrowedFd<'_>, name: &[u8], rel: &[u8]) -> Result<(), PackError> {
        // NONBLOCK keeps a fifo swapped in since the listing from blocking the open.
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP) => return Ok(()),
            Err(e) => return Err(io_err(rel, "open the file", e.into())),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| io_err(rel, "inspect the file", e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Ok(());
        }
        if self.linked(rel, &st)? {
            return Ok(());
        }
        let xattrs = self.xattrs(Target::Fd(fd.as_fd()), rel)?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        self.header(rel, EntryKind::File, b"", &st, size, &xattrs.list)?;
        self.out
            .write_content(File::from(fd), size)
            .map_err(|e| match e {
                CopyError::Read(source) => io_err(rel, "read the file", source),
                CopyError::Write(source) => PackError::Write { source },
            })?;
        self.stats.bytes += size;
        Ok(())
    }

    fn symlink(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: &[u8],
        st: &Stat,
    ) -> Result<(), PackError> {
        let target = match rustix::fs::readlinkat(dir, name, Vec::new()) {
            Ok(target) => target.into_bytes(),
            Err(Errno::NOENT | Errno::INVAL) => return Ok(()),
            Err(e) => return Err(io_err(rel, "read the symlink", e.into())),
        };
        if self.linked(rel, st)? {
            return Ok(());
        }
        let xattrs = self.xattrs(Target::At(dir, name), rel)?;
        self.header(rel, EntryKind::Symlink, &target, st, 0, &xattrs.list)
    }

    fn fifo(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: &[u8],
        st: &Stat,
    ) -> Result<(), PackError> {
        if self.linked(rel, st)? {
            return Ok(());
        }
        let xattrs = self.xattrs(Target::At(dir, name), rel)?;
        self.header(rel, EntryKind::Fifo, b"", st, 0, &xattrs.list)
    }

    /// An overlayfs whiteout `<dir>/<name>` becomes the empty file `<dir>/.wh.<name>`.
    fn whiteout(&mut self, rel: &[u8], st: &Stat) -> Result<(), PackError> {
        let (dir, name) = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => rel.split_at(i + 1),
            None => (&b""[..], rel),
        };
        let mut wh = dir.to_vec();
        wh.extend_from_slice(&whiteout::whiteout_name(name));
        self.marker(&wh, st)
    }

    /// Writes an empty whiteout or opaque-marker file, with the owner and time
    /// of the thing it stands for.
    fn marker(&mut self, name: &[u8], st: &Stat) -> Result<(), PackError> {
        let mut marker = *st;
        marker.st_mode = 0;
        self.header(name, EntryKind::File, b"", &marker, 0, &[])
    }

    /// If `st` is a multiply-linked inode already written, writes `rel` as a
    /// hard link to it and returns true; otherwise remembers `rel` for it.
    fn linked(&mut self, rel: &[u8], st: &Stat) -> Result<bool, PackError> {
        if st.st_nlink <= 1 {
            return Ok(false);
        }
        let key = (st.st_dev, st.st_ino);
        if let Some(first) = self.links.get(&key).cloned() {
            self.header(rel, EntryKind::HardLink, &first, st, 0, &[])?;
            return Ok(true);
        }
        self.links.insert(key, rel.to_vec());
        Ok(false)
    }

    fn header(
        &mut self,
        name: &[u8],
        kind: EntryKind,
        link: &[u8],
        st: &Stat,
        size: u64,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), PackError> {
        // Fail the pack rather than write a layer that unpack would refuse.
        if name.strip_suffix(b"/").unwrap_or(name).len() > MAX_NAME_LEN {
            return Err(PackError::NameTooLong { entry: lossy(name) });
        }
        let header = EntryHeader {
            name,
            kind,
            link,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            size,
            xattrs,
        };
        self.out
            .append_header(&header)
            .map_err(|source| PackError::Write { source })?;
        self.stats.entries += 1;
        Ok(())
    }

    /// Reads the xattrs to carry, dropping overlay-private ones and noting the opaque marker.
    fn xattrs<Fd: AsFd + Copy>(
        &self,
        target: Target<'_, Fd>,
        rel: &[u8],
    ) -> Result<Xattrs, PackError> {
        let names = match xattr::list(target) {
            Ok(names) => names,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => Vec::new(),
            Err(e) if e.raw_os_error() == Some(Errno::OPNOTSUPP.raw_os_error()) => Vec::new(),
            Err(e) => return Err(io_err(rel, "list xattrs", e)),
        };
        let mut out = Xattrs {
            list: Vec::new(),
            opaque: false,
        };
        for name in names {
            let private = whiteout::is_overlay_private_xattr(&name);
            if private && !self.overlay {
                continue;
            }
            if private && NOT_SELF_CONTAINED.contains(&name.as_slice()) {
                let xattr = String::from_utf8_lossy(&name).into_owned();
                return Err(PackError::NotSelfContained {
                    entry: lossy(rel),
                    xattr,
                });
            }
            if private && name != whiteout::OVERLAY_OPAQUE_XATTR.as_bytes() {
                continue;
            }
            let value = match xattr::get(target, &name) {
                Ok(Some(value)) => value,
                Ok(None) => continue,
                Err(e) => return Err(io_err(rel, "read an xattr", e)),
            };
            if private {
                out.opaque = value == whiteout::OVERLAY_OPAQUE_VALUE;
            } else {
                out.list.push((name, value));
            }
        }
        Ok(out)
    }
}

/// The names in a directory, sorted bytewise, without `.` and `..`.
fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort_unstable();
    Ok(names)
}

fn lossy(rel: &[u8]) -> String {
    String::from_utf8_lossy(rel).into_owned()
}

fn io_err(rel: &[u8], action: &'static str, source: io::Error) -> PackError {
    PackError::Io {
        entry: lossy(rel),
        action,
        source,
    }
}

#[cfg(test)]
mod tests;
