//! Reading one tar entry into a checked description: its normalized path, what
//! it is (file, whiteout, dropped device, ...) and its metadata. Every rule
//! that can be decided from the tar alone is applied here, so unpacking and
//! normalizing refuse exactly the same names.

use std::io::Read;

use crate::unpack::{Refusal, UnpackError};
use crate::whiteout::{self, TarName};

/// The longest name a layer may hold: Linux's PATH_MAX. Longer names could not
/// be used inside a devbox anyway, and the bound keeps directory depth, and so
/// the work per entry, bounded.
pub(crate) const MAX_NAME_LEN: usize = 4096;

/// A relative path inside a layer, as its non-empty components, none of which
/// is `.` or `..` or contains `/` or NUL. No components means the layer root.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct EntryPath(Vec<Vec<u8>>);

impl EntryPath {
    /// Parses a tar name. Redundant slashes and `.` components are dropped, the
    /// way tar itself reads them; absolute names and `..` are refused.
    pub(crate) fn parse(raw: &[u8]) -> Result<EntryPath, Refusal> {
        if raw.is_empty() {
            return Err(Refusal::EmptyName);
        }
        if raw.contains(&0) {
            return Err(Refusal::NulByte);
        }
        if raw[0] == b'/' {
            return Err(Refusal::AbsolutePath);
        }
        let mut components = Vec::new();
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => return Err(Refusal::ParentComponent),
                c => components.push(c.to_vec()),
            }
        }
        let len = components.iter().map(|c| c.len() + 1).sum::<usize>();
        if len > MAX_NAME_LEN + 1 {
            return Err(Refusal::NameTooLong);
        }
        Ok(EntryPath(components))
    }

    pub(crate) fn from_components(components: Vec<Vec<u8>>) -> EntryPath {
        EntryPath(components)
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn components(&self) -> &[Vec<u8>] {
        &self.0
    }

    /// The components of the parent directory (empty for the root and its children).
    pub(crate) fn parent(&self) -> &[Vec<u8>] {
        match self.0.split_last() {
            Some((_, parent)) => parent,
            None => &[],
        }
    }

    /// The last component; `None` for the root.
    pub(crate) fn file_name(&self) -> Option<&[u8]> {
        self.0.last().map(Vec::as_slice)
    }

    /// Whether this path lies under the top-level `dev/` directory.
    pub(crate) fn is_under_dev(&self) -> bool {
        self.0.len() >= 2 && self.0[0] == b"dev"
    }

    /// The canonical tar name: components joined by `/`, with a trailing `/` for directories.
    pub(crate) fn to_tar_name(&self, dir: bool) -> Vec<u8> {
        let mut name = join(&self.0);
        if dir {
            name.push(b'/');
        }
        name
    }
}

/// Joins path components with `/`.
pub(crate) fn join(components: &[Vec<u8>]) -> Vec<u8> {
    components.join(&b'/')
}

/// Lossy text of a path, for messages.
pub(crate) fn display(components: &[Vec<u8>]) -> String {
    String::from_utf8_lossy(&join(components)).into_owned()
}

/// A modification time with nanoseconds (PAX headers may carry a fraction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mtime {
    pub secs: i64,
    pub nanos: u32,
}

/// The metadata of an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Mtime,
    /// Extended attributes as (name, value), in tar order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What an entry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file whose content is the entry's data.
    File {
        size: u64,
    },
    Dir,
    Symlink {
        target: Vec<u8>,
    },
    HardLink {
        target: EntryPath,
    },
    Fifo,
    /// `.wh.<hidden>` in the entry's parent directory.
    Whiteout {
        hidden: Vec<u8>,
    },
    /// `.wh..wh..opq`: the entry's parent directory is opaque.
    Opaque,
    /// A device node under `dev/`, dropped: a devbox's /dev comes from the runtime.
    DroppedDevice,
    /// Carries nothing for the tree (a global PAX header, whiteout metadata).
    Ignored,
}

#[derive(Debug, Clone)]
pub(crate) struct ParsedEntry {
    /// The name as written in the tar, for messages.
    pub name: String,
    pub path: EntryPath,
    pub kind: Kind,
    pub meta: Meta,
}

impl ParsedEntry {
    pub(crate) fn refuse(&self, reason: Refusal) -> UnpackError {
        UnpackError::Refused {
            entry: self.name.clone(),
            reason,
        }
    }
}

const SCHILY_XATTR: &[u8] = b"SCHILY.xattr.";
const GNU_SPARSE: &[u8] = b"GNU.sparse.";

/// Reads the header (and PAX records) of `entry` into a [`ParsedEntry`],
/// refusing anything that the tar alone shows to be hostile or unsupported.
/// The entry's data is left unread.
pub(crate) fn parse<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<ParsedEntry, UnpackError> {
    let raw_name = entry.path_bytes().into_owned();
    let name = String::from_utf8_lossy(&raw_name).into_owned();
    let refuse = |reason| UnpackError::Refused {
        entry: name.clone(),
        reason,
    };
    let entry_type = entry.header().entry_type();

    if entry_type.is_pax_global_extensions() {
        let path = EntryPath::default();
        return Ok(ParsedEntry {
            name,
            path,
            kind: Kind::Ignored,
            meta: Meta::default(),
        });
    }

    let path = EntryPath::parse(&raw_name).map_err(refuse)?;
    let meta = parse_meta(entry).map_err(|e| match e {
        MetaError::Refused(reason) => refuse(reason),
        MetaError::Archive(source) => UnpackError::Archive { source },
    })?;

    if let Some(file_name) = path.file_name() {
        match whiteout::classify(file_name) {
            TarName::Plain => {}
            TarName::Whiteout(hidden) => {
                let kind = Kind::Whiteout {
                    hidden: hidden.to_vec(),
                };
                return Ok(ParsedEntry {
                    name,
                    path,
                    kind,
                    meta,
                });
            }
            TarName::Opaque => {
                return Ok(ParsedEntry {
                    name,
                    path,
                    kind: Kind::Opaque,
                    meta,
                });
            }
            TarName::Meta => {
                return Ok(ParsedEntry {
                    name,
                    path,
                    kind: Kind::Ignored,
                    meta,
                });
            }
            TarName::Invalid => return Err(refuse(Refusal::InvalidWhiteout)),
        }
    }

    use tar::EntryType as T;
    let kind = match entry_type {
        // Pre-POSIX archives mark directories only by a trailing slash.
        T::Regular if raw_name.ends_with(b"/") => Kind::Dir,
        T::Regular | T::Continuous | T::GNUSparse => Kind::File { size: entry.size() },
        T::Directory => Kind::Dir,
        T::Symlink => {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            if target.is_empty() {
                return Err(refuse(Refusal::EmptySymlinkTarget));
            }
            if target.contains(&0) {
                return Err(refuse(Refusal::NulByte));
            }
            Kind::Symlink { target }
        }
        T::Link => {
            let raw = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let target = parse_link_target(&raw).map_err(refuse)?;
            // Creating the link first removes what is at its name, and so a target below it.
            let below = target.components().len() > path.components().len()
                && target.components().starts_with(path.components());
            if below {
                let target = String::from_utf8_lossy(&raw).into_owned();
                return Err(refuse(Refusal::HardLinkTargetMissing { target }));
            }
            Kind::HardLink { target }
        }
        T::Fifo => Kind::Fifo,
        T::Char | T::Block if path.is_under_dev() => Kind::DroppedDevice,
        T::Char => return Err(refuse(Refusal::DeviceNode { kind: "character" })),
        T::Block => return Err(refuse(Refusal::DeviceNode { kind: "block" })),
        other => return Err(refuse(Refusal::UnsupportedType(other.as_byte() as char))),
    };
    if path.is_root() && kind != Kind::Dir {
        return Err(refuse(Refusal::RootNotDirectory));
    }
    Ok(ParsedEntry {
        name,
        path,
        kind,
        meta,
    })
}

/// Parses a hard link target with the same rules as a name, reported as link refusals.
fn parse_link_target(raw: &[u8]) -> Result<EntryPath, Refusal> {
    let target = String::from_utf8_lossy(raw).into_owned();
    match EntryPath::parse(raw) {
        Ok(path) if path.is_root() => Err(Refusal::HardLinkToDirectory { target }),
        Ok(path) => Ok(path),
        Err(Refusal::AbsolutePath) => Err(Refusal::HardLinkAbsolute { target }),
        Err(Refusal::ParentComponent) => Err(Refusal::HardLinkEscapes { target }),
        Err(Refusal::EmptyName) => Err(Refusal::HardLinkTargetMissing { target }),
        Err(other) => Err(other),
    }
}

enum MetaError {
    Refused(Refusal),
    Archive(std::io::Error),
}

fn parse_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, MetaError> {
    let header = entry.header();
    let invalid = |field| MetaError::Refused(Refusal::InvalidHeader { field });
    let mode = header.mode().map_err(|_| invalid("mode"))? & 0o7777;
    // The tar crate has already applied PAX uid and gid records to the header.
    let uid = header.uid().map_err(|_| invalid("uid"))?;
    let gid = header.gid().map_err(|_| invalid("gid"))?;
    // Ids are 32-bit, and all ones means "unchanged" to chown, so it is no owner.
    let uid = u32::try_from(uid)
        .ok()
        .filter(|&id| id != u32::MAX)
        .ok_or_else(|| invalid("uid"))?;
    let gid = u32::try_from(gid)
        .ok()
        .filter(|&id| id != u32::MAX)
        .ok_or_else(|| invalid("gid"))?;
    let secs = header_mtime(&header.as_old().mtime).ok_or_else(|| invalid("mtime"))?;
    let mut mtime = Mtime { secs, nanos: 0 };
    let mut xattrs = Vec::new();

    if let Some(records) = entry.pax_extensions().map_err(MetaError::Archive)? {
        for record in records {
            let record = record.map_err(MetaError::Archive)?;
            let key = record.key_bytes();
            if let Some(name) = key.strip_prefix(SCHILY_XATTR) {
                let shown = String::from_utf8_lossy(name).into_owned();
                if name.is_empty() || name.contains(&0) {
                    return Err(MetaError::Refused(Refusal::InvalidXattrName {
                        name: shown,
                    }));
                }
                if whiteout::is_overlay_private_xattr(name) {
                    return Err(MetaError::Refused(Refusal::OverlayXattr { name: shown }));
                }
                xattrs.push((name.to_vec(), record.value_bytes().to_vec()));
            } else if key.starts_with(GNU_SPARSE) {
                return Err(MetaError::Refused(Refusal::PaxSparse));
            } else if key == b"mtime" {
                mtime = parse_pax_time(record.value_bytes()).ok_or_else(|| invalid("pax mtime"))?;
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// Parses a header's 12-byte mtime field: octal text, or GNU base-256 (first
/// byte 0x80 for positive values, 0xff for negative ones, which GNU tar writes
/// for times before 1970 and the tar crate does not read as negative).
fn header_mtime(field: &[u8; 12]) -> Option<i64> {
    match field[0] {
        0x80 | 0xff => {
            let mut value: i128 = if field[0] == 0xff { -1 } else { 0 };
            for &b in &field[1..] {
                value = (value << 8) | i128::from(b);
            }
            i64::try_from(value).ok()
        }
        _ => {
            let text = std::str::from_utf8(field).ok()?;
            let digits = text.trim_matches(|c: char| c == ' ' || c == '\0');
            if digits.is_empty() {
                return Some(0);
            }
            i64::from_str_radix(digits, 8).ok()
        }
    }
}

/// Parses a PAX time: decimal seconds, optionally negative, with an optional fraction.
pub(crate) fn parse_pax_time(value: &[u8]) -> Option<Mtime> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, digit) in fraction.bytes().take(9).enumerate() {
        nanos += u32::from(digit - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(if !negative {
        Mtime { secs, nanos }
    } else if nanos == 0 {
        Mtime {
            secs: -secs,
            nanos: 0,
        }
    } else {
        // -1.25 is 1.25 seconds before the epoch: -2 seconds plus 0.75.
        Mtime {
            secs: -secs - 1,
            nanos: 1_000_000_000 - nanos,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(path: &EntryPath) -> Vec<&str> {
        path.components()
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect()
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(
            comps(&EntryPath::parse(b"./etc//passwd").unwrap()),
            ["etc", "passwd"]
        );
        assert_eq!(
            comps(&EntryPath::parse(b"usr/bin/").unwrap()),
            ["usr", "bin"]
        );
        assert!(EntryPath::parse(b"./").unwrap().is_root());
        assert!(EntryPath::parse(b".").unwrap().is_root());
        let p = EntryPath::parse(b"a/b/c").unwrap();
        assert_eq!(p.to_tar_name(false), b"a/b/c");
        assert_eq!(p.to_tar_name(true), b"a/b/c/");
        assert_eq!(p.file_name(), Some(&b"c"[..]));
        assert_eq!(display(p.parent()), "a/b");
    }

    #[test]
    fn refuses_hostile_names() {
        assert_eq!(EntryPath::parse(b""), Err(Refusal::EmptyName));
        assert_eq!(EntryPath::parse(b"/etc/passwd"), Err(Refusal::AbsolutePath));
        assert_eq!(
            EntryPath::parse(b"../etc/passwd"),
            Err(Refusal::ParentComponent)
        );
        assert_eq!(
            EntryPath::parse(b"a/../../b"),
            Err(Refusal::ParentComponent)
        );
        assert_eq!(EntryPath::parse(b"a/.."), Err(Refusal::ParentComponent));
        assert_eq!(EntryPath::parse(b"a\0b"), Err(Refusal::NulByte));
        // The limit applies to the normalized name.
        let deep = "a/".repeat(2048) + "b";
        assert_eq!(EntryPath::parse(deep.as_bytes()), Err(Refusal::NameTooLong));
        assert!(EntryPath::parse(&deep.as_bytes()[..4096]).is_ok());
        assert!(EntryPath::parse(format!("./{}/", &deep[..4096]).as_bytes()).is_ok());
    }

    #[test]
    fn refuses_hostile_link_targets() {
        let target = |t: &str| t.to_owned();
        assert_eq!(
            parse_link_target(b"/etc/shadow"),
            Err(Refusal::HardLinkAbsolute {
                target: target("/etc/shadow")
            })
        );
        assert_eq!(
            parse_link_target(b"a/../../x"),
            Err(Refusal::HardLinkEscapes {
                target: target("a/../../x")
            })
        );
        assert_eq!(
            parse_link_target(b"./"),
            Err(Refusal::HardLinkToDirectory {
                target: target("./")
            })
        );
        assert_eq!(
            parse_link_target(b""),
            Err(Refusal::HardLinkTargetMissing { target: target("") })
        );
        assert!(parse_link_target(b"./usr/bin/perl").is_ok());
    }

    #[test]
    fn parses_header_mtimes() {
        let octal = |text: &str| {
            let mut field = [0u8; 12];
            field[..text.len()].copy_from_slice(text.as_bytes());
            field
        };
        assert_eq!(header_mtime(&octal("14231257000\0")), Some(0o14231257000));
        assert_eq!(header_mtime(&octal("  1750 \0")), Some(0o1750));
        assert_eq!(header_mtime(&[0; 12]), Some(0));
        assert_eq!(header_mtime(&octal("9\0")), None);
        let mut negative = [0xffu8; 12];
        negative[8..].copy_from_slice(&(-86_400i32).to_be_bytes());
        assert_eq!(header_mtime(&negative), Some(-86_400));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4..].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(header_mtime(&big), Some(1 << 40));
    }

    #[test]
    fn parses_pax_times() {
        assert_eq!(
            parse_pax_time(b"1700000000"),
            Some(Mtime {
                secs: 1_700_000_000,
                nanos: 0
            })
        );
        assert_eq!(
            parse_pax_time(b"12.5"),
            Some(Mtime {
                secs: 12,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            parse_pax_time(b"1.123456789999"),
            Some(Mtime {
                secs: 1,
                nanos: 123_456_789
            })
        );
        assert_eq!(
            parse_pax_time(b"-1.25"),
            Some(Mtime {
                secs: -2,
                nanos: 750_000_000
            })
        );
        assert_eq!(parse_pax_time(b"-3"), Some(Mtime { secs: -3, nanos: 0 }));
        for bad in [&b""[..], b"x", b"1.x", b".5", b"--1"] {
            assert_eq!(parse_pax_time(bad), None, "{bad:?}");
        }
    }
}
