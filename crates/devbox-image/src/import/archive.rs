//! Random access to the members of an uncompressed tar file: one pass
//! records where each member's data starts, then members are read in place
//! without extracting anything to disk.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::detect::clean;
use crate::ImageError;
use crate::origin::Origin;

/// How many links are followed when resolving a member name.
const MAX_LINKS: usize = 8;

#[derive(Debug, Clone)]
enum Member {
    File {
        offset: u64,
        size: u64,
    },
    /// A symlink (relative to the member's directory) or a hard link
    /// (relative to the archive root).
    Link {
        target: String,
        hard: bool,
    },
}

/// An index of a tar file's regular files and links.
#[derive(Debug)]
pub struct TarIndex {
    path: PathBuf,
    /// What the user sent, for messages.
    origin: Origin,
    members: HashMap<String, Member>,
}

impl TarIndex {
    /// Reads the tar's headers (blocking). Later entries of the same name
    /// replace earlier ones, as extraction would.
    pub fn build(path: &Path, origin: Origin) -> Result<Self, ImageError> {
        let bad = |e: std::io::Error| ImageError::archive(&origin, format!("cannot read tar: {e}"));
        let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = clean(&entry.path().map_err(bad)?.to_string_lossy()).to_owned();
            let kind = entry.header().entry_type();
            let member = match kind {
                EntryType::Regular | EntryType::Continuous => Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                EntryType::Symlink | EntryType::Link => {
                    let target = entry
                        .link_name()
                        .map_err(bad)?
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    Member::Link {
                        target,
                        hard: kind == EntryType::Link,
                    }
                }
                _ => continue,
            };
            members.insert(name, member);
        }
        Ok(Self {
            path: path.to_owned(),
            origin,
            members,
        })
    }

    /// The tar file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the user sent.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Offset and size of a member's data, following links.
    pub fn locate(&self, name: &str) -> Result<(u64, u64), ImageError> {
        let mut name = clean(name).to_owned();
        for _ in 0..=MAX_LINKS {
            match self.members.get(&name) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link { target, hard }) => {
                    let base = if *hard {
                        ""
                    } else {
                        name.rsplit_once('/').map_or("", |(dir, _)| dir)
                    };
                    name = join(base, target).ok_or_else(|| {
                        ImageError::archive(
                            &self.origin,
                            format!("link {name} points outside the archive"),
                        )
                    })?;
                }
                None => {
                    return Err(ImageError::archive(
                        &self.origin,
                        format!("{name} is missing"),
                    ));
                }
            }
        }
        Err(ImageError::archive(
            &self.origin,
            format!("too many links resolving {name}"),
        ))
    }

    /// A reader over a member's data (blocking).
    pub fn open(&self, name: &str) -> Result<(std::io::Take<File>, u64), ImageError> {
        let (offset, size) = self.locate(name)?;
        let mut f = File::open(&self.path).map_err(|e| ImageError::io(&self.path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| ImageError::io(&self.path, e))?;
        Ok((f.take(size), size))
    }

    /// A whole member, refusing members larger than `max` (blocking).
    pub fn read(&self, name: &str, max: u64) -> Result<Vec<u8>, ImageError> {
        let (mut r, size) = self.open(name)?;
        if size > max {
            return Err(ImageError::archive(
                &self.origin,
                format!("{name} is {size} bytes, more than the limit of {max}"),
            ));
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.read_to_end(&mut buf)
            .map_err(|e| ImageError::io(&self.path, e))?;
        if buf.len() as u64 != size {
            return Err(ImageError::archive(
                &self.origin,
                format!("{name} is truncated"),
            ));
        }
        Ok(buf)
    }
}

/// Joins a link target to its base directory lexically; `None` when the
/// result would leave the archive root.
fn join(base: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        base.split('/').filter(|p| !p.is_empty()).collect()
    };
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Name, file content or link (target and kind).
    type TestEntry<'a> = (&'a str, Option<&'a [u8]>, Option<(&'a str, EntryType)>);

    fn tar_with(entries: &[TestEntry<'_>]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(f.reopen().unwrap());
        for (name, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            match (data, link) {
                (Some(d), _) => {
                    h.set_size(d.len() as u64);
                    h.set_entry_type(EntryType::Regular);
                    b.append_data(&mut h, name, *d).unwrap();
                }
                (None, Some((target, kind))) => {
                    h.set_size(0);
                    h.set_entry_type(*kind);
                    b.append_link(&mut h, name, target).unwrap();
                }
                _ => unreachable!(),
            }
        }
        b.into_inner().unwrap();
        f
    }

    #[test]
    fn members_are_read_in_place_through_links() {
        let f = tar_with(&[
            ("./a/layer.tar", Some(b"hello"), None),
            (
                "b/layer.tar",
                None,
                Some(("../a/layer.tar", EntryType::Symlink)),
            ),
            ("c.tar", None, Some(("a/layer.tar", EntryType::Link))),
            ("big", Some(&[7u8; 2000]), None),
        ]);
        let idx = TarIndex::build(f.path(), Origin::default()).unwrap();
        assert_eq!(idx.read("a/layer.tar", 100).unwrap(), b"hello");
        assert_eq!(idx.read("b/layer.tar", 100).unwrap(), b"hello");
        assert_eq!(idx.read("./c.tar", 100).unwrap(), b"hello");
        assert_eq!(idx.read("big", 4096).unwrap(), vec![7u8; 2000]);
        assert!(
            idx.read("big", 100)
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
        assert!(
            idx.locate("missing")
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
    }

    #[test]
    fn links_cannot_leave_the_archive_or_loop() {
        let f = tar_with(&[
            ("x", None, Some(("../../etc/passwd", EntryType::Symlink))),
            ("l1", None, Some(("l2", EntryType::Symlink))),
            ("l2", None, Some(("l1", EntryType::Symlink))),
        ]);
        let idx = TarIndex::build(f.path(), Origin::default()).unwrap();
        assert!(idx.locate("x").unwrap_err().to_string().contains("outside"));
        assert!(
            idx.locate("l1")
                .unwrap_err()
                .to_string()
                .contains("too many links")
        );
    }
}
