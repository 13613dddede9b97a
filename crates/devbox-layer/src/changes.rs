//! What changed in a directory since its index was taken: the one walk that
//! both packing and the diff listing run, so the two never disagree.
//!
//! The walk visits the tree depth first with names sorted, and reads the
//! previous index (stored in the same order) in lockstep, so memory stays
//! proportional to the tree's depth. Each path is `lstat`ed once; a path is
//! new or changed when it is missing from the index or any of inode, change
//! time, modification time, size, mode or owner differ, or the index asked
//! for a recheck. Paths in the index but not in the tree are deleted; only
//! the topmost deleted path is reported, since its whiteout hides the rest.
//!
//! Overlayfs rules, when `overlay` is set:
//! - a character device 0/0 is a whiteout; a whiteout already in the index is
//!   unchanged whatever its metadata (the kernel links whiteouts to a shared
//!   inode whose link count, and so change time, moves with every deletion);
//! - a directory that became opaque since the index (a directory deleted
//!   from a lower layer and made again) gets an opaque marker, and everything
//!   below it counts as new: the marker hides every older layer, the devbox's
//!   own earlier commits included. A directory that was already opaque, with
//!   the same inode, gets no marker again, or it would hide those commits.

mod previous;

use std::io::{self, Read, Write};
use std::iter::Peekable;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::ignore::IgnoreSet;
use crate::index::{IndexEntry, IndexError, IndexHeader, IndexReader, IndexWriter, cmp_paths};
use crate::pack::PackError;
use crate::stat;
use crate::watermark::Watermark;
use crate::whiteout;
use crate::xattr::{self, Target};
use previous::Previous;

/// How an entry differs from the previous index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// Not in the previous index (or a whiteout there).
    Added,
    /// In the previous index, with other metadata (or content, or type).
    Modified,
    /// In the previous index and gone, or a new whiteout.
    Deleted,
}

/// A directory as the walk hands it to a visitor.
pub(crate) struct DirVisit<'a> {
    pub fd: BorrowedFd<'a>,
    /// Relative path without a trailing slash.
    pub path: &'a [u8],
    pub st: &'a Stat,
    /// Whether the directory gets an opaque marker in this layer.
    pub marker: bool,
}

/// What a non-directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeafKind {
    File,
    Symlink,
    Fifo,
    Whiteout,
}

/// A non-directory as the walk hands it to a visitor.
pub(crate) struct LeafVisit<'a> {
    /// The directory holding it, and its name there.
    pub dir: BorrowedFd<'a>,
    pub name: &'a [u8],
    pub path: &'a [u8],
    pub st: &'a Stat,
    pub kind: LeafKind,
}

/// What the walk reports to: the tar writer, or the diff listing.
pub(crate) trait Visitor {
    /// A new or changed directory (`change` is `Some`), or an unchanged one
    /// that is the parent of something reported after it (`None`). Parents
    /// always come before their content.
    fn dir(&mut self, d: &DirVisit<'_>, change: Option<Change>) -> Result<(), PackError>;
    /// A new or changed non-directory; a whiteout comes as [`Change::Deleted`].
    /// Returns false if the entry vanished before it could be read.
    fn leaf(&mut self, l: &LeafVisit<'_>, change: Change) -> Result<bool, PackError>;
    /// `name` in directory `parent` is in the previous index and gone now.
    fn deleted(
        &mut self,
        parent: &DirVisit<'_>,
        name: &[u8],
        was: &IndexEntry,
    ) -> Result<(), PackError>;
    /// `path` and all below it is left out by the ignore rules.
    fn ignored(&mut self, path: &[u8], is_dir: bool, entries: u64, bytes: u64);
    /// A socket or device node, which no layer carries.
    fn skipped(&mut self, path: &[u8]);
}

/// The inputs of a walk besides the tree.
pub(crate) struct Walk<'a, P, I> {
    pub overlay: bool,
    pub ignore: &'a IgnoreSet,
    /// The index of the tree at the previous commit; `None`: everything is new.
    pub previous: Option<P>,
    /// Where to write the tree's new index, and the watermark its entries
    /// are judged by.
    pub index: Option<(I, Watermark)>,
}

/// A directory being walked.
struct Frame {
    fd: OwnedFd,
    path: Vec<u8>,
    st: Stat,
    names: Peekable<std::vec::IntoIter<Vec<u8>>>,
    /// Already handed to the visitor (the root never is: it is no entry).
    announced: bool,
    /// Below a new opaque marker: nothing older shows, everything is new.
    fresh: bool,
}

impl Frame {
    fn visit(&self, marker: bool) -> DirVisit<'_> {
        DirVisit {
            fd: self.fd.as_fd(),
            path: &self.path,
            st: &self.st,
            marker,
        }
    }
}

struct Walker<'a, 'v, V, P: Read, I: Write> {
    overlay: bool,
    ignore: &'a IgnoreSet,
    previous: Previous<P>,
    index: Option<IndexWriter<I>>,
    watermark: Option<Watermark>,
    visitor: &'v mut V,
    stack: Vec<Frame>,
}

/// Walks `src` against the previous index, reporting every change to `visitor`.
pub(crate) fn walk<V: Visitor, P: Read, I: Write>(
    src: &Path,
    w: Walk<'_, P, I>,
    visitor: &mut V,
) -> Result<(), PackError> {
    let source = |source| PackError::Source {
        path: src.to_path_buf(),
        source,
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root = rustix::fs::openat(CWD, src, flags, Mode::empty()).map_err(|e| source(e.into()))?;
    let st = rustix::fs::fstat(&root).map_err(|e| source(e.into()))?;
    let names = list_dir(root.as_fd()).map_err(source)?;

    let index_err = |source| PackError::Index {
        path: src.to_path_buf(),
        source,
    };
    let reader = match w.previous {
        Some(r) => {
            let reader = IndexReader::new(r).map_err(index_err)?;
            let found = stat::ino(&st);
            if reader.header().root_ino != found {
                return Err(PackError::IndexOfAnotherDirectory {
                    path: src.to_path_buf(),
                    expected: reader.header().root_ino,
                    found,
                });
            }
            Some(reader)
        }
        None => None,
    };
    let (index, watermark) = match w.index {
        Some((out, watermark)) => {
            if watermark.dev() != stat::dev(&st) {
                return Err(PackError::WatermarkElsewhere {
                    path: src.to_path_buf(),
                });
            }
            let header = IndexHeader {
                root_ino: stat::ino(&st),
                watermark_ns: watermark.as_nanos(),
            };
            let writer = IndexWriter::new(out, header).map_err(index_err)?;
            (Some(writer), Some(watermark))
        }
        None => (None, None),
    };

    let mut walker = Walker {
        overlay: w.overlay,
        ignore: w.ignore,
        previous: Previous::new(reader),
        index,
        watermark,
        visitor,
        stack: vec![Frame {
            fd: root,
            path: Vec::new(),
            st,
            names: names.into_iter().peekable(),
            announced: true,
            fresh: false,
        }],
    };
    walker.run().map_err(|e| match e {
        Failure::Pack(e) => e,
        Failure::Index(source) => index_err(source),
    })?;
    if let Some(index) = walker.index {
        index.finish().map_err(index_err)?;
    }
    Ok(())
}

/// An error of the walk: the pack's own, or one of either index (which the
/// caller names with the tree's path).
enum Failure {
    Pack(PackError),
    Index(IndexError),
}

impl From<PackError> for Failure {
    fn from(e: PackError) -> Self {
        Failure::Pack(e)
    }
}

impl From<IndexError> for Failure {
    fn from(e: IndexError) -> Self {
        Failure::Index(e)
    }
}

/// The next thing to do in the innermost directory.
enum Step {
    /// The directory is done.
    Pop,
    /// The next name of the tree, and whether the index has it too.
    Current { in_index: bool },
    /// The next index entry below the directory is gone from the tree.
    Gone,
}

impl<V: Visitor, P: Read, I: Write> Walker<'_, '_, V, P, I> {
    fn run(&mut self) -> Result<(), Failure> {
        while !self.stack.is_empty() {
            match self.step()? {
                Step::Pop => {
                    self.stack.pop();
                }
                Step::Current { in_index } => {
                    let top = self.stack.last_mut().expect("a frame");
                    let name = top.names.next().expect("a name");
                    let was = if in_index {
                        self.previous.take()?
                    } else {
                        None
                    };
                    self.current(name, was)?;
                }
                Step::Gone => {
                    let entry = self.previous.take()?.expect("an entry");
                    self.gone_entry(entry)?;
                }
            }
        }
        Ok(())
    }

    fn step(&mut self) -> Result<Step, Failure> {
        let top = self.stack.last().expect("a frame");
        let head = self
            .previous
            .peek()?
            .filter(|e| is_below(&e.path, &top.path));
        let top = self.stack.last_mut().expect("a frame");
        Ok(match (top.names.peek(), head) {
            (None, None) => Step::Pop,
            (None, Some(_)) => Step::Gone,
            (Some(_), None) => Step::Current { in_index: false },
            (Some(name), Some(entry)) => match cmp_paths(&join(&top.path, name), &entry.path) {
                std::cmp::Ordering::Less => Step::Current { in_index: false },
                std::cmp::Ordering::Equal => Step::Current { in_index: true },
                std::cmp::Ordering::Greater => Step::Gone,
            },
        })
    }

    fn top(&self) -> &Frame {
        self.stack.last().expect("a frame")
    }

    fn racy(&self, st: &Stat) -> bool {
        self.watermark
            .is_some_and(|w| stat::ctime_ns(st) >= w.as_nanos())
    }

    fn record(&mut self, entry: &IndexEntry) -> Result<(), Failure> {
        if let Some(index) = &mut self.index {
            index.push(entry)?;
        }
        Ok(())
    }

    /// Hands every directory on the stack not yet announced to the visitor,
    /// outermost first, so whatever comes next has its parents in the layer.
    fn announce(&mut self, upto: usize) -> Result<(), Failure> {
        for i in 0..upto {
            if !self.stack[i].announced {
                self.visitor.dir(&self.stack[i].visit(false), None)?;
                self.stack[i].announced = true;
            }
        }
        Ok(())
    }

    /// An index entry below the current directory that the tree lacks:
    /// the index entry of a direct child, or a deeper one whose ancestors
    /// the index lacks (then that ancestor is what is gone).
    fn gone_entry(&mut self, entry: IndexEntry) -> Result<(), Failure> {
        let start = match self.top().path.len() {
            0 => 0,
            n => n + 1,
        };
        let rest = &entry.path[start..];
        let name = rest.split(|&b| b == b'/').next().unwrap_or(rest).to_vec();
        if name.len() == rest.len() {
            self.gone(name, Some(entry))
        } else {
            // The entry is deeper than its missing parent: keep it for the parent's sake.
            let path = join(&self.top().path, &name);
            if self.ignore.is_ignored(&path, true) {
                self.record(&entry)?;
            }
            self.gone(name, None)
        }
    }

    /// `name` in the current directory is absent from the tree; `was` is
    /// its index entry, if the index has one (a directory otherwise).
    fn gone(&mut self, name: Vec<u8>, was: Option<IndexEntry>) -> Result<(), Failure> {
        let path = join(&self.top().path, &name);
        let is_dir = was.as_ref().is_none_or(IndexEntry::is_dir);
        if self.ignore.is_ignored(&path, is_dir) {
            // Ignored paths are never whited out: the index keeps them as they were.
            if let Some(was) = &was {
                self.record(was)?;
            }
            return Ok(self.previous.carry_below(&path, &mut self.index)?);
        }
        // A whiteout that vanished cannot be undone by a layer: nothing to write.
        if !was.as_ref().is_some_and(|w| w.whiteout) {
            let was = was.unwrap_or_else(|| IndexEntry {
                path: path.clone(),
                mode: 0o040000,
                ..IndexEntry::default()
            });
            self.announce(self.stack.len())?;
            let parent = self.stack.last().expect("a frame").visit(false);
            self.visitor.deleted(&parent, &name, &was)?;
        }
        Ok(self.previous.skip_below(&path)?)
    }

    /// The next name of the tree in the current directory, with its index
    /// entry if it has one.
    fn current(&mut self, name: Vec<u8>, was: Option<IndexEntry>) -> Result<(), Failure> {
        let path = join(&self.top().path, &name);
        let st =
            match rustix::fs::statat(self.top().fd.as_fd(), &name[..], AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Listed and removed since: it is gone.
                Err(Errno::NOENT) => return self.vanished(name, was),
                Err(e) => return Err(io_err(&path, "inspect the entry", e.into()).into()),
            };
        let ftype = FileType::from_raw_mode(st.st_mode);
        let is_dir = ftype == FileType::Directory;
        let whiteout = self.overlay && ftype == FileType::CharacterDevice && st.st_rdev == 0;
        // What a whiteout deleted was likely a directory: `build/` keeps it too.
        if self.ignore.is_ignored(&path, is_dir || whiteout) {
            let (entries, bytes) = if is_dir {
                count_tree(self.top().fd.as_fd(), &name, &path)?
            } else {
                let bytes = if ftype == FileType::RegularFile {
                    stat::size(&st)
                } else {
                    0
                };
                (1, bytes)
            };
            self.visitor.ignored(&path, is_dir, entries, bytes);
            if let Some(was) = &was {
                self.record(was)?;
            }
            return Ok(self.previous.carry_below(&path, &mut self.index)?);
        }
        let kind = match ftype {
            FileType::Directory => return self.directory(name, path, st, was),
            FileType::RegularFile => LeafKind::File,
            FileType::Symlink => LeafKind::Symlink,
            FileType::Fifo => LeafKind::Fifo,
            FileType::CharacterDevice if whiteout => LeafKind::Whiteout,
            _ => {
                self.visitor.skipped(&path);
                // What the index had here is gone from any layer's point of view.
                return self.vanished(name, was);
            }
        };
        self.leaf(name, path, st, kind, was)
    }

    /// The entry disappeared between the listing and its `lstat` (or became
    /// something no layer carries): gone, if the index had it.
    fn vanished(&mut self, name: Vec<u8>, was: Option<IndexEntry>) -> Result<(), Failure> {
        match was {
            Some(was) => self.gone(name, Some(was)),
            None => Ok(()),
        }
    }

    fn leaf(
        &mut self,
        name: Vec<u8>,
        path: Vec<u8>,
        st: Stat,
        kind: LeafKind,
        was: Option<IndexEntry>,
    ) -> Result<(), Failure> {
        let whiteout = kind == LeafKind::Whiteout;
        let fresh = self.top().fresh;
        let change = decide(was.as_ref().filter(|_| !fresh), &st, whiteout, false);
        // A non-directory hides whatever the index had below the same name.
        self.previous.skip_below(&path)?;
        let mut written = true;
        if let Some(change) = change {
            self.announce(self.stack.len())?;
            let top = self.stack.last().expect("a frame");
            let visit = LeafVisit {
                dir: top.fd.as_fd(),
                name: &name,
                path: &path,
                st: &st,
                kind,
            };
            written = self.visitor.leaf(&visit, change)?;
        }
        let recheck = !whiteout && (!written || self.racy(&st));
        let entry = entry_of(path, &st, whiteout, false, recheck);
        self.record(&entry)
    }

    fn directory(
        &mut self,
        name: Vec<u8>,
        path: Vec<u8>,
        lst: Stat,
        was: Option<IndexEntry>,
    ) -> Result<(), Failure> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(self.top().fd.as_fd(), &name[..], flags, Mode::empty()) {
            Ok(fd) => fd,
            // Removed or replaced since its lstat: record it for a recheck
            // and keep what the index had below it, which nobody looked at.
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {
                self.record(&entry_of(path.clone(), &lst, false, false, true))?;
                return Ok(self.previous.carry_below(&path, &mut self.index)?);
            }
            Err(e) => return Err(io_err(&path, "open the directory", e.into()).into()),
        };
        let st =
            rustix::fs::fstat(&fd).map_err(|e| io_err(&path, "inspect the directory", e.into()))?;
        let opaque = self.overlay && is_opaque(fd.as_fd(), &path)?;
        let fresh_parent = self.top().fresh;
        let was = was.filter(|_| !fresh_parent);
        let kept_opaque = was
            .as_ref()
            .is_some_and(|w| w.is_dir() && w.opaque && !w.whiteout && w.ino == stat::ino(&st));
        let marker = opaque && !kept_opaque;
        let change = if marker {
            Some(match &was {
                Some(w) if !w.whiteout => Change::Modified,
                _ => Change::Added,
            })
        } else {
            decide(was.as_ref(), &st, false, opaque)
        };
        if marker {
            self.previous.skip_below(&path)?;
        }
        let entry = entry_of(path.clone(), &st, false, opaque, self.racy(&st));
        self.record(&entry)?;
        let names = list_dir(fd.as_fd()).map_err(|e| io_err(&path, "list the directory", e))?;
        self.stack.push(Frame {
            fd,
            path,
            st,
            names: names.into_iter().peekable(),
            announced: false,
            fresh: fresh_parent || marker,
        });
        if let Some(change) = change {
            let depth = self.stack.len();
            self.announce(depth - 1)?;
            self.visitor
                .dir(&self.stack[depth - 1].visit(marker), Some(change))?;
            self.stack[depth - 1].announced = true;
        }
        Ok(())
    }
}

/// The change of an entry against its index entry `was`.
fn decide(was: Option<&IndexEntry>, st: &Stat, whiteout: bool, opaque: bool) -> Option<Change> {
    let Some(was) = was else {
        return Some(if whiteout {
            Change::Deleted
        } else {
            Change::Added
        });
    };
    match (was.whiteout, whiteout) {
        (true, true) => None,
        (false, true) => Some(Change::Deleted),
        (true, false) => Some(Change::Added),
        (false, false) => {
            let same = was.ino == stat::ino(st)
                && was.ctime_ns == stat::ctime_ns(st)
                && was.mtime_ns == stat::mtime_ns(st)
                && was.size == stat::size(st)
                && was.mode == st.st_mode
                && was.uid == st.st_uid
                && was.gid == st.st_gid
                && was.opaque == opaque;
            (!same || was.recheck).then_some(Change::Modified)
        }
    }
}

fn entry_of(path: Vec<u8>, st: &Stat, whiteout: bool, opaque: bool, recheck: bool) -> IndexEntry {
    IndexEntry {
        path,
        ino: stat::ino(st),
        ctime_ns: stat::ctime_ns(st),
        mtime_ns: stat::mtime_ns(st),
        size: stat::size(st),
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        nlink: stat::nlink(st),
        whiteout,
        opaque,
        recheck,
    }
}

/// Whether a directory carries `trusted.overlay.opaque=y`.
fn is_opaque(fd: BorrowedFd<'_>, path: &[u8]) -> Result<bool, PackError> {
    let name = whiteout::OVERLAY_OPAQUE_XATTR.as_bytes();
    match xattr::get(Target::Fd(fd), name) {
        Ok(value) => Ok(value.as_deref() == Some(whiteout::OVERLAY_OPAQUE_VALUE)),
        Err(e) if e.raw_os_error() == Some(Errno::OPNOTSUPP.raw_os_error()) => Ok(false),
        Err(e) => Err(io_err(path, "read the opaque xattr", e)),
    }
}

/// Counts the entries of the tree `name` in `dir` (itself included) and
/// the bytes of its regular files, without reading any of them.
fn count_tree(dir: BorrowedFd<'_>, name: &[u8], path: &[u8]) -> Result<(u64, u64), PackError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = |dir: BorrowedFd<'_>, name: &[u8]| match rustix::fs::openat(
        dir,
        name,
        flags,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok(None),
        Err(e) => Err(io_err(path, "open an ignored directory", e.into())),
    };
    let (mut entries, mut bytes) = (1, 0);
    let Some(top) = open(dir, name)? else {
        return Ok((entries, bytes));
    };
    let mut stack = vec![top];
    while let Some(fd) = stack.pop() {
        let names =
            list_dir(fd.as_fd()).map_err(|e| io_err(path, "list an ignored directory", e))?;
        for child in names {
            let st = match rustix::fs::statat(&fd, &child[..], AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(io_err(path, "inspect an ignored entry", e.into())),
            };
            entries += 1;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => bytes += stat::size(&st),
                FileType::Directory => stack.extend(open(fd.as_fd(), &child)?),
                _ => {}
            }
        }
    }
    Ok((entries, bytes))
}

/// Whether `path` lies strictly below `dir` (everything is below the root, `""`).
fn is_below(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || (path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/')
}

/// `dir/name`, or `name` at the root.
fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        path.extend_from_slice(dir);
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// The names in a directory, sorted bytewise, without `.` and `..`.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
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

pub(crate) fn lossy(rel: &[u8]) -> String {
    String::from_utf8_lossy(rel).into_owned()
}

pub(crate) fn io_err(rel: &[u8], action: &'static str, source: io::Error) -> PackError {
    PackError::Io {
        entry: lossy(rel),
        action,
        source,
    }
}

#[cfg(test)]
mod tests;
