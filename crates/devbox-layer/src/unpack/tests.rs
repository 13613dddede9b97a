use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;
use crate::test_tar::TarBuilder;
use crate::test_tree::{require_root, snapshot};

/// A scratch area: `dest` (empty) and, beside it, `sentinel/file` that no
/// unpack may touch.
struct Scratch {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let dest = root.join("dest");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(root.join("sentinel")).unwrap();
        fs::write(root.join("sentinel/file"), b"sentinel").unwrap();
        Scratch {
            _tmp: tmp,
            root,
            dest,
        }
    }

    /// Unpacks `tar` and checks that nothing outside `dest` changed.
    fn unpack(&self, tar: Vec<u8>) -> Result<UnpackStats, UnpackError> {
        let before = snapshot(&self.root, Some(&self.dest));
        let result = unpack(&tar[..], &self.dest);
        assert_eq!(
            before,
            snapshot(&self.root, Some(&self.dest)),
            "something outside dest changed"
        );
        result
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dest.join(rel)
    }
}

fn refusal(result: Result<UnpackStats, UnpackError>) -> (String, Refusal) {
    match result {
        Err(UnpackError::Refused { entry, reason }) => (entry, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn s(text: &str) -> String {
    text.to_owned()
}

#[test]
fn refuses_names_that_leave_the_layer() {
    let cases = [
        ("/etc/passwd", Refusal::AbsolutePath),
        ("../sentinel/file", Refusal::ParentComponent),
        ("a/../../sentinel/file", Refusal::ParentComponent),
        ("a/b/..", Refusal::ParentComponent),
        ("", Refusal::EmptyName),
    ];
    for (name, reason) in cases {
        let scratch = Scratch::new();
        let tar = TarBuilder::new().file(name, b"evil").build();
        assert_eq!(refusal(scratch.unpack(tar)), (s(name), reason), "{name}");
    }
}

#[test]
fn refusal_messages_quote_the_entry() {
    let scratch = Scratch::new();
    let err = scratch
        .unpack(TarBuilder::new().file("../etc/passwd", b"x").build())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "refusing tar entry \"../etc/passwd\": path leaves the layer directory"
    );
}

#[test]
fn refuses_writing_through_a_symlinked_parent() {
    for target in ["../sentinel", "/", "../../", "."] {
        let scratch = Scratch::new();
        let tar = TarBuilder::new()
            .symlink("l", target)
            .file("l/file", b"evil")
            .build();
        assert_eq!(
            refusal(scratch.unpack(tar)),
            (s("l/file"), Refusal::SymlinkParent { parent: s("l") }),
            "{target}"
        );
    }
    let scratch = Scratch::new();
    let tar = TarBuilder::new()
        .dir("d")
        .symlink("d/l", "/")
        .dir("d/l/tmp/x")
        .build();
    assert_eq!(
        refusal(scratch.unpack(tar)),
        (s("d/l/tmp/x"), Refusal::SymlinkParent { parent: s("d/l") })
    );
}

#[test]
fn refuses_whiteouts_and_opaque_markers_through_a_symlink() {
    let scratch = Scratch::new();
    let tar = TarBuilder::new()
        .symlink("l", "../sentinel")
        .file("l/.wh.file", b"")
        .build();
    assert_eq!(
        refusal(scratch.unpack(tar)),
        (s("l/.wh.file"), Refusal::SymlinkParent { parent: s("l") })
    );

    let scratch = Scratch::new();
    let tar = TarBuilder::new()
        .symlink("l", "../sentinel")
        .file("l/.wh..wh..opq", b"")
        .build();
    assert_eq!(
        refusal(scratch.unpack(tar)),
        (
            s("l/.wh..wh..opq"),
            Refusal::SymlinkParent { parent: s("l") }
        )
    );
}

#[test]
fn refuses_a_parent_that_is_not_a_directory() {
    let scratch = Scratch::new();
    let tar = TarBuilder::new().file("f", b"").file("f/x", b"").build();
    assert_eq!(
        refusal(scratch.unpack(tar)),
        (s("f/x"), Refusal::NotDirectoryParent { parent: s("f") })
    );
}

#[test]
fn refuses_hostile_hard_links() {
    let cases: Vec<(TarBuilder, Refusal)> = vec![
        (
            TarBuilder::new().hardlink("h", "/etc/passwd"),
            Refusal::HardLinkAbsolute {
                target: s("/etc/passwd"),
            },
        ),
        (
            TarBuilder::new().hardlink("h", "../sentinel/file"),
            Refusal::HardLinkEscapes {
                target: s("../sentinel/file"),
            },
        ),
        (
            TarBuilder::new()
                .symlink("l", "../sentinel")
                .hardlink("h", "l/file"),
            Refusal::HardLinkThroughSymlink {
                target: s("l/file"),
                through: s("l"),
            },
        ),
        (
            TarBuilder::new().hardlink("h", "later").file("later", b""),
            Refusal::HardLinkTargetMissing { target: s("later") },
        ),
        (
            TarBuilder::new().file("f", b"").hardlink("h", "f/x"),
            Refusal::HardLinkTargetMissing { target: s("f/x") },
        ),
        (
            TarBuilder::new()
                .file(".wh.gone", b"")
                .hardlink("h", "gone"),
            Refusal::HardLinkTargetMissing { target: s("gone") },
        ),
        (
            TarBuilder::new().dir("d").hardlink("h", "d"),
            Refusal::HardLinkToDirectory { target: s("d") },
        ),
        (
            TarBuilder::new()
                .dir("h")
                .file("h/f", b"")
                .hardlink("h", "h/f"),
            Refusal::HardLinkTargetMissing { target: s("h/f") },
        ),
        (
            TarBuilder::new().hardlink("h", "./"),
            Refusal::HardLinkToDirectory { target: s("./") },
        ),
    ];
    for (tar, reason) in cases {
        let scratch = Scratch::new();
        assert_eq!(
            refusal(scratch.unpack(tar.build())),
            (s("h"), reason.clone()),
            "{reason}"
        );
        assert!(!scratch.path("h").exists() || scratch.path("h/f").exists());
    }
}

#[test]
fn refuses_overlay_private_xattrs() {
    for xattr in [
        "trusted.overlay.opaque",
        "trusted.overlay.redirect",
        "user.overlay.origin",
    ] {
        let scratch = Scratch::new();
        let tar = TarBuilder::new().file_with_xattr("f", xattr, b"y").build();
        assert_eq!(
            refusal(scratch.unpack(tar)),
            (s("f"), Refusal::OverlayXattr { name: s(xattr) })
        );
        assert!(!scratch.path("f").exists());
    }
}

#[test]
fn refuses_device_nodes_outside_dev_and_drops_them_inside() {
    let scratch = Scratch::new();
    let tar = TarBuilder::new().char_dev("null").build();
    assert_eq!(
        refusal(scratch.unpack(tar)),
        (s("null"), Refusal::DeviceNode { kind: "character" })
    );
    let scratch = Scratch::new();
    let tar = TarBuilder::new().block_dev("usr/sda").build();
    assert_eq!(
        refusal(scratch.unpack(tar)),
        (s("usr/sda"), Refusal::DeviceNode { kind: "block" })
    );
    let scratch = Scratch::new();
    let tar = TarBuilder::new().char_dev("dev").build();
    assert_eq!(
        refusal(scratch.unpack(tar)),
        (s("dev"), Refusal::DeviceNode { kind: "character" })
    );

    let scratch = Scratch::new();
    let tar = TarBuilder::new()
        .dir("dev")
        .char_dev("dev/null")
        .block_dev("./dev/sda")
        .build();
    let stats = scratch.unpack(tar).unwrap();
    assert_eq!(stats.dropped_devices, 2);
    assert_eq!(stats.entries, 3);
    assert!(scratch.path("dev").is_dir());
    assert_eq!(fs::read_dir(scratch.path("dev")).unwrap().count(), 0);
}

#[test]
fn refuses_invalid_whiteouts_and_non_directory_roots() {
    for name in [".wh.", ".wh..", "a/.wh.."] {
        let scratch = Scratch::new();
        let tar = TarBuilder::new().file(name, b"").build();
        assert_eq!(
            refusal(scratch.unpack(tar)),
            (s(name), Refusal::InvalidWhiteout),
            "{name}"
        );
    }
    let scratch = Scratch::new();
    let tar = TarBuilder::new().symlink("./", "/etc").build();
    assert_eq!(
        refusal(scratch.unpack(tar)),
        (s("./"), Refusal::RootNotDirectory)
    );
}

#[test]
fn replaces_a_symlink_instead_of_writing_through_it() {
    let scratch = Scratch::new();
    let tar = TarBuilder::new()
        .symlink("l", "../sentinel/file")
        .file("l", b"mine")
        .symlink("d", "../sentinel")
        .dir("d")
        .file("d/file", b"inside")
        .build();
    scratch.unpack(tar).unwrap();
    assert_eq!(fs::read(scratch.path("l")).unwrap(), b"mine");
    assert!(fs::symlink_metadata(scratch.path("d")).unwrap().is_dir());
    assert_eq!(fs::read(scratch.path("d/file")).unwrap(), b"inside");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let scratch = Scratch::new();
    let tar = TarBuilder::new()
        .file("x", b"first")
        .dir("x")
        .file("x/y", b"child")
        .dir("d")
        .file("d/child", b"")
        .file("d", b"now a file")
        .file("f", b"old")
        .file("f", b"new")
        .build();
    let stats = scratch.unpack(tar).unwrap();
    assert_eq!(stats.entries, 8);
    assert_eq!(fs::read(scratch.path("x/y")).unwrap(), b"child");
    assert_eq!(fs::read(scratch.path("d")).unwrap(), b"now a file");
    assert_eq!(fs::read(scratch.path("f")).unwrap(), b"new");
}

#[test]
fn converts_whiteouts_to_overlay_form() {
    let scratch = Scratch::new();
    let tar = TarBuilder::new()
        .file(".wh.gone", b"")
        .dir("etc")
        .file("etc/.wh..wh..opq", b"")
        .file("etc/kept", b"k")
        // Whiteouts only hide lower layers: this layer's own entries stay.
        .file("own", b"o")
        .file(".wh.own", b"")
        .dir("newdir")
        .file(".wh.newdir", b"")
        .file(".wh.recreated", b"")
        .dir("recreated")
        // A file in between takes the whiteout device's place, and the
        // directory that replaces the file is still a new one.
        .file(".wh.flip", b"")
        .file("flip", b"a file for a while")
        .dir("flip")
        .file("deep/er/.wh.x", b"")
        .file(".wh..wh.plnk", b"")
        .build();
    let stats = scratch.unpack(tar).unwrap();
    assert_eq!(stats.whiteouts, 7);

    let is_whiteout = |rel: &str| {
        let md = fs::symlink_metadata(scratch.path(rel)).unwrap();
        md.file_type().is_char_device() && md.rdev() == 0
    };
    let opaque = |rel: &str| {
        let mut buf = [0u8; 16];
        match rustix::fs::lgetxattr(scratch.path(rel), "trusted.overlay.opaque", &mut buf) {
            Ok(n) => Some(buf[..n].to_vec()),
            Err(rustix::io::Errno::NODATA) => None,
            Err(e) => panic!("{rel}: {e}"),
        }
    };
    assert!(is_whiteout("gone"));
    assert!(is_whiteout("deep/er/x"));
    assert_eq!(opaque("etc").as_deref(), Some(&b"y"[..]));
    assert_eq!(fs::read(scratch.path("etc/kept")).unwrap(), b"k");
    assert_eq!(fs::read(scratch.path("own")).unwrap(), b"o");
    assert_eq!(opaque("newdir").as_deref(), Some(&b"y"[..]));
    assert_eq!(opaque("recreated").as_deref(), Some(&b"y"[..]));
    assert_eq!(opaque("flip").as_deref(), Some(&b"y"[..]));
    assert_eq!(opaque("deep"), None);
    assert!(!scratch.path(".wh.gone").exists());
    assert!(!scratch.path(".wh..wh.plnk").exists());
}

#[test]
fn keeps_hard_links_modes_and_directory_mtimes() {
    let scratch = Scratch::new();
    let tar = TarBuilder::new()
        .dir_mode("./", 0o755)
        .dir_mode("bin", 0o711)
        .file_mode("bin/su", 0o4755, b"su")
        .hardlink("bin/su2", "./bin/su")
        .dir_mode("tmp", 0o1777)
        .fifo("tmp/pipe")
        .build();
    scratch.unpack(tar).unwrap();
    let md = |rel: &str| fs::symlink_metadata(scratch.path(rel)).unwrap();
    assert_eq!(md("bin/su").ino(), md("bin/su2").ino());
    assert_eq!(md("bin/su").permissions().mode() & 0o7777, 0o4755);
    assert_eq!(md("bin").permissions().mode() & 0o7777, 0o711);
    assert_eq!(md("tmp").permissions().mode() & 0o7777, 0o1777);
    assert!(md("tmp/pipe").file_type().is_fifo());
    // Directory mtimes survive the creation of their content.
    assert_eq!(md("bin").mtime(), 1_600_000_000);
    assert_eq!(md("tmp").mtime(), 1_600_000_000);
    assert_eq!(fs::metadata(&scratch.dest).unwrap().mtime(), 1_600_000_000);
}

#[test]
fn refuses_a_destination_that_is_not_empty() {
    let scratch = Scratch::new();
    fs::write(scratch.path("leftover"), b"").unwrap();
    let err = unpack(&TarBuilder::new().build()[..], &scratch.dest).unwrap_err();
    assert!(
        matches!(err, UnpackError::DestinationNotEmpty { .. }),
        "{err}"
    );
    let err = unpack(
        &TarBuilder::new().build()[..],
        Path::new("/nonexistent/layer"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/layer"), "{err}");
}
