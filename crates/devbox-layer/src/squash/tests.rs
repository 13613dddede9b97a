use std::fs;
use std::path::Path;

use super::*;
use crate::test_tar::TarBuilder;
use crate::test_tree::require_root;
use crate::testing::{apply_layers, tree_listing};

fn squashed(layers: &[Vec<u8>]) -> (Vec<u8>, SquashStats) {
    let mut out = Vec::new();
    let stats = squash(layers.len(), |i| Ok(&layers[i][..]), &mut out).unwrap();
    (out, stats)
}

fn names(tar: &[u8]) -> Vec<(String, Option<String>)> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            (name, link)
        })
        .collect()
}

/// A base tree the layers are applied on, so whiteouts have something to hide.
fn base(root: &Path) {
    fs::create_dir_all(root.join("a/deep")).unwrap();
    fs::write(root.join("a/x"), b"base x").unwrap();
    fs::write(root.join("a/deep/z"), b"base z").unwrap();
    fs::write(root.join("b"), b"base b").unwrap();
    fs::create_dir_all(root.join("opq/old")).unwrap();
    fs::write(root.join("opq/old/f"), b"hidden").unwrap();
    fs::create_dir(root.join("dir2file")).unwrap();
    fs::write(root.join("dir2file/in"), b"in").unwrap();
}

/// Applies `layers` on the base and on a copy of it applies their squash:
/// both trees must be the same.
fn assert_equivalent(layers: &[Vec<u8>]) -> Vec<u8> {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    for dir in [&one, &two] {
        fs::create_dir(dir).unwrap();
        base(dir);
    }
    apply_layers(layers.iter().map(|l| &l[..]), &one).unwrap();
    let (merged, _) = squashed(layers);
    apply_layers([&merged[..]], &two).unwrap();
    assert_eq!(tree_listing(&two).unwrap(), tree_listing(&one).unwrap());
    merged
}

#[test]
fn newer_entries_whiteouts_and_markers_shadow_older_ones() {
    let layers = vec![
        TarBuilder::new()
            .dir("a/")
            .file("a/x", b"x0")
            .file("a/y", b"y0")
            .file("c", b"c0")
            .build(),
        TarBuilder::new()
            .dir("a/")
            .file("a/.wh.x", b"")
            .file("a/y", b"y1")
            .file(".wh.b", b"")
            .dir("opq/")
            .file("opq/.wh..wh..opq", b"")
            .file("opq/new", b"new")
            .build(),
        TarBuilder::new()
            .file(".wh.c", b"")
            .file("a/y", b"y2")
            .build(),
    ];
    let merged = assert_equivalent(&layers);
    let listed: Vec<String> = names(&merged).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        listed,
        // The last layer does not list `a/`: the directory unpack makes for
        // it is the one on top, and it is written where that layer needs it.
        [
            "a/.wh.x",
            ".wh.b",
            "opq/",
            "opq/.wh..wh..opq",
            "opq/new",
            ".wh.c",
            "a/",
            "a/y"
        ]
    );
    let (_, stats) = squashed(&layers);
    assert_eq!(stats.entries_in, 13);
    assert_eq!(stats.entries, 8);
    assert_eq!(stats.whiteouts, 4);
    assert_eq!(stats.shadowed, 6, "a/ twice, a/x, a/y twice, c");
    assert_eq!(stats.shadowed_bytes, 8);
}

#[test]
fn a_file_replacing_a_directory_and_a_directory_replacing_a_file() {
    let layers = vec![
        TarBuilder::new()
            .dir("d/")
            .file("d/f", b"f")
            .file("g", b"g")
            .build(),
        TarBuilder::new()
            .file("d", b"now a file")
            .file(".wh.dir2file", b"")
            .file("dir2file", b"file")
            .build(),
        TarBuilder::new().dir("g/").file("g/h", b"h").build(),
    ];
    let merged = assert_equivalent(&layers);
    let listed: Vec<String> = names(&merged).into_iter().map(|(n, _)| n).collect();
    assert!(!listed.iter().any(|n| n.starts_with("d/")), "{listed:?}");
    assert!(!listed.contains(&"g".to_owned()), "{listed:?}");
}

#[test]
fn a_directory_that_was_a_file_in_between_keeps_nothing_from_before() {
    let layers = vec![
        TarBuilder::new().dir("d/").file("d/old", b"old").build(),
        TarBuilder::new().file("d", b"a file for a while").build(),
        TarBuilder::new().dir("d/").file("d/new", b"new").build(),
    ];
    let merged = assert_equivalent(&layers);
    let listed: Vec<String> = names(&merged).into_iter().map(|(n, _)| n).collect();
    // The file cut the base's `d` off: the whiteout keeps it cut off.
    assert_eq!(listed, [".wh.d", "d/", "d/new"]);
}

#[test]
fn a_hard_link_whose_target_is_shadowed_carries_the_content() {
    let layers = vec![
        TarBuilder::new()
            .file("t", b"shared")
            .hardlink("l1", "t")
            .hardlink("l2", "t")
            .build(),
        TarBuilder::new().file("t", b"replaced").build(),
    ];
    let merged = assert_equivalent(&layers);
    assert_eq!(
        names(&merged),
        [
            ("l1".to_owned(), None),
            ("l2".to_owned(), Some("l1".to_owned())),
            ("t".to_owned(), None)
        ]
    );
}

#[test]
fn parents_a_layer_does_not_list_are_made_as_unpack_makes_them() {
    let layers = vec![
        TarBuilder::new()
            .dir_mode("p/", 0o700)
            .file("p/q/f", b"1")
            .build(),
        TarBuilder::new().file("p/q/g", b"2").build(),
    ];
    assert_equivalent(&layers);
}

#[test]
fn a_layer_that_reads_differently_the_second_time_fails_the_squash() {
    let first = TarBuilder::new().file("a", b"1").build();
    let second = TarBuilder::new().file("b", b"1").build();
    let mut opened = 0;
    let err = squash(
        1,
        |_| {
            opened += 1;
            Ok(if opened == 1 { &first[..] } else { &second[..] })
        },
        Vec::new(),
    )
    .unwrap_err();
    assert!(matches!(err, SquashError::Changed { layer: 0 }), "{err}");
}

#[test]
fn hostile_layers_are_refused_naming_the_layer() {
    let good = TarBuilder::new().file("a", b"1").build();
    let bad = TarBuilder::new().file("../escape", b"1").build();
    let layers = [good, bad];
    let err = squash(2, |i| Ok(&layers[i][..]), Vec::new()).unwrap_err();
    assert!(matches!(err, SquashError::Layer { layer: 1, .. }), "{err}");
    assert!(err.to_string().contains("layer 1"), "{err}");
}
