//! Safe navigation of the destination tree. Every path is walked one component
//! at a time from the layer directory's descriptor, opening each directory with
//! `O_NOFOLLOW | O_DIRECTORY`: a symlink anywhere in a path is reported, never
//! followed, so nothing the tar says can reach outside the layer directory.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::entry::display;
use crate::whiteout;
use crate::xattr::{self, Target};

/// Mode of directories created only because an entry needs them as parents.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// The result of walking a directory path.
#[derive(Debug)]
pub(crate) enum Lookup {
    Dir(Rc<OwnedFd>),
    /// The component path (shown as text) that is a symlink.
    Symlink(String),
    /// The component path that exists but is neither a directory nor a symlink.
    NotDir(String),
    /// The component path that does not exist.
    Missing(String),
}

/// The destination layer directory, with the most recently used parent
/// directory kept open, since consecutive tar entries usually share it.
#[derive(Debug)]
pub(crate) struct Tree {
    root: Rc<OwnedFd>,
    cached: Option<(Vec<Vec<u8>>, Rc<OwnedFd>)>,
}

impl Tree {
    pub(crate) fn open(dest: &Path) -> io::Result<Tree> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::openat(CWD, dest, flags, Mode::empty())?;
        Ok(Tree {
            root: Rc::new(root),
            cached: None,
        })
    }

    pub(crate) fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    pub(crate) fn root_fd(&self) -> Rc<OwnedFd> {
        self.root.clone()
    }

    /// Forgets the cached directory; called whenever a directory is removed.
    pub(crate) fn invalidate(&mut self) {
        self.cached = None;
    }

    /// Opens the directory at `components`. With `create`, missing directories
    /// are made (mode 0755, like tar's implicit parents), and a whiteout in the
    /// way becomes an opaque directory: the lower one is deleted, this layer's is new.
    pub(crate) fn dir(&mut self, components: &[Vec<u8>], create: bool) -> io::Result<Lookup> {
        if components.is_empty() {
            return Ok(Lookup::Dir(self.root.clone()));
        }
        if let Some((path, fd)) = &self.cached
            && path.as_slice() == components
        {
            return Ok(Lookup::Dir(fd.clone()));
        }
        let mut current = self.root.clone();
        for (i, name) in components.iter().enumerate() {
            let shown = || display(&components[..=i]);
            match stat_at(current.as_fd(), name)? {
                Some(st) if file_type(&st) == FileType::Directory => {}
                Some(st) if file_type(&st) == FileType::Symlink => {
                    return Ok(Lookup::Symlink(shown()));
                }
                Some(st) if create && whiteout::is_overlay_whiteout(st.st_mode, st.st_rdev) => {
                    rustix::fs::unlinkat(current.as_fd(), name.as_slice(), AtFlags::empty())?;
                    make_dir(current.as_fd(), name)?;
                    let made = open_dir_at(current.as_fd(), name)?;
                    set_opaque(made.as_fd())?;
                }
                Some(_) => return Ok(Lookup::NotDir(shown())),
                None if create => make_dir(current.as_fd(), name)?,
                None => return Ok(Lookup::Missing(shown())),
            }
            current = Rc::new(open_dir_at(current.as_fd(), name)?);
        }
        self.cached = Some((components.to_vec(), current.clone()));
        Ok(Lookup::Dir(current))
    }
}

pub(crate) fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// `lstat` of `name` in `dir`; `None` if it does not exist.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens directory `name` in `dir` without following a symlink.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

/// Makes directory `name` in `dir` with mode 0755 whatever the umask.
fn make_dir(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(IMPLICIT_DIR_MODE))?;
    let made = open_dir_at(dir, name)?;
    rustix::fs::fchmod(&made, Mode::from_raw_mode(IMPLICIT_DIR_MODE))?;
    Ok(())
}

/// Marks an open directory opaque for overlayfs.
pub(crate) fn set_opaque(dir: BorrowedFd<'_>) -> io::Result<()> {
    xattr::set(
        Target::Fd(dir),
        whiteout::OVERLAY_OPAQUE_XATTR.as_bytes(),
        whiteout::OVERLAY_OPAQUE_VALUE,
    )
}

/// Removes `name` from `dir`, with everything below it if it is a directory.
/// Symlinks are removed, never followed. Returns whether a directory was removed.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<bool> {
    let Some(st) = stat_at(dir, name)? else {
        return Ok(false);
    };
    if file_type(&st) != FileType::Directory {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
        return Ok(false);
    }
    let sub = open_dir_at(dir, name)?;
    let mut children = Vec::new();
    for child in rustix::fs::Dir::read_from(&sub)? {
        let child = child?;
        let child_name = child.file_name().to_bytes();
        if child_name != b"." && child_name != b".." {
            children.push(child_name.to_vec());
        }
    }
    for child in children {
        remove_all(sub.as_fd(), &child)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(true)
}

/// Whether directory `dir` has no entries.
pub(crate) fn is_empty_dir(dir: BorrowedFd<'_>) -> io::Result<bool> {
    for child in rustix::fs::Dir::read_from(dir)? {
        let child = child?;
        let name = child.file_name().to_bytes();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}
