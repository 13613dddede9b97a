//! A full description of a tree for comparing two of them: type, mode,
//! owner, size, content hash, mtime, xattrs, link target, device number, and
//! which paths share an inode.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, XattrFlags};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub sha256: Option<String>,
    pub mtime: i64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub link: Option<PathBuf>,
    pub rdev: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub nodes: BTreeMap<PathBuf, Node>,
    /// Groups of paths that are hard links of one inode.
    pub link_groups: BTreeSet<Vec<PathBuf>>,
}

/// Describes everything under `root` (not `root` itself).
pub fn describe(root: &Path) -> Tree {
    let mut nodes = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    walk(root, root, &mut nodes, &mut inodes);
    let link_groups = inodes
        .into_values()
        .filter(|paths| paths.len() > 1)
        .map(|mut paths| {
            paths.sort();
            paths
        })
        .collect();
    Tree { nodes, link_groups }
}

fn walk(
    root: &Path,
    dir: &Path,
    nodes: &mut BTreeMap<PathBuf, Node>,
    inodes: &mut HashMap<(u64, u64), Vec<PathBuf>>,
) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        let md = fs::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else {
            use std::os::unix::fs::FileTypeExt;
            if ft.is_fifo() {
                "fifo"
            } else if ft.is_char_device() {
                "char"
            } else if ft.is_socket() {
                "socket"
            } else {
                "other"
            }
        };
        let sha256 = ft
            .is_file()
            .then(|| hex::encode(Sha256::digest(fs::read(&path).unwrap())));
        let link = ft.is_symlink().then(|| fs::read_link(&path).unwrap());
        if !ft.is_dir() {
            inodes
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(rel.clone());
        }
        nodes.insert(
            rel,
            Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: if ft.is_dir() { 0 } else { md.size() },
                sha256,
                mtime: md.mtime(),
                xattrs: xattrs_of(&path),
                link,
                rdev: md.rdev(),
            },
        );
        if ft.is_dir() {
            walk(root, &path, nodes, inodes);
        }
    }
}

/// All xattrs of `path` (not following a symlink), sorted by name.
pub fn xattrs_of(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 64 * 1024];
    let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = names[..n]
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| {
            let name = String::from_utf8(name.to_vec()).unwrap();
            let value = xattr_of(path, &name).unwrap();
            (name, value)
        })
        .collect();
    out.sort();
    out
}

/// One xattr of `path`, not following a symlink.
pub fn xattr_of(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64 * 1024];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("reading xattr {name} of {}: {e}", path.display()),
    }
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setting xattr {name} on {}: {e}", path.display()));
}

/// Sets the mtime (and atime) of `path`, not following a symlink.
pub fn set_mtime(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}
