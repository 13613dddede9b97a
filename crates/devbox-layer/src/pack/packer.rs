//! The tar side of a pack: each entry the walk reports becomes tar entries.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::{PackError, PackStats};
use crate::changes::{Change, DirVisit, LeafKind, LeafVisit, Visitor, io_err, lossy};
use crate::entry::MAX_NAME_LEN;
use crate::index::IndexEntry;
use crate::stat;
use crate::tar_writer::{CopyError, EntryHeader, EntryKind, TarWriter};
use crate::whiteout;
use crate::xattr::{self, Target};

/// Overlayfs xattrs that mean part of a file or directory lives in a lower
/// layer. With the mount options the runtime uses they never appear; if they
/// do, the upperdir alone does not describe the change, and packing it would
/// silently lose data.
const NOT_SELF_CONTAINED: [&[u8]; 2] = [b"trusted.overlay.metacopy", b"trusted.overlay.redirect"];

/// An xattr's name and value.
type Xattr = (Vec<u8>, Vec<u8>);

pub(super) struct Packer<W: Write> {
    pub out: TarWriter<W>,
    pub overlay: bool,
    /// First name written in this layer for each multiply-linked inode, by
    /// (device, inode). Only names of this layer: a hard link may only point
    /// at an entry the same tar holds.
    links: HashMap<(u64, u64), Vec<u8>>,
    pub stats: PackStats,
}

impl<W: Write> Packer<W> {
    pub(super) fn new(out: W, overlay: bool) -> Self {
        Packer {
            out: TarWriter::new(out),
            overlay,
            links: HashMap::new(),
            stats: PackStats::default(),
        }
    }
}

impl<W: Write> Visitor for Packer<W> {
    fn dir(&mut self, d: &DirVisit<'_>, change: Option<Change>) -> Result<(), PackError> {
        let xattrs = self.xattrs(Target::Fd(d.fd), d.path)?;
        let mut name = d.path.to_vec();
        name.push(b'/');
        self.header(&name, EntryKind::Dir, b"", d.st, 0, &xattrs)?;
        if change.is_some() {
            self.stats.changes += 1;
        }
        if d.marker {
            name.extend_from_slice(whiteout::OPAQUE_MARKER);
            self.marker(&name, d.st)?;
        }
        Ok(())
    }

    fn leaf(&mut self, l: &LeafVisit<'_>, _change: Change) -> Result<bool, PackError> {
        self.stats.changes += 1;
        match l.kind {
            LeafKind::File => self.regular(l.dir, l.name, l.path),
            LeafKind::Symlink => self.symlink(l.dir, l.name, l.path, l.st),
            LeafKind::Fifo => self.fifo(l.dir, l.name, l.path, l.st),
            LeafKind::Whiteout => {
                let name = whiteout_path(l.path);
                self.marker(&name, l.st)?;
                Ok(true)
            }
        }
    }

    fn deleted(
        &mut self,
        parent: &DirVisit<'_>,
        name: &[u8],
        _was: &IndexEntry,
    ) -> Result<(), PackError> {
        self.stats.changes += 1;
        let mut path = parent.path.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&whiteout::whiteout_name(name));
        // The deletion changed the parent: its owner and time stand in for the gone entry's.
        self.marker(&path, parent.st)
    }

    fn ignored(&mut self, _path: &[u8], _is_dir: bool, entries: u64, bytes: u64) {
        self.stats.ignored += entries;
        self.stats.ignored_bytes += bytes;
    }

    fn skipped(&mut self, _path: &[u8]) {
        self.stats.skipped += 1;
    }
}

/// `<dir>/.wh.<name>` for the path `<dir>/<name>`.
fn whiteout_path(rel: &[u8]) -> Vec<u8> {
    let (dir, name) = match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => rel.split_at(i + 1),
        None => (&b""[..], rel),
    };
    let mut wh = dir.to_vec();
    wh.extend_from_slice(&whiteout::whiteout_name(name));
    wh
}

impl<W: Write> Packer<W> {
    fn regular(&mut self, dir: BorrowedFd<'_>, name: &[u8], rel: &[u8]) -> Result<bool, PackError> {
        // NONBLOCK keeps a fifo swapped in since the listing from blocking the open.
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP) => return Ok(false),
            Err(e) => return Err(io_err(rel, "open the file", e.into())),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| io_err(rel, "inspect the file", e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Ok(false);
        }
        if self.linked(rel, &st)? {
            return Ok(true);
        }
        let xattrs = self.xattrs(Target::Fd(fd.as_fd()), rel)?;
        let size = stat::size(&st);
        self.header(rel, EntryKind::File, b"", &st, size, &xattrs)?;
        self.out
            .write_content(File::from(fd), size)
            .map_err(|e| match e {
                CopyError::Read(source) => io_err(rel, "read the file", source),
                CopyError::Write(source) => PackError::Write { source },
            })?;
        self.stats.bytes += size;
        Ok(true)
    }

    fn symlink(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: &[u8],
        st: &Stat,
    ) -> Result<bool, PackError> {
        let target = match rustix::fs::readlinkat(dir, name, Vec::new()) {
            Ok(target) => target.into_bytes(),
            Err(Errno::NOENT | Errno::INVAL) => return Ok(false),
            Err(e) => return Err(io_err(rel, "read the symlink", e.into())),
        };
        if self.linked(rel, st)? {
            return Ok(true);
        }
        let xattrs = self.xattrs(Target::At(dir, name), rel)?;
        self.header(rel, EntryKind::Symlink, &target, st, 0, &xattrs)?;
        Ok(true)
    }

    fn fifo(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: &[u8],
        st: &Stat,
    ) -> Result<bool, PackError> {
        if self.linked(rel, st)? {
            return Ok(true);
        }
        let xattrs = self.xattrs(Target::At(dir, name), rel)?;
        self.header(rel, EntryKind::Fifo, b"", st, 0, &xattrs)?;
        Ok(true)
    }

    /// Writes an empty whiteout or opaque-marker file, with the owner and time
    /// of the thing it stands for.
    fn marker(&mut self, name: &[u8], st: &Stat) -> Result<(), PackError> {
        let mut marker = *st;
        marker.st_mode = 0;
        self.header(name, EntryKind::File, b"", &marker, 0, &[])?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// If `st` is a multiply-linked inode already written in this layer,
    /// writes `rel` as a hard link to it and returns true; otherwise
    /// remembers `rel` for it.
    fn linked(&mut self, rel: &[u8], st: &Stat) -> Result<bool, PackError> {
        if stat::nlink(st) <= 1 {
            return Ok(false);
        }
        let key = (stat::dev(st), stat::ino(st));
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
        xattrs: &[Xattr],
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

    /// Reads the xattrs to carry, dropping overlay-private ones, and
    /// refusing an entry that is not self-contained.
    fn xattrs<Fd: AsFd + Copy>(
        &self,
        target: Target<'_, Fd>,
        rel: &[u8],
    ) -> Result<Vec<Xattr>, PackError> {
        let names = match xattr::list(target) {
            Ok(names) => names,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => Vec::new(),
            Err(e) if e.raw_os_error() == Some(Errno::OPNOTSUPP.raw_os_error()) => Vec::new(),
            Err(e) => return Err(io_err(rel, "list xattrs", e)),
        };
        let mut out = Vec::new();
        for name in names {
            if whiteout::is_overlay_private_xattr(&name) {
                if self.overlay && NOT_SELF_CONTAINED.contains(&name.as_slice()) {
                    let xattr = String::from_utf8_lossy(&name).into_owned();
                    return Err(PackError::NotSelfContained {
                        entry: lossy(rel),
                        xattr,
                    });
                }
                continue;
            }
            match xattr::get(target, &name) {
                Ok(Some(value)) => out.push((name, value)),
                Ok(None) => continue,
                Err(e) => return Err(io_err(rel, "read an xattr", e)),
            }
        }
        Ok(out)
    }
}
