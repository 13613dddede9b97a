//! Property tests of squash on arbitrary layers (not only the ones pack
//! writes): whiteouts, opaque markers, files and directories replacing each
//! other, hard links, parents a layer does not list. Applied on the same
//! base, the squashed layer and the layers in order give the same tree.

use std::fs;
use std::path::Path;

use devbox_layer::squash::squash;
use devbox_layer::testing::{apply_layers, tree_listing};
use proptest::prelude::*;

use crate::support::{TarBuilder, require_root};

const PATHS: [&str; 8] = ["a", "b", "d", "d/a", "d/b", "d/e", "d/e/a", "e"];

#[derive(Debug, Clone)]
enum Item {
    Dir(usize, u32),
    File(usize, u32),
    Whiteout(usize),
    Opaque(usize),
    /// A link to the n-th file written earlier in the same layer, if any.
    Link(usize, usize),
    Symlink(usize),
}

fn item() -> impl Strategy<Value = Item> {
    let p = || 0..PATHS.len();
    let mode = || prop_oneof![Just(0o755), Just(0o700), Just(0o644), Just(0o600)];
    prop_oneof![
        3 => (p(), mode()).prop_map(|(a, m)| Item::Dir(a, m)),
        4 => (p(), mode()).prop_map(|(a, m)| Item::File(a, m)),
        2 => p().prop_map(Item::Whiteout),
        1 => p().prop_map(Item::Opaque),
        1 => (p(), 0..4usize).prop_map(|(a, n)| Item::Link(a, n)),
        1 => p().prop_map(Item::Symlink),
    ]
}

/// `<parent>/<prefix><name>` for a path of the namespace.
fn marked(path: &str, prefix: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{prefix}{name}"),
        None => format!("{prefix}{path}"),
    }
}

/// Builds a layer; `with_parents` lists each entry's parents before it.
fn layer(items: &[Item], with_parents: bool, tag: usize) -> Vec<u8> {
    let mut tar = TarBuilder::new();
    let mut files: Vec<&str> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = match item {
            Item::Dir(a, _) | Item::File(a, _) | Item::Whiteout(a) | Item::Link(a, _) => PATHS[*a],
            Item::Opaque(a) | Item::Symlink(a) => PATHS[*a],
        };
        if with_parents {
            let mut parent = String::new();
            for component in path
                .split('/')
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .skip(1)
                .rev()
            {
                parent = if parent.is_empty() {
                    (*component).to_owned()
                } else {
                    format!("{parent}/{component}")
                };
                tar = tar.dir(&format!("{parent}/"));
            }
        }
        tar = match item {
            Item::Dir(_, mode) => tar.dir_mode(&format!("{path}/"), *mode),
            Item::File(_, mode) => {
                files.push(path);
                tar.file_mode(path, *mode, format!("layer {tag} entry {i}").as_bytes())
            }
            Item::Whiteout(_) => tar.file(&marked(path, ".wh."), b""),
            Item::Opaque(_) => tar.file(&format!("{path}/.wh..wh..opq"), b""),
            Item::Link(_, n) => match files.get(*n) {
                Some(target) if *target != path => tar.hardlink(path, target),
                _ => tar,
            },
            Item::Symlink(_) => tar.symlink(path, &format!("target-{tag}-{i}")),
        };
    }
    tar.build()
}

fn base(root: &Path) {
    fs::create_dir_all(root.join("d/e")).unwrap();
    fs::write(root.join("d/e/a"), b"base").unwrap();
    fs::write(root.join("d/b"), b"base").unwrap();
    fs::write(root.join("a"), b"base").unwrap();
    fs::create_dir(root.join("e")).unwrap();
    fs::write(root.join("e/kept"), b"base").unwrap();
}

/// The base with `layers` applied, or `None` if unpack refuses one.
fn applied(tmp: &Path, name: &str, layers: &[&[u8]]) -> Option<String> {
    let dest = tmp.join(name);
    fs::create_dir(&dest).unwrap();
    base(&dest);
    let ok = apply_layers(layers.iter().copied(), &dest).is_ok();
    ok.then(|| tree_listing(&dest).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_squash_gives_what_its_layers_give(
        spec in prop::collection::vec(
            (prop::collection::vec(item(), 0..7), any::<bool>()),
            1..5,
        ),
    ) {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let layers: Vec<Vec<u8>> = spec
            .iter()
            .enumerate()
            .map(|(tag, (items, parents))| layer(items, *parents, tag))
            .collect();
        let all: Vec<&[u8]> = layers.iter().map(|l| &l[..]).collect();
        let expected = applied(tmp.path(), "layers", &all);
        // Layers unpack refuses (a parent that is a file) are not squashed either.
        prop_assume!(expected.is_some());
        for k in 1..=layers.len() {
            let mut merged = Vec::new();
            squash(k, |i| Ok(&layers[i][..]), &mut merged).unwrap();
            let mut rest: Vec<&[u8]> = vec![&merged];
            rest.extend(all[k..].iter().copied());
            let got = applied(tmp.path(), &format!("squashed-{k}"), &rest);
            prop_assert_eq!(&got, &expected, "the oldest {} squashed", k);
        }
    }
}
