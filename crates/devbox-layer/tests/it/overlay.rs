//! Overlay upperdirs: whiteouts and opaque directories packed to their OCI
//! form and unpacked back, first with a hand-made upperdir, then with one the
//! kernel wrote through a real overlay mount.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use devbox_layer::pack::{PackError, PackOptions, pack_dir};
use devbox_layer::unpack::unpack;
use rustix::fs::{CWD, FileType, Mode, makedev};

use crate::support::{Mount, describe, list_tar, pack, require_root, set_xattr, xattr_of};

fn mknod_char(path: &Path, major: u32, minor: u32) {
    rustix::fs::mknodat(
        CWD,
        path,
        FileType::CharacterDevice,
        Mode::empty(),
        makedev(major, minor),
    )
    .unwrap();
}

fn is_whiteout(path: &Path) -> bool {
    let md = fs::symlink_metadata(path).unwrap();
    md.file_type().is_char_device() && md.rdev() == 0
}

#[test]
fn upperdir_whiteouts_and_opaque_dirs_round_trip() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper).unwrap();
    mknod_char(&upper.join("gone"), 0, 0);
    fs::create_dir(upper.join("sub")).unwrap();
    // The kernel may link every whiteout to one shared inode.
    fs::hard_link(upper.join("gone"), upper.join("sub/gone2")).unwrap();
    fs::hard_link(upper.join("gone"), upper.join("sub/gone3")).unwrap();
    assert_eq!(fs::symlink_metadata(upper.join("gone")).unwrap().nlink(), 3);
    fs::create_dir(upper.join("opq")).unwrap();
    set_xattr(&upper.join("opq"), "trusted.overlay.opaque", b"y");
    set_xattr(
        &upper.join("opq"),
        "trusted.overlay.origin",
        b"\x00\xfb\x21junk",
    );
    set_xattr(&upper.join("opq"), "user.keep", b"1");
    fs::write(upper.join("opq/new"), b"new").unwrap();
    fs::create_dir(upper.join("notopq")).unwrap();
    set_xattr(&upper.join("notopq"), "trusted.overlay.opaque", b"x");
    fs::write(upper.join("f1"), b"linked").unwrap();
    fs::hard_link(upper.join("f1"), upper.join("f2")).unwrap();
    mknod_char(&upper.join("null"), 1, 3);

    let mut tar = Vec::new();
    let stats = pack_dir(&upper, &mut tar, &PackOptions { overlay: true }).unwrap();
    assert_eq!(
        stats.skipped, 1,
        "the 1/3 device is not a whiteout and is skipped"
    );

    let entries = list_tar(&tar);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    for expected in [
        ".wh.gone",
        "sub/.wh.gone2",
        "sub/.wh.gone3",
        "opq/",
        "opq/.wh..wh..opq",
        "opq/new",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for unexpected in ["gone", "sub/gone2", "null", "notopq/.wh..wh..opq"] {
        assert!(!names.contains(&unexpected), "{unexpected} in {names:?}");
    }
    let opq = names.iter().position(|n| *n == "opq/").unwrap();
    assert_eq!(
        names[opq + 1],
        "opq/.wh..wh..opq",
        "the marker follows its directory"
    );
    for (name, kind, link, keys) in &entries {
        if name.contains(".wh.") {
            assert_eq!(*kind, tar::EntryType::Regular, "{name}");
        }
        if *kind == tar::EntryType::Link {
            assert!(
                !link.as_deref().unwrap().contains(".wh."),
                "{name} links to a whiteout"
            );
        }
        assert!(
            keys.iter().all(|k| !k.contains("overlay")),
            "{name} carries {keys:?}"
        );
    }
    let f2 = entries.iter().find(|e| e.0 == "f2").unwrap();
    assert_eq!((f2.1, f2.2.as_deref()), (tar::EntryType::Link, Some("f1")));
    let opq_keys = &entries[opq].3;
    assert!(
        opq_keys.contains(&"SCHILY.xattr.user.keep".to_owned()),
        "{opq_keys:?}"
    );

    let layer = tmp.path().join("layer");
    fs::create_dir(&layer).unwrap();
    let unpacked = unpack(&tar[..], &layer).unwrap();
    assert_eq!(unpacked.whiteouts, 4);
    assert!(is_whiteout(&layer.join("gone")));
    assert!(is_whiteout(&layer.join("sub/gone2")));
    assert!(is_whiteout(&layer.join("sub/gone3")));
    assert_eq!(
        xattr_of(&layer.join("opq"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(xattr_of(&layer.join("opq"), "trusted.overlay.origin"), None);
    assert_eq!(
        xattr_of(&layer.join("opq"), "user.keep").as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        xattr_of(&layer.join("notopq"), "trusted.overlay.opaque"),
        None
    );
    assert_eq!(fs::read(layer.join("opq/new")).unwrap(), b"new");
    assert_eq!(
        fs::metadata(layer.join("f1")).unwrap().ino(),
        fs::metadata(layer.join("f2")).unwrap().ino()
    );
    assert!(!layer.join(".wh.gone").exists());

    // The unpacked layer directory is itself an upperdir-shaped tree that packs to the same tar.
    assert_eq!(pack(&layer, true), tar);
}

#[test]
fn upperdir_that_is_not_self_contained_is_refused() {
    require_root();
    for (xattr, is_dir) in [
        ("trusted.overlay.redirect", true),
        ("trusted.overlay.metacopy", false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x");
        if is_dir {
            fs::create_dir(&path).unwrap();
        } else {
            fs::write(&path, b"").unwrap();
        }
        set_xattr(&path, xattr, b"");
        let err = pack_dir(tmp.path(), Vec::new(), &PackOptions { overlay: true }).unwrap_err();
        match &err {
            PackError::NotSelfContained {
                entry,
                xattr: found,
            } => {
                assert_eq!((entry.as_str(), found.as_str()), ("x", xattr));
            }
            other => panic!("expected NotSelfContained, got {other:?}"),
        }
        assert!(err.to_string().contains("metacopy=off"), "{err}");
        // Without overlay semantics the xattr is simply not carried.
        let tar = pack(tmp.path(), false);
        assert!(list_tar(&tar).iter().all(|e| e.3.is_empty()));
    }
}

#[test]
fn kernel_written_upperdir_round_trips_through_a_layer() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let p = tmp.path().join(name);
        fs::create_dir(&p).unwrap();
        p
    };
    let (lower, upper, work, merged) = (dir("lower"), dir("upper"), dir("work"), dir("merged"));
    fs::write(lower.join("keep.txt"), b"keep").unwrap();
    fs::write(lower.join("gone.txt"), b"gone").unwrap();
    fs::write(lower.join("gone2.txt"), b"gone too").unwrap();
    fs::create_dir(lower.join("dir")).unwrap();
    fs::write(lower.join("dir/a"), b"a").unwrap();
    fs::write(lower.join("dir/b"), b"b").unwrap();
    fs::create_dir(lower.join("olddir")).unwrap();
    fs::write(lower.join("olddir/x"), b"x").unwrap();
    fs::write(lower.join("chmodme"), b"mode").unwrap();

    let options = format!(
        "lowerdir={},upperdir={},workdir={},index=off,metacopy=off,redirect_dir=off,xino=off",
        lower.display(),
        upper.display(),
        work.display()
    );
    let expected = {
        let _mount = Mount::overlay(&merged, &options);
        fs::remove_file(merged.join("gone.txt")).unwrap();
        fs::remove_file(merged.join("gone2.txt")).unwrap();
        fs::remove_file(merged.join("dir/a")).unwrap();
        fs::remove_dir_all(merged.join("olddir")).unwrap();
        fs::create_dir(merged.join("olddir")).unwrap();
        fs::write(merged.join("olddir/fresh"), b"fresh").unwrap();
        fs::write(merged.join("new.txt"), b"new").unwrap();
        fs::hard_link(merged.join("new.txt"), merged.join("new-link")).unwrap();
        fs::set_permissions(merged.join("chmodme"), fs::Permissions::from_mode(0o600)).unwrap();
        describe(&merged)
    };
    assert!(
        is_whiteout(&upper.join("gone.txt")),
        "the kernel wrote a whiteout"
    );

    let tar = pack(&upper, true);
    let entries = list_tar(&tar);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    for expected in [
        ".wh.gone.txt",
        ".wh.gone2.txt",
        "dir/.wh.a",
        "olddir/.wh..wh..opq",
        "new.txt",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for (name, kind, _, keys) in &entries {
        assert!(
            !(name.contains(".wh.") && *kind == tar::EntryType::Link),
            "{name} is a hard link"
        );
        assert!(
            keys.iter().all(|k| !k.contains("overlay")),
            "{name} carries {keys:?}"
        );
    }

    let layer = dir("layer");
    unpack(&tar[..], &layer).unwrap();
    let view = dir("view");
    let _view = Mount::overlay(
        &view,
        &format!("lowerdir={}:{}", layer.display(), lower.display()),
    );
    let actual = describe(&view);
    assert!(!view.join("gone.txt").exists());
    assert!(!view.join("dir/a").exists());
    assert_eq!(fs::read_dir(view.join("olddir")).unwrap().count(), 1);
    assert_eq!(actual, expected);
}
