//! The stub layer: a small read-only lower layer placed above the image's
//! layers (and below the devbox's upper directory) that holds the targets of
//! the runtime's mounts, as [`crate::bundle::TARGETS`] lists them
//! (`/.devbox/agent`, `/.devbox/run`, `/etc/hosts`, `/proc`, ...).
//!
//! Without it, runc would create missing mount targets in the merged root
//! filesystem, that is in the upper directory, and every commit would carry
//! them. The stub is built for each start from the actual layer stack:
//! - its directories copy the owner, mode and time of the directory they
//!   stand for, because overlayfs shows a merged directory with the
//!   attributes of its topmost layer, and a stub `/etc` of mode 0755 would
//!   otherwise change the image's `/etc`;
//! - a directory on the way to a target that is a symlink in the image (say
//!   `/etc -> usr/etc`) is followed inside the image, and the stub holds
//!   `usr/etc/hosts` instead: a stub directory named `etc` would hide the
//!   symlink and with it the image's whole `/etc`.
//!
//! Lookups follow overlayfs's rules for the options the runtime mounts with
//! (no redirects): the topmost entry decides, a whiteout hides what is below,
//! directories merge down to the first opaque one.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use devbox_layer::whiteout;
use rustix::fs::{AtFlags, CWD, Timestamps};

use crate::bundle::{Kind, TARGETS};

/// Most symlinks followed while resolving one path, as in the kernel.
const MAX_SYMLINKS: usize = 40;

/// Why the stub could not be built.
#[derive(Debug)]
pub(crate) enum StubError {
    Io { path: PathBuf, source: io::Error },
    TooManySymlinks { target: &'static str },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StubError + '_ {
    move |source| StubError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Owner, mode and modification time of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attrs {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
}

impl Attrs {
    fn of(m: &fs::Metadata) -> Self {
        Self {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

/// An entry of the merged view.
enum Entry {
    Missing,
    /// A directory, with the layers (indexes, topmost first) it merges.
    Dir {
        attrs: Attrs,
        layers: Vec<usize>,
    },
    Symlink(PathBuf),
    Other,
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    whiteout::is_overlay_whiteout(m.mode(), m.rdev())
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(path, whiteout::OVERLAY_OPAQUE_XATTR, &mut buf),
        Ok(n) if &buf[..n] == whiteout::OVERLAY_OPAQUE_VALUE
    )
}

/// The layer directories, topmost first.
struct Stack<'a> {
    layers: &'a [PathBuf],
}

impl Stack<'_> {
    /// Looks `name` up in the directory `rel`, which merges `dir_layers`.
    fn lookup(&self, dir_layers: &[usize], rel: &Path, name: &OsStr) -> Result<Entry, StubError> {
        let mut dir: Option<(Attrs, Vec<usize>)> = None;
        for &i in dir_layers {
            let p = self.layers[i].join(rel).join(name);
            let m = match fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
                    continue;
                }
                Err(e) => return Err(io_err(&p)(e)),
            };
            match &mut dir {
                None => {
                    if is_whiteout(&m) {
                        return Ok(Entry::Missing);
                    }
                    if m.file_type().is_symlink() {
                        return Ok(Entry::Symlink(fs::read_link(&p).map_err(io_err(&p))?));
                    }
                    if !m.is_dir() {
                        return Ok(Entry::Other);
                    }
                    dir = Some((Attrs::of(&m), vec![i]));
                }
                // Below a directory, only directories merge; anything else
                // (a whiteout included) ends the merge.
                Some((_, layers)) => {
                    if !m.is_dir() {
                        break;
                    }
                    layers.push(i);
                }
            }
            if is_opaque(&p) {
                break;
            }
        }
        Ok(match dir {
            Some((attrs, layers)) => Entry::Dir { attrs, layers },
            None => Entry::Missing,
        })
    }

    /// Resolves the directories leading to `target` (following symlinks
    /// inside the stack, never above its root) and returns them with their
    /// attributes (`None` when the image lacks them), the final name, and the
    /// final entry's attributes when it is a directory.
    #[allow(clippy::type_complexity)]
    fn resolve(
        &self,
        target: &'static str,
    ) -> Result<(Vec<(OsString, Option<Attrs>)>, OsString, Option<Attrs>), StubError> {
        let target_path = Path::new(target);
        let name = target_path
            .file_name()
            .expect("targets have a name")
            .to_owned();
        let all: Vec<usize> = (0..self.layers.len()).collect();
        // The current directory as a stack of (name, attributes, layers).
        let mut cur: Vec<(OsString, Option<Attrs>, Vec<usize>)> = Vec::new();
        let mut todo: VecDeque<OsString> =
            components(target_path.parent().unwrap_or(Path::new("")));
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let rel: PathBuf = cur.iter().map(|(n, _, _)| n.as_os_str()).collect();
            let layers = cur.last().map_or(&all, |(_, _, l)| l);
            match self.lookup(layers, &rel, &c)? {
                Entry::Dir { attrs, layers } => cur.push((c, Some(attrs), layers)),
                // A stub directory will stand in for a missing one, or hide a
                // non-directory that a broken image has in its place.
                Entry::Missing | Entry::Other => cur.push((c, None, Vec::new())),
                Entry::Symlink(link) => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(StubError::TooManySymlinks { target });
                    }
                    if link.is_absolute() {
                        cur.clear();
                    }
                    for c in components(&link).into_iter().rev() {
                        todo.push_front(c);
                    }
                }
            }
        }
        let rel: PathBuf = cur.iter().map(|(n, _, _)| n.as_os_str()).collect();
        let layers = cur.last().map_or(&all, |(_, _, l)| l);
        let last = match self.lookup(layers, &rel, &name)? {
            Entry::Dir { attrs, .. } => Some(attrs),
            _ => None,
        };
        let dirs = cur.into_iter().map(|(n, a, _)| (n, a)).collect();
        Ok((dirs, name, last))
    }
}

/// The normal components of a path; `..` is kept, `.` and `/` are dropped.
fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

const DEFAULT_DIR: Attrs = Attrs {
    mode: 0o755,
    uid: 0,
    gid: 0,
    mtime: (0, 0),
};

fn apply(path: &Path, a: &Attrs) -> Result<(), StubError> {
    std::os::unix::fs::lchown(path, Some(a.uid), Some(a.gid)).map_err(io_err(path))?;
    // After chown, which clears set-id bits.
    fs::set_permissions(path, fs::Permissions::from_mode(a.mode)).map_err(io_err(path))
}

/// (Re)builds the stub at `stub` for the layers `layers` (topmost first:
/// the upper directory, then the image layers from the top down).
pub(crate) fn build(stub: &Path, layers: &[PathBuf]) -> Result<(), StubError> {
    match fs::remove_dir_all(stub) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(stub)(e)),
    }
    fs::create_dir(stub).map_err(io_err(stub))?;
    apply(stub, &DEFAULT_DIR)?;
    let stack = Stack { layers };
    // Directories whose time to restore once their content is in place.
    let mut times: Vec<(PathBuf, Attrs)> = Vec::new();
    for &crate::bundle::Target {
        path: target, kind, ..
    } in TARGETS
    {
        let (dirs, name, last) = stack.resolve(target)?;
        let mut p = stub.to_path_buf();
        for (dir, attrs) in dirs {
            p.push(dir);
            if !p.exists() {
                fs::create_dir(&p).map_err(io_err(&p))?;
                apply(&p, attrs.as_ref().unwrap_or(&DEFAULT_DIR))?;
                if let Some(a) = attrs {
                    times.push((p.clone(), a));
                }
            }
        }
        p.push(name);
        if p.exists() {
            continue;
        }
        match kind {
            Kind::File => {
                fs::write(&p, b"").map_err(io_err(&p))?;
                apply(
                    &p,
                    &Attrs {
                        mode: 0o644,
                        ..DEFAULT_DIR
                    },
                )?;
            }
            Kind::Dir => {
                fs::create_dir(&p).map_err(io_err(&p))?;
                apply(&p, last.as_ref().unwrap_or(&DEFAULT_DIR))?;
                if let Some(a) = last {
                    times.push((p.clone(), a));
                }
            }
        }
    }
    // Deepest first, so setting a child's time does not disturb its parent's.
    for (p, a) in times.iter().rev() {
        let ts = rustix::fs::Timespec {
            tv_sec: a.mtime.0,
            tv_nsec: a.mtime.1 as _,
        };
        let stamps = Timestamps {
            last_access: ts,
            last_modification: ts,
        };
        rustix::fs::utimensat(CWD, p, &stamps, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_err(p)(e.into()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    fn mkdir(p: &Path, m: u32) {
        fs::create_dir_all(p).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    }

    /// Paths (relative, sorted) of everything in the stub.
    fn tree(root: &Path) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                if fs::symlink_metadata(&p).unwrap().is_dir() {
                    walk(root, &p, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out.sort();
        out
    }

    #[test]
    fn directories_copy_the_image_attributes() {
        let t = tempfile::tempdir().unwrap();
        let (upper, image, stub) = (
            t.path().join("upper"),
            t.path().join("l1"),
            t.path().join("stub"),
        );
        mkdir(&upper, 0o755);
        mkdir(&image.join("etc"), 0o750);
        mkdir(&image.join("proc"), 0o555);
        let old = Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 1_000_000,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 1_000_000,
                tv_nsec: 0,
            },
        };
        rustix::fs::utimensat(CWD, image.join("etc"), &old, AtFlags::empty()).unwrap();
        build(&stub, &[upper, image]).unwrap();
        assert_eq!(
            tree(&stub),
            [
                ".devbox",
                ".devbox/agent",
                ".devbox/keys",
                ".devbox/run",
                "dev",
                "etc",
                "etc/hostname",
                "etc/hosts",
                "etc/resolv.conf",
                "proc",
                "sys"
            ]
        );
        assert_eq!(mode(&stub.join("etc")), 0o750);
        assert_eq!(mode(&stub.join("proc")), 0o555);
        assert_eq!(mode(&stub.join("dev")), 0o755);
        assert_eq!(fs::metadata(stub.join("etc")).unwrap().mtime(), 1_000_000);
        assert!(fs::metadata(stub.join("etc/hosts")).unwrap().is_file());
    }

    #[test]
    fn a_symlinked_etc_is_followed_inside_the_image() {
        let t = tempfile::tempdir().unwrap();
        let (upper, l2, l1, stub) = (
            t.path().join("upper"),
            t.path().join("l2"),
            t.path().join("l1"),
            t.path().join("stub"),
        );
        mkdir(&upper, 0o755);
        // The lower layer has /usr/etc; the one above links /etc to it.
        mkdir(&l1.join("usr/etc"), 0o711);
        mkdir(&l1.join("usr"), 0o701);
        mkdir(&l2, 0o755);
        symlink("usr/etc", l2.join("etc")).unwrap();
        build(&stub, &[upper.clone(), l2.clone(), l1.clone()]).unwrap();
        let got = tree(&stub);
        assert!(
            !got.contains(&"etc".to_owned()),
            "the stub hides the symlink: {got:?}"
        );
        for want in ["usr/etc/hosts", "usr/etc/hostname", "usr/etc/resolv.conf"] {
            assert!(got.contains(&want.to_owned()), "{want} missing: {got:?}");
        }
        assert_eq!(mode(&stub.join("usr")), 0o701);
        assert_eq!(mode(&stub.join("usr/etc")), 0o711);

        // An absolute link that climbs above the root stays inside it.
        fs::remove_file(l2.join("etc")).unwrap();
        symlink("/../../usr/./etc", l2.join("etc")).unwrap();
        build(&stub, &[upper.clone(), l2.clone(), l1.clone()]).unwrap();
        assert!(stub.join("usr/etc/hosts").is_file());
        assert!(!stub.join("etc").exists());

        // The upper directory wins over the image: a real /etc there is used.
        mkdir(&upper.join("etc"), 0o700);
        build(&stub, &[upper, l2, l1]).unwrap();
        assert_eq!(mode(&stub.join("etc")), 0o700);
        assert!(stub.join("etc/hosts").is_file());
        assert!(!stub.join("usr").exists());
    }

    #[test]
    fn symlink_loops_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let (l1, stub) = (t.path().join("l1"), t.path().join("stub"));
        mkdir(&l1, 0o755);
        symlink("etc", l1.join("etc")).unwrap();
        let e = build(&stub, &[l1]).unwrap_err();
        assert!(
            matches!(
                e,
                StubError::TooManySymlinks {
                    target: "etc/hosts"
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_entries() {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test creates overlay whiteouts and trusted xattrs: run it as root"
        );
        let t = tempfile::tempdir().unwrap();
        let (l3, l2, l1, stub) = (
            t.path().join("l3"),
            t.path().join("l2"),
            t.path().join("l1"),
            t.path().join("stub"),
        );
        mkdir(&l1.join("etc"), 0o700);
        mkdir(&l1.join("usr/etc"), 0o750);
        mkdir(&l2, 0o755);
        symlink("usr/etc", l2.join("etc")).unwrap();
        mkdir(&l3, 0o755);
        // l3 deletes l2's symlink: /etc falls back to nothing (a whiteout
        // hides every lower entry, including l1's directory).
        rustix::fs::mknodat(
            CWD,
            l3.join("etc"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        build(&stub, &[l3.clone(), l2.clone(), l1.clone()]).unwrap();
        assert_eq!(
            mode(&stub.join("etc")),
            0o755,
            "a missing /etc gets the default mode"
        );
        assert!(!stub.join("usr").exists());

        // An opaque /usr in l2 hides l1's /usr/etc.
        fs::remove_file(l3.join("etc")).unwrap();
        mkdir(&l2.join("usr"), 0o755);
        rustix::fs::setxattr(
            l2.join("usr"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        build(&stub, &[l3, l2, l1]).unwrap();
        assert_eq!(
            mode(&stub.join("usr/etc")),
            0o755,
            "l1's /usr/etc is hidden"
        );
    }
}
