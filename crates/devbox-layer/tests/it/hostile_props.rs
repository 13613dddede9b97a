//! Property tests: random archives of hostile-looking names and entries never
//! make unpack write outside its destination, and normalize accepts and
//! refuses exactly what unpack does.

use std::fs;
use std::path::Path;

use devbox_layer::normalize::normalize;
use devbox_layer::unpack::{UnpackError, unpack};
use proptest::prelude::*;
use proptest::sample::select;

use crate::support::{TarBuilder, describe, require_root, snapshot};

/// Symlink targets: escapes of every depth, absolute paths, and harmless ones.
const SYMLINK_TARGETS: &[&str] = &[
    "../../x",
    "/etc",
    "a",
    "..",
    "../sentinel",
    "b/../..",
    "/",
    ".",
    "../../../../../../tmp",
];

#[derive(Debug, Clone)]
enum Kind {
    File(u8),
    Dir,
    Symlink(&'static str),
    HardLink(String),
    Fifo,
}

/// Names made of segments like "a", "..", "", "/" and ".wh.x", weighted so
/// that plain paths (which reach symlinks planted by earlier entries) are common.
fn name() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        4 => Just("a"),
        4 => Just("b"),
        2 => Just("x"),
        1 => Just(".."),
        1 => Just("."),
        1 => Just(""),
        1 => Just("/"),
        1 => Just(".wh.x"),
        1 => Just(".wh..wh..opq"),
    ];
    prop::collection::vec(segment, 1..4).prop_map(|segments| segments.join("/"))
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => any::<u8>().prop_map(Kind::File),
        3 => Just(Kind::Dir),
        2 => select(SYMLINK_TARGETS).prop_map(Kind::Symlink),
        2 => name().prop_map(Kind::HardLink),
        1 => Just(Kind::Fifo),
    ]
}

fn archive() -> impl Strategy<Value = Vec<(String, Kind)>> {
    prop::collection::vec((name(), kind()), 1..16)
}

fn build(entries: &[(String, Kind)]) -> Vec<u8> {
    let mut tar = TarBuilder::new();
    for (name, kind) in entries {
        tar = match kind {
            Kind::File(byte) => tar.file(name, &[*byte; 3]),
            Kind::Dir => tar.dir(name),
            Kind::Symlink(target) => tar.symlink(name, target),
            Kind::HardLink(target) => tar.hardlink(name, target),
            Kind::Fifo => tar.fifo(name),
        };
    }
    tar.build()
}

/// Files outside the scratch area that a broken unpack could create through
/// `/etc` or `/` symlinks, given the names the strategy uses.
const PROBES: &[&str] = &[
    "/etc/a",
    "/etc/b",
    "/etc/x",
    "/etc/.wh.x",
    "/a",
    "/b",
    "/x",
    "/tmp/a",
    "/tmp/b",
    "/tmp/x",
];

/// A scratch area: `tmp/x`, `tmp/outer/a/`, `tmp/outer/inner/sentinel/file`
/// and the destination `tmp/outer/inner/dest`, so that `..` chains land on
/// things the snapshot sees.
fn scratch() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let inner = tmp.path().join("outer/inner");
    fs::create_dir_all(inner.join("sentinel")).unwrap();
    fs::create_dir_all(tmp.path().join("outer/a")).unwrap();
    fs::write(inner.join("sentinel/file"), b"sentinel").unwrap();
    fs::write(tmp.path().join("x"), b"x").unwrap();
    let dest = inner.join("dest");
    fs::create_dir(&dest).unwrap();
    (tmp, dest)
}

/// The tree under `dest` with directory mtimes blanked: directories made
/// implicitly get the current time, which differs between two unpacks.
fn tree_of(dest: &Path) -> describe::Tree {
    let mut tree = describe(dest);
    for node in tree.nodes.values_mut() {
        if node.kind == "dir" {
            node.mtime = 0;
        }
    }
    tree
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn unpack_never_touches_anything_outside_dest(entries in archive()) {
        require_root();
        let (tmp, dest) = scratch();
        let probes_before: Vec<bool> = PROBES.iter().map(|p| Path::new(p).exists()).collect();
        let before = snapshot(tmp.path(), Some(&dest));

        let result = unpack(&build(&entries)[..], &dest);

        prop_assert_eq!(&before, &snapshot(tmp.path(), Some(&dest)), "result: {:?}", result);
        let probes_after: Vec<bool> = PROBES.iter().map(|p| Path::new(p).exists()).collect();
        prop_assert_eq!(probes_before, probes_after);
        if let Err(e) = &result {
            prop_assert!(matches!(e, UnpackError::Refused { .. }), "unexpected failure: {}", e);
        }
    }

    #[test]
    fn normalize_refuses_exactly_what_unpack_refuses(entries in archive()) {
        require_root();
        let tar = build(&entries);
        let (_tmp, dest) = scratch();
        let unpacked = unpack(&tar[..], &dest);
        let mut normalized = Vec::new();
        let normalized_result = normalize(&tar[..], &mut normalized);
        match (&unpacked, &normalized_result) {
            (Ok(_), Ok(_)) => {
                let (_tmp2, dest2) = scratch();
                let again = unpack(&normalized[..], &dest2);
                prop_assert!(again.is_ok(), "normalized tar refused: {:?}", again);
                prop_assert_eq!(tree_of(&dest), tree_of(&dest2));
            }
            (
                Err(UnpackError::Refused { entry: e1, reason: r1 }),
                Err(UnpackError::Refused { entry: e2, reason: r2 }),
            ) => {
                prop_assert_eq!((e1, r1), (e2, r2));
            }
            _ => prop_assert!(false, "unpack: {:?}, normalize: {:?}", unpacked, normalized_result),
        }
    }
}
