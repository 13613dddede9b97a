//! A canonical listing of a directory tree, and its digest.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use sha2::{Digest as _, Sha256};

use crate::changes::list_dir;
use crate::digest::Digest;
use crate::stat;
use crate::whiteout::is_overlay_private_xattr;
use crate::xattr::{self, Target};

/// The sha256 of [`tree_listing`]`(root)`.
pub fn tree_digest(root: &Path) -> io::Result<Digest> {
    Ok(Digest::of(tree_listing(root)?.as_bytes()))
}

/// One line per path below `root` (not `root` itself), in walk order:
/// path, type, permission bits, owner, then a regular file's size and
/// sha256, a symlink's target or a device's numbers; each xattr on its own
/// indented line (overlay-private ones left out, since overlayfs adds and
/// reads them itself); last, one `links` line per group of paths sharing an
/// inode. Times are left out: layers keep whole seconds only, and a merged
/// overlay view shows directory times of whichever layer is on top. Bytes
/// other than printable ASCII are written `\xNN`.
pub fn tree_listing(root: &Path) -> io::Result<String> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(CWD, root, flags, Mode::empty())?;
    let mut out = String::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    list(fd.as_fd(), &mut Vec::new(), &mut out, &mut inodes)?;
    let mut groups: Vec<Vec<String>> = inodes.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    for group in groups {
        let _ = writeln!(out, "links {}", group.join(" "));
    }
    Ok(out)
}

fn list(
    dir: BorrowedFd<'_>,
    prefix: &mut Vec<u8>,
    out: &mut String,
    inodes: &mut BTreeMap<(u64, u64), Vec<String>>,
) -> io::Result<()> {
    for name in list_dir(dir)? {
        let start = prefix.len();
        if start > 0 {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(&name);
        let shown = escape(prefix);
        let st = rustix::fs::statat(dir, &name[..], AtFlags::SYMLINK_NOFOLLOW)?;
        let ftype = FileType::from_raw_mode(st.st_mode);
        let _ = write!(
            out,
            "{shown} {} {:o} {}:{}",
            type_name(ftype),
            st.st_mode & 0o7777,
            st.st_uid,
            st.st_gid
        );
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut opened = None;
        match ftype {
            FileType::RegularFile => {
                let fd = rustix::fs::openat(dir, &name[..], flags, Mode::empty())?;
                let mut hash = Sha256::new();
                let mut file = File::from(fd);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    hash.update(&buf[..n]);
                }
                let _ = write!(out, " {} {}", stat::size(&st), hex::encode(hash.finalize()));
                opened = Some(file.into());
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, &name[..], Vec::new())?;
                let _ = write!(out, " -> {}", escape(target.as_bytes()));
            }
            FileType::CharacterDevice | FileType::BlockDevice => {
                let rdev = st.st_rdev;
                let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
                let _ = write!(out, " {major}:{minor}");
            }
            FileType::Directory => {
                let flags = flags | OFlags::DIRECTORY;
                opened = Some(rustix::fs::openat(dir, &name[..], flags, Mode::empty())?);
            }
            _ => {}
        }
        out.push('\n');
        let target = match &opened {
            Some(fd) => Target::Fd(fd.as_fd()),
            None => Target::At(dir, &name[..]),
        };
        for xname in xattr::list(target)? {
            if is_overlay_private_xattr(&xname) {
                continue;
            }
            let value = xattr::get(target, &xname)?.unwrap_or_default();
            let _ = writeln!(out, "  xattr {}={}", escape(&xname), hex::encode(value));
        }
        if ftype == FileType::Directory {
            let sub = opened.expect("opened above");
            list(sub.as_fd(), prefix, out, inodes)?;
        } else {
            inodes
                .entry((stat::dev(&st), stat::ino(&st)))
                .or_default()
                .push(shown);
        }
        prefix.truncate(start);
    }
    Ok(())
}

fn type_name(ftype: FileType) -> &'static str {
    match ftype {
        FileType::RegularFile => "file",
        FileType::Directory => "dir",
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "char",
        FileType::BlockDevice => "block",
        FileType::Unknown => "unknown",
    }
}

fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'\\' {
            s.push(b as char);
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    #[test]
    fn the_listing_shows_what_makes_trees_differ() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("d/f"), b"x").unwrap();
        fs::set_permissions(root.join("d/f"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::hard_link(root.join("d/f"), root.join("g")).unwrap();
        symlink("d/f", root.join("s")).unwrap();
        fs::write(root.join("sp ace\u{1}"), b"").unwrap();
        let listing = tree_listing(root).unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 6, "{listing}");
        assert!(lines[0].starts_with("d dir 755 "), "{listing}");
        assert!(lines[1].starts_with("d/f file 640 "), "{listing}");
        assert!(lines[1].ends_with(&format!(" 1 {}", hex::encode(Sha256::digest(b"x")))));
        assert!(lines[3].starts_with("s symlink 777 ") && lines[3].ends_with(" -> d/f"));
        assert!(lines[4].starts_with("sp\\x20ace\\x01 file"), "{listing}");
        assert_eq!(lines[5], "links d/f g");

        let before = tree_digest(root).unwrap();
        fs::set_permissions(root.join("d/f"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(tree_digest(root).unwrap(), before);
    }
}
