//! What the next commit of an upperdir would hold, as a listing for
//! `devbox diff`: the same walk and the same decisions as
//! [`crate::pack::pack_changes`], without reading any file.

use std::io::Read;
use std::path::Path;

pub use crate::changes::Change;
use crate::changes::{self, DirVisit, LeafKind, LeafVisit, Visitor, Walk};
use crate::ignore::IgnoreSet;
use crate::index::IndexEntry;
use crate::pack::PackError;
use crate::stat;

/// The type of a listed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
}

impl FileKind {
    fn of_mode(mode: u32) -> Option<FileKind> {
        match mode & 0o170000 {
            0o100000 => Some(FileKind::File),
            0o040000 => Some(FileKind::Dir),
            0o120000 => Some(FileKind::Symlink),
            0o010000 => Some(FileKind::Fifo),
            _ => None,
        }
    }
}

/// One line of a diff listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffItem {
    /// A path the next commit adds, changes or deletes.
    Changed {
        /// Relative to the upperdir (the devbox's root), no leading slash.
        path: Vec<u8>,
        change: Change,
        /// `None` for the deletion of a path of the image below, whose type
        /// only the image knows.
        kind: Option<FileKind>,
        /// A regular file's size (before a deletion: its size then); zero otherwise.
        size: u64,
        /// A directory made anew where the image has one: none of the
        /// image's content of it shows any more.
        replaces: bool,
    },
    /// A path the ignore rules leave out, with everything below it.
    Ignored {
        path: Vec<u8>,
        dir: bool,
        /// Entries left out, the path itself included.
        entries: u64,
        /// Bytes of the regular files among them.
        bytes: u64,
    },
}

/// Totals of a diff listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffStats {
    pub added: u64,
    pub modified: u64,
    pub deleted: u64,
    /// Bytes of the added and modified regular files: the content the commit would write.
    pub bytes: u64,
    /// Entries the ignore rules leave out, and the bytes of their regular files.
    pub ignored: u64,
    pub ignored_bytes: u64,
    /// Sockets and device nodes, which no layer carries.
    pub skipped: u64,
}

impl DiffStats {
    /// Added, modified and deleted paths: [`crate::PackStats::changes`] of
    /// the commit, had it run instead.
    pub fn changes(&self) -> u64 {
        self.added + self.modified + self.deleted
    }
}

/// Lists, in walk order, what [`crate::pack::pack_changes`] would pack from
/// `upper` against `previous` with `ignore`, handing each item to `on_item`.
/// Directories count as changed when their own metadata did (a file added
/// or removed changes its directory's times), as `pack_changes` packs them;
/// a deleted directory is one item, its content is not listed. Entries the
/// previous commit asked to recheck are listed as modified, since the commit
/// packs them again.
///
/// Errors: those of [`crate::pack::pack_changes`] that concern reading.
pub fn diff_changes(
    upper: &Path,
    previous: Option<&mut dyn Read>,
    ignore: &IgnoreSet,
    on_item: impl FnMut(DiffItem),
) -> Result<DiffStats, PackError> {
    let walk = Walk::<_, std::io::Sink> {
        overlay: true,
        ignore,
        previous,
        index: None,
    };
    let mut lister = Lister {
        on_item,
        stats: DiffStats::default(),
    };
    changes::walk(upper, walk, &mut lister)?;
    Ok(lister.stats)
}

struct Lister<F> {
    on_item: F,
    stats: DiffStats,
}

impl<F: FnMut(DiffItem)> Lister<F> {
    fn changed(&mut self, path: Vec<u8>, change: Change, kind: Option<FileKind>, size: u64) {
        match change {
            Change::Added => self.stats.added += 1,
            Change::Modified => self.stats.modified += 1,
            Change::Deleted => self.stats.deleted += 1,
        }
        if change != Change::Deleted {
            self.stats.bytes += size;
        }
        (self.on_item)(DiffItem::Changed {
            path,
            change,
            kind,
            size,
            replaces: false,
        });
    }
}

impl<F: FnMut(DiffItem)> Visitor for Lister<F> {
    fn dir(&mut self, d: &DirVisit<'_>, change: Option<Change>) -> Result<(), PackError> {
        let Some(change) = change else {
            return Ok(());
        };
        match change {
            Change::Added => self.stats.added += 1,
            _ => self.stats.modified += 1,
        }
        (self.on_item)(DiffItem::Changed {
            path: d.path.to_vec(),
            change,
            kind: Some(FileKind::Dir),
            size: 0,
            replaces: d.marker,
        });
        Ok(())
    }

    fn leaf(&mut self, l: &LeafVisit<'_>, change: Change) -> Result<bool, PackError> {
        let (kind, size) = match l.kind {
            LeafKind::File => (Some(FileKind::File), stat::size(l.st)),
            LeafKind::Symlink => (Some(FileKind::Symlink), 0),
            LeafKind::Fifo => (Some(FileKind::Fifo), 0),
            LeafKind::Whiteout => (None, 0),
        };
        self.changed(l.path.to_vec(), change, kind, size);
        Ok(true)
    }

    fn deleted(
        &mut self,
        parent: &DirVisit<'_>,
        name: &[u8],
        was: &IndexEntry,
    ) -> Result<(), PackError> {
        let mut path = parent.path.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        let kind = FileKind::of_mode(was.mode);
        let size = if kind == Some(FileKind::File) {
            was.size
        } else {
            0
        };
        self.changed(path, Change::Deleted, kind, size);
        Ok(())
    }

    fn ignored(&mut self, path: &[u8], is_dir: bool, entries: u64, bytes: u64) {
        self.stats.ignored += entries;
        self.stats.ignored_bytes += bytes;
        (self.on_item)(DiffItem::Ignored {
            path: path.to_vec(),
            dir: is_dir,
            entries,
            bytes,
        });
    }

    fn skipped(&mut self, _path: &[u8]) {
        self.stats.skipped += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::pack::pack_changes;
    use crate::watermark::Watermark;

    fn listing(upper: &Path, index: &[u8], ignore: &IgnoreSet) -> (Vec<DiffItem>, DiffStats) {
        let mut items = Vec::new();
        let mut prev = index;
        let stats = diff_changes(upper, Some(&mut prev), ignore, |i| items.push(i)).unwrap();
        (items, stats)
    }

    fn changed(path: &str, change: Change, kind: Option<FileKind>, size: u64) -> DiffItem {
        DiffItem::Changed {
            path: path.as_bytes().to_vec(),
            change,
            kind,
            size,
            replaces: false,
        }
    }

    #[test]
    fn the_listing_names_what_the_commit_would_pack() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("srv/data")).unwrap();
        fs::write(root.join("srv/data/a"), b"aaaa").unwrap();
        fs::write(root.join("srv/old"), b"old!!").unwrap();
        fs::create_dir(root.join("tmp")).unwrap();
        let st = rustix::fs::stat(root).unwrap();
        let w = Watermark::at(i64::MAX, stat::dev(&st));
        let ignore = IgnoreSet::defaults();
        let mut index = Vec::new();
        pack_changes(root, None, &ignore, w, std::io::sink(), &mut index).unwrap();

        fs::write(root.join("srv/data/a"), b"changed").unwrap();
        fs::write(root.join("srv/data/b"), b"bb").unwrap();
        fs::remove_file(root.join("srv/old")).unwrap();
        fs::write(root.join("tmp/scratch"), vec![0u8; 100]).unwrap();

        let (items, stats) = listing(root, &index, &ignore);
        assert_eq!(
            items,
            [
                changed("srv", Change::Modified, Some(FileKind::Dir), 0),
                changed("srv/data", Change::Modified, Some(FileKind::Dir), 0),
                changed("srv/data/a", Change::Modified, Some(FileKind::File), 7),
                changed("srv/data/b", Change::Added, Some(FileKind::File), 2),
                changed("srv/old", Change::Deleted, Some(FileKind::File), 5),
                DiffItem::Ignored {
                    path: b"tmp".to_vec(),
                    dir: true,
                    entries: 2,
                    bytes: 100
                },
            ]
        );
        assert_eq!((stats.added, stats.modified, stats.deleted), (1, 3, 1));
        assert_eq!(
            (stats.bytes, stats.ignored, stats.ignored_bytes),
            (9, 2, 100)
        );

        let pack = pack_changes(
            root,
            Some(&mut &index[..]),
            &ignore,
            w,
            std::io::sink(),
            std::io::sink(),
        )
        .unwrap();
        assert_eq!(pack.changes, stats.changes());
        assert_eq!(pack.bytes, stats.bytes);
        assert_eq!(
            (pack.ignored, pack.ignored_bytes),
            (stats.ignored, stats.ignored_bytes)
        );
    }
}
