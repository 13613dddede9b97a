//! Normalizing rootfs tarballs written by GNU tar.

use std::fs;
use std::path::Path;
use std::process::Command;

use devbox_layer::normalize::normalize;
use devbox_layer::unpack::{Refusal, UnpackError, unpack};

use crate::round_trip::build_rich_tree;
use crate::support::{TarBuilder, describe, pack, require_root};

/// `tar -C dir -c .` with the given extra arguments.
fn gnu_tar(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("tar")
        .args(args)
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .expect("running GNU tar");
    assert!(
        out.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn rich_tree(tmp: &Path) -> std::path::PathBuf {
    let src = tmp.join("src");
    fs::create_dir(&src).unwrap();
    let socket = build_rich_tree(&src);
    fs::remove_file(socket).unwrap();
    src
}

#[test]
fn gnu_pax_tarball_normalizes_to_exactly_what_pack_writes() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = rich_tree(tmp.path());
    let input = gnu_tar(
        &src,
        &[
            "--sort=name",
            "--format=pax",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
        ],
    );
    let mut out = Vec::new();
    let stats = normalize(&input[..], &mut out).unwrap();
    assert_eq!(stats.dropped_devices, 0);
    assert!(
        out == pack(&src, false),
        "normalized GNU tar differs from pack_dir output"
    );
}

#[test]
fn gnu_format_tarball_with_long_names_unpacks_to_the_same_tree() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = rich_tree(tmp.path());
    // GNU format: ././@LongLink records for long names, "./" prefixes, GNU
    // sparse entries, base-256 numbers, no xattrs.
    let input = gnu_tar(&src, &["--format=gnu", "--numeric-owner", "--sparse"]);
    let listed = crate::support::list_tar(&input);
    let sparse = listed.iter().find(|e| e.0 == "./sparse.img").unwrap();
    assert_eq!(sparse.1, tar::EntryType::GNUSparse);
    let mut out = Vec::new();
    normalize(&input[..], &mut out).unwrap();

    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    unpack(&out[..], &dest).unwrap();
    let mut expected = describe(&src);
    let mut actual = describe(&dest);
    for tree in [&mut expected, &mut actual] {
        for node in tree.nodes.values_mut() {
            node.xattrs.clear();
        }
    }
    assert_eq!(actual, expected);
}

#[test]
fn rootfs_devices_are_dropped_under_dev_only() {
    let input = TarBuilder::new()
        .dir("./")
        .dir("./dev/")
        .char_dev("./dev/null")
        .block_dev("./dev/loop0")
        .file("./etc/hostname", b"box\n")
        .build();
    let mut out = Vec::new();
    let stats = normalize(&input[..], &mut out).unwrap();
    assert_eq!(stats.dropped_devices, 2);
    assert_eq!(stats.entries, 2);
    let names: Vec<String> = crate::support::list_tar(&out)
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(names, ["dev/", "etc/hostname"]);

    let input = TarBuilder::new().char_dev("./usr/null").build();
    let err = normalize(&input[..], Vec::new()).unwrap_err();
    assert!(matches!(
        err,
        UnpackError::Refused {
            reason: Refusal::DeviceNode { kind: "character" },
            ..
        }
    ));
}

#[test]
fn refuses_hostile_names_without_a_destination() {
    let cases = [
        (
            TarBuilder::new().file("./../etc/passwd", b""),
            "./../etc/passwd",
            Refusal::ParentComponent,
        ),
        (
            TarBuilder::new().file("/etc/passwd", b""),
            "/etc/passwd",
            Refusal::AbsolutePath,
        ),
        (
            TarBuilder::new()
                .symlink("./etc", "/etc")
                .file("./etc/passwd", b""),
            "./etc/passwd",
            Refusal::SymlinkParent {
                parent: "etc".into(),
            },
        ),
        (
            TarBuilder::new()
                .symlink("l", "/")
                .hardlink("h", "l/etc/shadow"),
            "h",
            Refusal::HardLinkThroughSymlink {
                target: "l/etc/shadow".into(),
                through: "l".into(),
            },
        ),
        (
            TarBuilder::new().hardlink("h", "missing"),
            "h",
            Refusal::HardLinkTargetMissing {
                target: "missing".into(),
            },
        ),
    ];
    for (tar, entry, reason) in cases {
        match normalize(&tar.build()[..], Vec::new()) {
            Err(UnpackError::Refused {
                entry: e,
                reason: r,
            }) => assert_eq!((e.as_str(), r), (entry, reason)),
            other => panic!("{entry}: expected a refusal, got {other:?}"),
        }
    }
}
