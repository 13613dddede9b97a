//! Test helpers for looking at directory trees: a privilege check and a
//! snapshot of everything under a directory, used to prove that an unpack
//! left the world outside its destination alone. Shared by the unit tests and
//! the integration tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Fails the test unless it runs as root: creating device nodes, setting
/// owners and `trusted.*` xattrs all need it.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (mknod, chown and trusted.* xattrs); run it as root, as CI does"
    );
}

/// A description of every file under `root` (not following symlinks),
/// skipping the subtree `exclude`, keyed by path relative to `root`.
pub fn snapshot(root: &Path, exclude: Option<&Path>) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(root, root, exclude, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, exclude: Option<&Path>, out: &mut BTreeMap<PathBuf, String>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if Some(path.as_path()) == exclude {
            continue;
        }
        let md = fs::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        let what = if ft.is_symlink() {
            format!("symlink -> {}", fs::read_link(&path).unwrap().display())
        } else if ft.is_file() {
            format!("file {:?}", fs::read(&path).unwrap())
        } else if ft.is_dir() {
            "dir".to_owned()
        } else {
            format!("special {:o} rdev {}", md.mode(), md.rdev())
        };
        let desc = format!(
            "{what} mode {:o} owner {}:{} mtime {}.{} nlink {}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.mtime(),
            md.mtime_nsec(),
            md.nlink()
        );
        out.insert(path.strip_prefix(root).unwrap().to_path_buf(), desc);
        if ft.is_dir() {
            walk(root, &path, exclude, out);
        }
    }
}
