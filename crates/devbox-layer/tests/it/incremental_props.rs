//! Property tests of incremental packing on plain directories standing in
//! for upperdirs: after any sequence of changes and commits, the commits'
//! layers applied in order give the directory's tree; squashing any prefix
//! of them changes nothing; the diff listing agrees with every pack.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use devbox_layer::diff_changes;
use devbox_layer::ignore::IgnoreSet;
use devbox_layer::pack::pack_changes;
use devbox_layer::squash::squash;
use devbox_layer::testing::{apply_layers, tree_listing};
use devbox_layer::watermark::Watermark;
use proptest::prelude::*;

use crate::support::{require_root, set_xattr};

/// Paths the operations pick from: a small namespace, so that operations
/// keep running into each other (a file where a directory was, and so on).
const PATHS: [&str; 10] = [
    "a", "b", "d", "d/a", "d/b", "d/e", "d/e/a", "e", "e/a", "d.x",
];

#[derive(Debug, Clone)]
enum Op {
    Write(usize, u8, usize),
    Append(usize),
    Mkdir(usize),
    Remove(usize),
    Rename(usize, usize),
    Link(usize, usize),
    Symlink(usize, usize),
    Chmod(usize, u32),
    Xattr(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let p = || 0..PATHS.len();
    prop_oneof![
        3 => (p(), any::<u8>(), 0..3000usize).prop_map(|(a, b, n)| Op::Write(a, b, n)),
        1 => p().prop_map(Op::Append),
        2 => p().prop_map(Op::Mkdir),
        2 => p().prop_map(Op::Remove),
        1 => (p(), p()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => (p(), p()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => (p(), p()).prop_map(|(a, b)| Op::Symlink(a, b)),
        1 => (p(), prop_oneof![Just(0o600), Just(0o755), Just(0o4711)]).prop_map(|(a, m)| Op::Chmod(a, m)),
        // A newline byte in an xattr value is left out: the layer written is
        // valid PAX, but the tar crate's PAX reader splits records at
        // newlines and refuses it (see the reader's known limits in
        // ARCHITECTURE.md).
        1 => (p(), any::<u8>().prop_filter("no newline", |v| *v != b'\n')).prop_map(|(a, v)| Op::Xattr(a, v)),
    ]
}

/// Applies an operation; one that does not fit the tree (a missing parent,
/// a name already taken) simply fails, as it would for a user.
fn apply(root: &Path, op: &Op) {
    let at = |i: usize| root.join(PATHS[i]);
    let _ = match op {
        Op::Write(a, b, n) => fs::write(at(*a), vec![*b; *n]),
        Op::Append(a) => fs::OpenOptions::new()
            .append(true)
            .open(at(*a))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"more")),
        Op::Mkdir(a) => fs::create_dir(at(*a)),
        Op::Remove(a) => match fs::symlink_metadata(at(*a)) {
            Ok(md) if md.is_dir() => fs::remove_dir_all(at(*a)),
            Ok(_) => fs::remove_file(at(*a)),
            Err(e) => Err(e),
        },
        Op::Rename(a, b) => fs::rename(at(*a), at(*b)),
        Op::Link(a, b) => fs::hard_link(at(*a), at(*b)),
        Op::Symlink(a, b) => symlink(PATHS[*b], at(*a)),
        Op::Chmod(a, m) => match fs::symlink_metadata(at(*a)) {
            Ok(md) if !md.file_type().is_symlink() => {
                fs::set_permissions(at(*a), fs::Permissions::from_mode(*m))
            }
            _ => Ok(()),
        },
        Op::Xattr(a, v) => {
            if fs::symlink_metadata(at(*a)).is_ok_and(|md| !md.file_type().is_symlink()) {
                set_xattr(&at(*a), "user.prop", &[*v]);
            }
            Ok(())
        }
    };
}

struct Run {
    tmp: tempfile::TempDir,
    src: PathBuf,
    index: Option<Vec<u8>>,
    layers: Vec<Vec<u8>>,
    applied: usize,
}

impl Run {
    fn new() -> Run {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        Run {
            tmp,
            src,
            index: None,
            layers: Vec::new(),
            applied: 0,
        }
    }

    fn commit(&mut self) -> Result<(), TestCaseError> {
        let ignore = IgnoreSet::empty();
        let mut prev = self.index.as_deref();
        let diff = diff_changes(
            &self.src,
            prev.as_mut().map(|r| r as &mut dyn Read),
            &ignore,
            |_| {},
        )
        .unwrap();
        let watermark = Watermark::take(self.tmp.path()).unwrap();
        let (mut tar, mut index) = (Vec::new(), Vec::new());
        let mut prev = self.index.as_deref();
        let stats = pack_changes(
            &self.src,
            prev.as_mut().map(|r| r as &mut dyn Read),
            &ignore,
            watermark,
            &mut tar,
            &mut index,
        )
        .unwrap();
        prop_assert_eq!(stats.changes, diff.changes());
        self.index = Some(index);
        self.layers.push(tar);
        Ok(())
    }

    /// Applies `layers` onto a fresh directory and returns its listing.
    fn listing_of(&mut self, layers: &[&[u8]]) -> String {
        self.applied += 1;
        let dest = self.tmp.path().join(format!("applied-{}", self.applied));
        fs::create_dir(&dest).unwrap();
        apply_layers(layers.iter().copied(), &dest).unwrap();
        let listing = tree_listing(&dest).unwrap();
        fs::remove_dir_all(&dest).unwrap();
        listing
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn incremental_layers_applied_in_order_give_the_tree(
        steps in prop::collection::vec(prop::collection::vec(op(), 0..8), 1..6),
    ) {
        require_root();
        let mut run = Run::new();
        for ops in &steps {
            for op in ops {
                apply(&run.src, op);
            }
            run.commit()?;
            let expected = tree_listing(&run.src).unwrap();
            let layers: Vec<Vec<u8>> = run.layers.clone();
            let all: Vec<&[u8]> = layers.iter().map(|l| &l[..]).collect();
            prop_assert_eq!(run.listing_of(&all), expected);
        }

        // Squashing the oldest layers (any number of them) gives the same tree.
        let expected = tree_listing(&run.src).unwrap();
        let layers = run.layers.clone();
        for k in 1..=layers.len() {
            let mut merged = Vec::new();
            squash(k, |i| Ok(&layers[i][..]), &mut merged).unwrap();
            let mut rest: Vec<&[u8]> = vec![&merged];
            rest.extend(layers[k..].iter().map(|l| &l[..]));
            prop_assert_eq!(run.listing_of(&rest), expected.clone(), "the oldest {} squashed", k);
        }
    }
}
