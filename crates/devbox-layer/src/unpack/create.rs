//! Creating each kind of entry in the destination and applying its metadata.
//! Every call first resolves the entry's parent through [`Tree`], so every
//! write happens relative to a directory descriptor known to lie inside the
//! layer, and never follows a symlink.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};

use super::tree::{self, Lookup, Tree};
use super::{Refusal, UnpackError};
use crate::entry::{EntryPath, Meta, Mtime, ParsedEntry, display};
use crate::whiteout;
use crate::xattr::{self, Target};

const WRITE_CHUNK: usize = 128 * 1024;

/// Maps an OS error (std's or rustix's) while doing `action` for this entry.
fn io_err<E: Into<io::Error>>(
    parsed: &ParsedEntry,
    action: &'static str,
) -> impl FnOnce(E) -> UnpackError {
    let entry = parsed.name.clone();
    move |source| UnpackError::Io {
        entry,
        action,
        source: source.into(),
    }
}

/// Opens the entry's parent directory, making missing ones; refuses a parent
/// that is a symlink or not a directory.
fn parent(tree: &mut Tree, parsed: &ParsedEntry) -> Result<Rc<OwnedFd>, UnpackError> {
    let lookup = tree
        .dir(parsed.path.parent(), true)
        .map_err(io_err(parsed, "open the parent directory"))?;
    match lookup {
        Lookup::Dir(fd) => Ok(fd),
        Lookup::Symlink(parent) => Err(parsed.refuse(Refusal::SymlinkParent { parent })),
        Lookup::NotDir(parent) | Lookup::Missing(parent) => {
            Err(parsed.refuse(Refusal::NotDirectoryParent { parent }))
        }
    }
}

fn file_name(parsed: &ParsedEntry) -> &[u8] {
    // Only directories may be the root; the parser refuses anything else there.
    parsed.path.file_name().unwrap_or(b".")
}

/// Removes whatever `name` in `dir` is, so that a new entry can take its place.
fn clear(
    tree: &mut Tree,
    dir: BorrowedFd<'_>,
    name: &[u8],
    parsed: &ParsedEntry,
) -> Result<(), UnpackError> {
    let removed_dir =
        tree::remove_all(dir, name).map_err(io_err(parsed, "replace the existing entry"))?;
    if removed_dir {
        tree.invalidate();
    }
    Ok(())
}

/// Creates a regular file with the entry's content; returns the bytes written.
pub(super) fn file<R: Read>(
    tree: &mut Tree,
    parsed: &ParsedEntry,
    data: &mut R,
    size: u64,
) -> Result<u64, UnpackError> {
    let dir = parent(tree, parsed)?;
    let name = file_name(parsed);
    clear(tree, dir.as_fd(), name, parsed)?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir.as_fd(), name, flags, Mode::from_raw_mode(0o600))
        .map_err(io_err(parsed, "create the file"))?;
    let mut file = File::from(fd);
    let written = write_sparse(&mut file, data, size, parsed)?;
    if written != size {
        let source = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "archive ends inside the entry's data",
        );
        return Err(UnpackError::Archive { source });
    }
    apply_meta_fd(file.as_fd(), &parsed.meta, parsed, true)?;
    Ok(written)
}

/// Copies the entry's content, leaving holes where whole chunks are zero, so
/// sparse files (disk images, databases) stay sparse in the layer directory.
fn write_sparse<R: Read>(
    file: &mut File,
    data: &mut R,
    size: u64,
    parsed: &ParsedEntry,
) -> Result<u64, UnpackError> {
    // Small files get small buffers: layers hold many of them.
    let len = usize::try_from(size)
        .unwrap_or(WRITE_CHUNK)
        .clamp(1, WRITE_CHUNK);
    let mut buf = vec![0u8; len];
    let mut total = 0u64;
    let mut trailing_hole = false;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(UnpackError::Archive { source }),
        };
        let chunk = &buf[..n];
        if chunk.iter().all(|&b| b == 0) {
            file.seek(SeekFrom::Current(n as i64))
                .map_err(io_err(parsed, "write the file"))?;
            trailing_hole = true;
        } else {
            file.write_all(chunk)
                .map_err(io_err(parsed, "write the file"))?;
            trailing_hole = false;
        }
        total += n as u64;
    }
    if trailing_hole {
        file.set_len(total)
            .map_err(io_err(parsed, "write the file"))?;
    }
    Ok(total)
}

/// Creates or updates a directory (the layer root included). Its mtime is set later.
pub(super) fn dir(tree: &mut Tree, parsed: &ParsedEntry) -> Result<(), UnpackError> {
    if parsed.path.is_root() {
        let root = tree.root_fd();
        return apply_meta_fd(root.as_fd(), &parsed.meta, parsed, false);
    }
    let parent_fd = parent(tree, parsed)?;
    let name = file_name(parsed);
    let existing = tree::stat_at(parent_fd.as_fd(), name)
        .map_err(io_err(parsed, "inspect the existing entry"))?;
    let mut replaces_whiteout = false;
    match existing {
        Some(st) if tree::file_type(&st) == FileType::Directory => {}
        other => {
            if let Some(st) = other {
                replaces_whiteout = whiteout::is_overlay_whiteout(st.st_mode, st.st_rdev);
                clear(tree, parent_fd.as_fd(), name, parsed)?;
            }
            rustix::fs::mkdirat(parent_fd.as_fd(), name, Mode::from_raw_mode(0o700))
                .map_err(io_err(parsed, "create the directory"))?;
        }
    }
    let fd =
        tree::open_dir_at(parent_fd.as_fd(), name).map_err(io_err(parsed, "open the directory"))?;
    if replaces_whiteout {
        // The lower directory is deleted; this layer's directory starts afresh.
        tree::set_opaque(fd.as_fd()).map_err(io_err(parsed, "mark the directory opaque"))?;
    }
    apply_meta_fd(fd.as_fd(), &parsed.meta, parsed, false)
}

pub(super) fn symlink(
    tree: &mut Tree,
    parsed: &ParsedEntry,
    target: &[u8],
) -> Result<(), UnpackError> {
    let dir = parent(tree, parsed)?;
    let name = file_name(parsed);
    clear(tree, dir.as_fd(), name, parsed)?;
    rustix::fs::symlinkat(target, dir.as_fd(), name)
        .map_err(io_err(parsed, "create the symlink"))?;
    apply_meta_at(dir.as_fd(), name, &parsed.meta, parsed, false)
}

pub(super) fn fifo(tree: &mut Tree, parsed: &ParsedEntry) -> Result<(), UnpackError> {
    let dir = parent(tree, parsed)?;
    let name = file_name(parsed);
    clear(tree, dir.as_fd(), name, parsed)?;
    rustix::fs::mknodat(
        dir.as_fd(),
        name,
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .map_err(io_err(parsed, "create the fifo"))?;
    apply_meta_at(dir.as_fd(), name, &parsed.meta, parsed, true)
}

/// Links the entry to `target`, which must already be in the layer, reached
/// through real directories only, and not be a directory or a whiteout.
pub(super) fn hard_link(
    tree: &mut Tree,
    parsed: &ParsedEntry,
    target: &EntryPath,
) -> Result<(), UnpackError> {
    if target == &parsed.path {
        return Ok(());
    }
    let shown = display(target.components());
    let missing = || {
        parsed.refuse(Refusal::HardLinkTargetMissing {
            target: shown.clone(),
        })
    };
    let lookup = tree
        .dir(target.parent(), false)
        .map_err(io_err(parsed, "open the hard link target's directory"))?;
    let target_dir = match lookup {
        Lookup::Dir(fd) => fd,
        Lookup::Symlink(through) => {
            return Err(parsed.refuse(Refusal::HardLinkThroughSymlink {
                target: shown,
                through,
            }));
        }
        Lookup::NotDir(_) | Lookup::Missing(_) => return Err(missing()),
    };
    let target_name = target.file_name().unwrap_or(b".");
    let st = tree::stat_at(target_dir.as_fd(), target_name)
        .map_err(io_err(parsed, "inspect the hard link target"))?
        .ok_or_else(missing)?;
    let kind = tree::file_type(&st);
    if kind == FileType::Directory {
        return Err(parsed.refuse(Refusal::HardLinkToDirectory { target: shown }));
    }
    if whiteout::is_overlay_whiteout(st.st_mode, st.st_rdev) {
        return Err(missing());
    }

    let dir = parent(tree, parsed)?;
    let name = file_name(parsed);
    clear(tree, dir.as_fd(), name, parsed)?;
    rustix::fs::linkat(
        target_dir.as_fd(),
        target_name,
        dir.as_fd(),
        name,
        AtFlags::empty(),
    )
    .map_err(io_err(parsed, "create the hard link"))
}

/// Applies `.wh.<hidden>`: a whiteout device where nothing of this layer is;
/// this layer's own directory of that name becomes opaque; this layer's own
/// file of that name already hides the lower one and stays.
pub(super) fn whiteout(
    tree: &mut Tree,
    parsed: &ParsedEntry,
    hidden: &[u8],
) -> Result<(), UnpackError> {
    let dir = parent(tree, parsed)?;
    let existing = tree::stat_at(dir.as_fd(), hidden)
        .map_err(io_err(parsed, "inspect the whited-out entry"))?;
    match existing {
        None => {
            rustix::fs::mknodat(
                dir.as_fd(),
                hidden,
                FileType::CharacterDevice,
                Mode::empty(),
                0,
            )
            .map_err(io_err(parsed, "create the whiteout device"))?;
            // Owner and time come from the entry, so that packing the directory
            // again gives back the same whiteout entry.
            let meta = Meta {
                mode: 0,
                xattrs: Vec::new(),
                ..parsed.meta.clone()
            };
            apply_meta_at(dir.as_fd(), hidden, &meta, parsed, false)
        }
        Some(st) if tree::file_type(&st) == FileType::Directory => {
            let sub = tree::open_dir_at(dir.as_fd(), hidden)
                .map_err(io_err(parsed, "open the directory"))?;
            tree::set_opaque(sub.as_fd()).map_err(io_err(parsed, "mark the directory opaque"))
        }
        Some(_) => Ok(()),
    }
}

/// Marks the directory the entry names opaque: the layer whited it out.
pub(super) fn make_opaque(tree: &mut Tree, parsed: &ParsedEntry) -> Result<(), UnpackError> {
    let Lookup::Dir(fd) = tree
        .dir(parsed.path.components(), false)
        .map_err(io_err(parsed, "open the directory"))?
    else {
        return Ok(());
    };
    tree::set_opaque(fd.as_fd()).map_err(io_err(parsed, "mark the directory opaque"))
}

/// Applies `.wh..wh..opq`: its directory becomes opaque.
pub(super) fn opaque(tree: &mut Tree, parsed: &ParsedEntry) -> Result<(), UnpackError> {
    let dir = parent(tree, parsed)?;
    tree::set_opaque(dir.as_fd()).map_err(io_err(parsed, "mark the directory opaque"))
}

/// Sets a directory's mtime at the end of the unpack; a directory replaced
/// since by something else is skipped.
pub(super) fn set_dir_mtime(
    tree: &mut Tree,
    components: &[Vec<u8>],
    mtime: Mtime,
) -> Result<(), UnpackError> {
    let io = |source| UnpackError::Io {
        entry: display(components),
        action: "set the mtime",
        source,
    };
    if let Lookup::Dir(fd) = tree.dir(components, false).map_err(io)? {
        set_fd_mtime(fd.as_fd(), mtime).map_err(io)?;
    }
    Ok(())
}

fn timestamps(mtime: Mtime) -> Timestamps {
    // The access time is set to the modification time so that unpacking is reproducible.
    let t = Timespec {
        tv_sec: mtime.secs,
        tv_nsec: mtime.nanos.into(),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

pub(super) fn set_fd_mtime(fd: BorrowedFd<'_>, mtime: Mtime) -> io::Result<()> {
    Ok(rustix::fs::futimens(fd, &timestamps(mtime))?)
}

fn owner(meta: &Meta) -> (Option<Uid>, Option<Gid>) {
    (Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)))
}

/// Owner, then mode (a chown clears setuid and setgid), then xattrs (a chown
/// also clears `security.capability`), then, unless deferred, times.
fn apply_meta_fd(
    fd: BorrowedFd<'_>,
    meta: &Meta,
    parsed: &ParsedEntry,
    times: bool,
) -> Result<(), UnpackError> {
    let (uid, gid) = owner(meta);
    rustix::fs::fchown(fd, uid, gid).map_err(io_err(parsed, "set the owner"))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
        .map_err(io_err(parsed, "set the mode"))?;
    for (name, value) in &meta.xattrs {
        xattr::set(Target::Fd(fd), name, value).map_err(io_err(parsed, "set an xattr"))?;
    }
    if times {
        set_fd_mtime(fd, meta.mtime).map_err(io_err(parsed, "set the mtime"))?;
    }
    Ok(())
}

/// The same for an entry that cannot be opened (symlink, fifo); `chmod` is
/// false for symlinks, whose mode means nothing on Linux.
fn apply_meta_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    meta: &Meta,
    parsed: &ParsedEntry,
    chmod: bool,
) -> Result<(), UnpackError> {
    let (uid, gid) = owner(meta);
    rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(io_err(parsed, "set the owner"))?;
    if chmod {
        // Safe to follow: the entry was just created by us as a fifo, in a
        // directory nothing else writes to during the unpack.
        rustix::fs::chmodat(dir, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
            .map_err(io_err(parsed, "set the mode"))?;
    }
    for (xname, value) in &meta.xattrs {
        xattr::set(Target::At(dir, name), xname, value).map_err(io_err(parsed, "set an xattr"))?;
    }
    rustix::fs::utimensat(
        dir,
        name,
        &timestamps(meta.mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io_err(parsed, "set the mtime"))
}
