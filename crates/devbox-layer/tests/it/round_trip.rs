//! Pack a rich tree, unpack it, and find the same tree.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};

use devbox_layer::pack::{PackOptions, pack_dir};
use devbox_layer::unpack::unpack;
use rustix::fs::{CWD, FileType, Mode};

use crate::support::{describe, list_tar, pack, require_root, set_mtime, set_xattr};

/// `security.capability` granting cap_net_raw (bit 13), effective: a
/// VFS_CAP_REVISION_2 structure, little-endian.
fn cap_net_raw() -> Vec<u8> {
    let mut v = Vec::new();
    for word in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        v.extend_from_slice(&word.to_le_bytes());
    }
    v
}

fn write(path: &Path, content: &[u8], mode: u32, uid: u32, gid: u32) {
    fs::write(path, content).unwrap();
    lchown(path, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(path: &Path, mode: u32, uid: u32, gid: u32) {
    fs::create_dir(path).unwrap();
    lchown(path, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub const LONG_DIR: &str = "LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL";

/// Builds a tree exercising everything a layer must carry. Returns the path of
/// a socket in it, which packing must skip.
pub fn build_rich_tree(root: &Path) -> PathBuf {
    mkdir(&root.join("bin"), 0o755, 0, 0);
    write(&root.join("bin/su"), b"#!su\n", 0o4755, 0, 0);
    write(&root.join("bin/wall"), b"#!wall\n", 0o2755, 0, 5);
    write(&root.join("bin/ping"), b"#!ping\n", 0o755, 0, 0);
    set_xattr(
        &root.join("bin/ping"),
        "security.capability",
        &cap_net_raw(),
    );

    mkdir(&root.join("home"), 0o755, 0, 0);
    mkdir(&root.join("home/dev"), 0o700, 1000, 1000);
    let notes = root.join("home/dev/notes.txt");
    write(&notes, b"hello\n", 0o640, 1000, 1000);
    set_xattr(&notes, "user.mime", b"text/plain");
    set_xattr(&notes, "user.binary", b"\0\xff\x01");
    set_xattr(&root.join("home/dev"), "user.dir", b"1");
    symlink("/etc/hosts", root.join("home/dev/abs")).unwrap();
    lchown(root.join("home/dev/abs"), Some(1000), Some(1000)).unwrap();
    symlink("../../bin/su", root.join("home/dev/rel")).unwrap();
    symlink("nowhere/at/all", root.join("home/dev/dangling")).unwrap();
    symlink("t/".repeat(60), root.join("home/dev/long-target")).unwrap();
    set_xattr(
        &root.join("home/dev/rel"),
        "trusted.devbox-test",
        b"on a symlink",
    );
    let fifo = root.join("home/dev/pipe");
    rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o620), 0).unwrap();
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o620)).unwrap();
    lchown(&fifo, Some(1000), Some(1000)).unwrap();
    set_xattr(&fifo, "trusted.devbox-test", b"on a fifo");

    mkdir(&root.join("hl"), 0o755, 0, 0);
    mkdir(&root.join("hl/sub"), 0o755, 0, 0);
    write(&root.join("hl/a"), b"shared inode", 0o644, 0, 0);
    fs::hard_link(root.join("hl/a"), root.join("hl/b")).unwrap();
    fs::hard_link(root.join("hl/a"), root.join("hl/sub/c")).unwrap();

    mkdir(&root.join("tmp"), 0o1777, 0, 0);
    mkdir(&root.join("empty"), 0o755, 0, 0);
    write(&root.join("empty-file"), b"", 0o600, 0, 0);
    write(&root.join("bigid"), b"big ids", 0o644, 3_000_000, 3_000_001);
    write(&root.join("ancient"), b"before 1970", 0o644, 0, 0);

    let sparse = root.join("sparse.img");
    let mut f = File::create(&sparse).unwrap();
    f.set_len(3 << 20).unwrap();
    f.write_all(b"head").unwrap();
    f.seek(SeekFrom::Start((2 << 20) + 123)).unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);

    // A 150-byte file name, and a path of more than 255 bytes.
    let long_dir = root.join(LONG_DIR);
    mkdir(&long_dir, 0o755, 0, 0);
    mkdir(&long_dir.join(LONG_DIR.replace('L', "M")), 0o755, 0, 0);
    write(
        &long_dir
            .join(LONG_DIR.replace('L', "M"))
            .join("N".repeat(150)),
        b"deep",
        0o644,
        0,
        0,
    );

    let socket = root.join("sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());

    set_all_mtimes(root);
    set_mtime(&root.join("ancient"), -86_400);
    socket
}

/// Gives every entry a distinct mtime, children before their directory.
fn set_all_mtimes(root: &Path) {
    fn visit(dir: &Path, next: &mut i64) {
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                visit(&path, next);
            }
            set_mtime(&path, *next);
            *next += 1;
        }
    }
    visit(root, &mut 1_650_000_000);
}

#[test]
fn pack_then_unpack_gives_the_same_tree() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let socket = build_rich_tree(&src);

    let mut tar = Vec::new();
    let stats = pack_dir(&src, &mut tar, &PackOptions::default()).unwrap();
    assert_eq!(stats.skipped, 1, "the socket is skipped");
    assert_eq!(tar, pack(&src, false), "packing is deterministic");

    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let unpacked = unpack(&tar[..], &dest).unwrap();
    assert_eq!(unpacked.entries, stats.entries);
    assert_eq!(unpacked.bytes, stats.bytes);

    let mut expected = describe(&src);
    expected
        .nodes
        .remove(Path::new(socket.file_name().unwrap()))
        .unwrap();
    let actual = describe(&dest);
    for (path, node) in &expected.nodes {
        assert_eq!(actual.nodes.get(path), Some(node), "{}", path.display());
    }
    assert_eq!(actual, expected);
    assert_eq!(expected.link_groups.len(), 1);

    // The sparse file came back sparse.
    let md = fs::metadata(dest.join("sparse.img")).unwrap();
    assert_eq!(md.size(), 3 << 20);
    assert!(
        md.blocks() * 512 < 1 << 20,
        "{} blocks allocated",
        md.blocks()
    );

    // The unpacked tree packs to the very same bytes: the tar form is canonical.
    assert_eq!(pack(&dest, false), tar);
}

#[test]
fn packed_tar_has_canonical_names_links_and_pax_records() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    build_rich_tree(tmp.path());
    let entries = list_tar(&pack(tmp.path(), false));
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();

    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("./") && !n.starts_with('/')),
        "{names:?}"
    );
    assert!(!names.contains(&"sock"));
    for (name, kind, ..) in &entries {
        assert_eq!(kind.is_dir(), name.ends_with('/'), "{name}");
    }
    // Sorted within each directory, each directory right before its content.
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    assert!(pos("bin/") < pos("bin/ping") && pos("bin/ping") < pos("bin/su"));
    assert!(pos("bigid") < pos("bin/") && pos("bin/wall") < pos("empty/"));

    let entry = |n: &str| entries.iter().find(|e| e.0 == n).unwrap();
    assert_eq!(entry("hl/b").1, tar::EntryType::Link);
    assert_eq!(entry("hl/b").2.as_deref(), Some("hl/a"));
    assert_eq!(entry("hl/sub/c").2.as_deref(), Some("hl/a"));
    assert_eq!(entry("hl/a").1, tar::EntryType::Regular);
    assert!(
        entry("bin/ping")
            .3
            .contains(&"SCHILY.xattr.security.capability".to_owned())
    );
    assert!(entry("bigid").3.contains(&"uid".to_owned()));
    assert!(entry("ancient").3.contains(&"mtime".to_owned()));
    assert!(
        entry("home/dev/long-target")
            .3
            .contains(&"linkpath".to_owned())
    );
    let deep = format!(
        "{LONG_DIR}/{}/{}",
        LONG_DIR.replace('L', "M"),
        "N".repeat(150)
    );
    assert!(deep.len() > 255);
    assert!(entry(&deep).3.contains(&"path".to_owned()));
}
