//! Rewriting an arbitrary rootfs tarball into a canonical layer tar.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use crate::entry::{self, EntryPath, Kind, ParsedEntry, display};
use crate::tar_writer::{CopyError, EntryHeader, EntryKind, TarWriter};
use crate::unpack::{Refusal, UnpackError};

/// What a normalize wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NormalizeStats {
    /// Tar entries written.
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Whiteouts and opaque markers written.
    pub whiteouts: u64,
    /// Device nodes under `dev/` that were dropped.
    pub dropped_devices: u64,
}

/// Rewrites the uncompressed tarball `input` (for example `tar -C rootfs -c .`:
/// `./` prefixes, GNU or PAX long names, any header flavour) into a canonical
/// layer tar on `out`: the names [`crate::pack::pack_dir`] would write (no `./`,
/// directories ending in `/`, the root entry left out), numeric owners,
/// whole-second mtimes, xattrs sorted by name, PAX where needed.
///
/// Entries keep their order. The refusal rules of [`crate::unpack::unpack`]
/// apply, checked by tracking the names seen so far instead of a destination,
/// so whatever this accepts unpacks.
pub fn normalize<R: Read, W: Write>(input: R, out: W) -> Result<NormalizeStats, UnpackError> {
    let write = |source| UnpackError::Write { source };
    let mut writer = TarWriter::new(out);
    let mut seen = Seen::default();
    let mut stats = NormalizeStats::default();
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(|source| UnpackError::Archive { source })?;
    for raw in entries {
        let mut raw = raw.map_err(|source| UnpackError::Archive { source })?;
        let mut parsed = entry::parse(&mut raw)?;
        parsed.meta.xattrs.sort();
        let (kind, link, size) = match &parsed.kind {
            Kind::Ignored => continue,
            Kind::DroppedDevice => {
                stats.dropped_devices += 1;
                continue;
            }
            // The layer root's metadata is the runtime's business, as with pack_dir.
            Kind::Dir if parsed.path.is_root() => continue,
            Kind::Dir => {
                seen.parent(&parsed)?;
                seen.record(&parsed.path, Node::Dir);
                (EntryKind::Dir, Vec::new(), 0)
            }
            Kind::File { size } => {
                seen.parent(&parsed)?;
                seen.record(&parsed.path, Node::Other);
                (EntryKind::File, Vec::new(), *size)
            }
            Kind::Symlink { target } => {
                seen.parent(&parsed)?;
                seen.record(&parsed.path, Node::Symlink);
                (EntryKind::Symlink, target.clone(), 0)
            }
            Kind::Fifo => {
                seen.parent(&parsed)?;
                seen.record(&parsed.path, Node::Other);
                (EntryKind::Fifo, Vec::new(), 0)
            }
            // A link to itself changes nothing; unpack ignores it too.
            Kind::HardLink { target } if target == &parsed.path => continue,
            Kind::HardLink { target } => {
                let node = seen.link_target(&parsed, target)?;
                seen.parent(&parsed)?;
                seen.record(&parsed.path, node);
                (EntryKind::HardLink, target.to_tar_name(false), 0)
            }
            Kind::Whiteout { hidden } => {
                seen.parent(&parsed)?;
                let mut components = parsed.path.parent().to_vec();
                components.push(hidden.clone());
                seen.whiteout(&EntryPath::from_components(components));
                stats.whiteouts += 1;
                (EntryKind::File, Vec::new(), 0)
            }
            Kind::Opaque => {
                seen.parent(&parsed)?;
                stats.whiteouts += 1;
                (EntryKind::File, Vec::new(), 0)
            }
        };
        let name = parsed.path.to_tar_name(kind == EntryKind::Dir);
        let header = EntryHeader {
            name: &name,
            kind,
            link: &link,
            mode: parsed.meta.mode,
            uid: parsed.meta.uid,
            gid: parsed.meta.gid,
            mtime: parsed.meta.mtime.secs,
            size,
            xattrs: &parsed.meta.xattrs,
        };
        writer.append_header(&header).map_err(write)?;
        if size > 0 {
            let read = writer.write_content(&mut raw, size).map_err(|e| match e {
                CopyError::Read(source) => UnpackError::Archive { source },
                CopyError::Write(source) => UnpackError::Write { source },
            })?;
            if read != size {
                let source = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "archive ends inside the entry's data",
                );
                return Err(UnpackError::Archive { source });
            }
            stats.bytes += size;
        }
        stats.entries += 1;
    }
    writer.finish().map_err(write)?;
    Ok(stats)
}

/// What a path is in the layer as written so far, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    Symlink,
    Whiteout,
    /// A regular file or a fifo.
    Other,
}

/// The layer's tree as the entries so far would unpack it, by joined path.
#[derive(Debug, Default)]
struct Seen(BTreeMap<Vec<u8>, Node>);

impl Seen {
    /// Checks the entry's parent directories the way unpack walks them, and
    /// records the ones unpack would create.
    fn parent(&mut self, parsed: &ParsedEntry) -> Result<(), UnpackError> {
        let parent = parsed.path.parent();
        for i in 1..=parent.len() {
            let key = entry::join(&parent[..i]);
            match self.0.get(&key) {
                Some(Node::Dir) => {}
                Some(Node::Symlink) => {
                    let parent = display(&parent[..i]);
                    return Err(parsed.refuse(Refusal::SymlinkParent { parent }));
                }
                Some(Node::Other) => {
                    let parent = display(&parent[..i]);
                    return Err(parsed.refuse(Refusal::NotDirectoryParent { parent }));
                }
                Some(Node::Whiteout) | None => {
                    self.0.insert(key, Node::Dir);
                }
            }
        }
        Ok(())
    }

    /// Records `path` as `node`; replacing a directory drops what was under it.
    fn record(&mut self, path: &EntryPath, node: Node) {
        let key = entry::join(path.components());
        if node != Node::Dir && self.0.get(&key) == Some(&Node::Dir) {
            let mut low = key.clone();
            low.push(b'/');
            let mut high = key.clone();
            high.push(b'/' + 1);
            let under: Vec<Vec<u8>> = self.0.range(low..high).map(|(k, _)| k.clone()).collect();
            for k in under {
                self.0.remove(&k);
            }
        }
        self.0.insert(key, node);
    }

    /// A whiteout only marks what this layer does not have itself.
    fn whiteout(&mut self, hidden: &EntryPath) {
        self.0
            .entry(entry::join(hidden.components()))
            .or_insert(Node::Whiteout);
    }

    /// Checks a hard link target as unpack would, returning what it is.
    fn link_target(&self, parsed: &ParsedEntry, target: &EntryPath) -> Result<Node, UnpackError> {
        let shown = display(target.components());
        let parent = target.parent();
        for i in 1..=parent.len() {
            match self.0.get(&entry::join(&parent[..i])) {
                Some(Node::Dir) => {}
                Some(Node::Symlink) => {
                    let through = display(&parent[..i]);
                    return Err(parsed.refuse(Refusal::HardLinkThroughSymlink {
                        target: shown,
                        through,
                    }));
                }
                _ => return Err(parsed.refuse(Refusal::HardLinkTargetMissing { target: shown })),
            }
        }
        match self.0.get(&entry::join(target.components())) {
            Some(Node::Dir) => Err(parsed.refuse(Refusal::HardLinkToDirectory { target: shown })),
            Some(node @ (Node::Symlink | Node::Other)) => Ok(*node),
            Some(Node::Whiteout) | None => {
                Err(parsed.refuse(Refusal::HardLinkTargetMissing { target: shown }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tar::TarBuilder;

    fn names(tar: &[u8]) -> Vec<(String, Option<String>)> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned());
                (name, link)
            })
            .collect()
    }

    #[test]
    fn rewrites_names_to_the_canonical_form() {
        let input = TarBuilder::new()
            .dir("./")
            .dir("./etc")
            .file("./etc//hostname", b"box\n")
            .hardlink("./etc/hn", "./etc/hostname")
            .file("usr/bin/.wh.old", b"")
            .file("./var/.wh..wh..opq", b"")
            .build();
        let mut out = Vec::new();
        let stats = normalize(&input[..], &mut out).unwrap();
        assert_eq!(
            names(&out),
            [
                ("etc/".to_owned(), None),
                ("etc/hostname".to_owned(), None),
                ("etc/hn".to_owned(), Some("etc/hostname".to_owned())),
                ("usr/bin/.wh.old".to_owned(), None),
                ("var/.wh..wh..opq".to_owned(), None),
            ]
        );
        assert_eq!(
            stats,
            NormalizeStats {
                entries: 5,
                bytes: 4,
                whiteouts: 2,
                dropped_devices: 0
            }
        );
    }

    #[test]
    fn tracks_replaced_directories_like_unpack() {
        // "d" becomes a file, so "d/f" is gone and a link to it is refused.
        let input = TarBuilder::new()
            .file("d/f", b"")
            .file("d", b"")
            .hardlink("h", "d/f")
            .build();
        match normalize(&input[..], Vec::new()) {
            Err(UnpackError::Refused {
                entry,
                reason: Refusal::HardLinkTargetMissing { target },
            }) => {
                assert_eq!((entry.as_str(), target.as_str()), ("h", "d/f"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
