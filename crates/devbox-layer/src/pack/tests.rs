use std::fs;

use rustix::fs::{CWD, FileType, Mode, OFlags, makedev};

use super::*;
use crate::test_tree::require_root;

/// (name, entry type, link target) of each entry.
fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, Option<String>)> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            (name, e.header().entry_type(), link)
        })
        .collect()
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

#[test]
fn overlay_whiteouts_and_opaque_dirs_become_oci_entries() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mknod = |name: &str, dev| {
        rustix::fs::mknodat(
            CWD,
            root.join(name),
            FileType::CharacterDevice,
            Mode::empty(),
            dev,
        )
        .unwrap()
    };
    mknod("gone", makedev(0, 0));
    fs::hard_link(root.join("gone"), root.join("gone-too")).unwrap();
    mknod("tty", makedev(5, 0));
    fs::create_dir(root.join("opq")).unwrap();
    set_xattr(&root.join("opq"), "trusted.overlay.opaque", b"y");
    set_xattr(&root.join("opq"), "trusted.overlay.impure", b"y");

    let mut tar = Vec::new();
    let stats = pack_dir(root, &mut tar, &PackOptions { overlay: true }).unwrap();
    let regular = tar::EntryType::Regular;
    assert_eq!(
        entries(&tar),
        [
            (".wh.gone".to_owned(), regular, None),
            (".wh.gone-too".to_owned(), regular, None),
            ("opq/".to_owned(), tar::EntryType::Directory, None),
            ("opq/.wh..wh..opq".to_owned(), regular, None),
        ]
    );
    assert_eq!(
        stats,
        PackStats {
            entries: 4,
            bytes: 0,
            whiteouts: 3,
            changes: 3,
            skipped: 1,
            ignored: 0,
            ignored_bytes: 0,
        }
    );
    assert!(
        !tar.windows(7).any(|w| w == b"overlay"),
        "no overlay xattr is carried"
    );

    // Without overlay semantics, devices (whiteouts included) are skipped and
    // the opaque xattr is not carried.
    let mut tar = Vec::new();
    let stats = pack_dir(root, &mut tar, &PackOptions::default()).unwrap();
    assert_eq!(
        entries(&tar),
        [("opq/".to_owned(), tar::EntryType::Directory, None)]
    );
    assert_eq!(stats.skipped, 3);
}

#[test]
fn hard_links_point_at_the_first_name_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir(root.join("d")).unwrap();
    fs::write(root.join("z"), b"data").unwrap();
    fs::hard_link(root.join("z"), root.join("d/y")).unwrap();
    fs::hard_link(root.join("z"), root.join("a")).unwrap();
    std::os::unix::fs::symlink("z", root.join("s")).unwrap();

    let mut tar = Vec::new();
    let stats = pack_dir(root, &mut tar, &PackOptions::default()).unwrap();
    let link = tar::EntryType::Link;
    assert_eq!(
        entries(&tar),
        [
            ("a".to_owned(), tar::EntryType::Regular, None),
            ("d/".to_owned(), tar::EntryType::Directory, None),
            ("d/y".to_owned(), link, Some("a".to_owned())),
            (
                "s".to_owned(),
                tar::EntryType::Symlink,
                Some("z".to_owned())
            ),
            ("z".to_owned(), link, Some("a".to_owned())),
        ]
    );
    assert_eq!(stats.bytes, 4, "linked content is written once");
}

#[test]
fn missing_source_is_reported_with_its_path() {
    let err = pack_dir(
        Path::new("/nonexistent/upper"),
        Vec::new(),
        &PackOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, PackError::Source { .. }));
    assert!(err.to_string().contains("/nonexistent/upper"), "{err}");
}

#[test]
fn paths_longer_than_path_max_fail_the_pack() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "d".repeat(250);
    let flags = OFlags::RDONLY | OFlags::DIRECTORY;
    let mut dir = rustix::fs::openat(CWD, tmp.path(), flags, Mode::empty()).unwrap();
    for _ in 0..17 {
        rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
        dir = rustix::fs::openat(&dir, name.as_str(), flags, Mode::empty()).unwrap();
    }
    let err = pack_dir(tmp.path(), Vec::new(), &PackOptions::default()).unwrap_err();
    match &err {
        PackError::NameTooLong { entry } => assert!(entry.len() > 4096),
        other => panic!("expected NameTooLong, got {other:?}"),
    }
}
