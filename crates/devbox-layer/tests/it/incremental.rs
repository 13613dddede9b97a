//! Incremental commits of a real overlay upperdir: after every commit, the
//! base with the commits' layers in order gives exactly the merged view, both
//! applied as plain trees and mounted as overlay lowers (as the runtime does).

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};

use devbox_layer::ignore::IgnoreSet;
use devbox_layer::pack::{PackStats, pack_changes};
use devbox_layer::testing::{apply_layers, tree_listing};
use devbox_layer::unpack::unpack;
use devbox_layer::watermark::Watermark;
use devbox_layer::{DiffItem, diff_changes};

use crate::support::{Mount, devbox_options, list_tar, pack, require_root, set_xattr};

/// A devbox-like overlay: a base directory as the lower layer, an upperdir,
/// and its commits.
struct Devbox {
    tmp: tempfile::TempDir,
    lower: PathBuf,
    upper: PathBuf,
    merged: PathBuf,
    mount: Option<Mount>,
    index: Option<Vec<u8>>,
    layers: Vec<Vec<u8>>,
    ignore: IgnoreSet,
}

impl Devbox {
    fn new(base: impl FnOnce(&Path)) -> Devbox {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |name: &str| {
            let p = tmp.path().join(name);
            fs::create_dir(&p).unwrap();
            p
        };
        let (lower, upper, work, merged) = (dir("lower"), dir("upper"), dir("work"), dir("merged"));
        base(&lower);
        let options = devbox_options(&lower.display().to_string(), &upper, &work);
        let mount = Some(Mount::overlay(&merged, &options));
        Devbox {
            tmp,
            lower,
            upper,
            merged,
            mount,
            index: None,
            layers: Vec::new(),
            ignore: IgnoreSet::defaults(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.merged.join(rel)
    }

    /// Commits the upperdir as it is now (live), and checks the result.
    fn commit(&mut self) -> (Vec<String>, PackStats) {
        let mut listed = Vec::new();
        let mut prev = self.index.as_deref();
        let diff = diff_changes(
            &self.upper,
            prev.as_mut().map(|r| r as &mut dyn Read),
            &self.ignore,
            |item| listed.push(item),
        )
        .unwrap();

        let watermark = Watermark::take(self.tmp.path()).unwrap();
        let (mut tar, mut index) = (Vec::new(), Vec::new());
        let mut prev = self.index.as_deref();
        let stats = pack_changes(
            &self.upper,
            prev.as_mut().map(|r| r as &mut dyn Read),
            &self.ignore,
            watermark,
            &mut tar,
            &mut index,
        )
        .unwrap();
        assert_eq!(
            stats.changes,
            diff.changes(),
            "the diff lists what is packed: {listed:?}"
        );
        assert!(listed.iter().all(|i| match i {
            DiffItem::Changed { path, .. } => !path.starts_with(b"tmp"),
            DiffItem::Ignored { path, .. } => path == b"tmp",
        }));
        self.index = Some(index);
        let names = list_tar(&tar).into_iter().map(|e| e.0).collect();
        self.layers.push(tar);
        self.check();
        (names, stats)
    }

    /// The base and the layers so far give the merged view, minus what is ignored.
    fn check(&self) {
        let expected = without_tmp(&tree_listing(&self.merged).unwrap());
        let n = self.layers.len();
        let base = pack(&self.lower, false);

        let applied = self.tmp.path().join(format!("applied-{n}"));
        fs::create_dir(&applied).unwrap();
        let layers = std::iter::once(&base[..]).chain(self.layers.iter().map(|l| &l[..]));
        apply_layers(layers, &applied).unwrap();
        let applied = without_tmp(&tree_listing(&applied).unwrap());
        assert_eq!(applied, expected, "layers applied after commit {n}");

        // Mounted the way the runtime mounts them: newest layer first.
        let mut lowers = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let dir = self.tmp.path().join(format!("layer-{n}-{i}"));
            fs::create_dir(&dir).unwrap();
            unpack(&layer[..], &dir).unwrap();
            lowers.push(dir.display().to_string());
        }
        lowers.reverse();
        lowers.push(self.lower.display().to_string());
        let view = self.tmp.path().join(format!("view-{n}"));
        fs::create_dir(&view).unwrap();
        let _view = Mount::overlay(&view, &format!("lowerdir={}", lowers.join(":")));
        let mounted = without_tmp(&tree_listing(&view).unwrap());
        assert_eq!(mounted, expected, "layers mounted after commit {n}");
    }
}

impl Drop for Devbox {
    fn drop(&mut self) {
        self.mount.take();
    }
}

/// A tree listing without the ignored `/tmp`, which commits leave out.
fn without_tmp(listing: &str) -> String {
    listing
        .lines()
        .filter(|l| !l.starts_with("tmp ") && !l.starts_with("tmp/"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn base(root: &Path) {
    fs::create_dir_all(root.join("etc/app")).unwrap();
    fs::write(root.join("etc/app/conf"), b"base conf").unwrap();
    fs::write(root.join("etc/motd"), b"hello").unwrap();
    fs::write(root.join("etc/gone-in-2"), b"lower file").unwrap();
    fs::create_dir_all(root.join("usr/lib/pkg/sub")).unwrap();
    fs::write(root.join("usr/lib/pkg/a"), b"a").unwrap();
    fs::write(root.join("usr/lib/pkg/sub/b"), b"b").unwrap();
    fs::create_dir(root.join("var")).unwrap();
    for i in 0..8 {
        fs::write(root.join(format!("var/log{i}")), b"log").unwrap();
    }
    fs::create_dir(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
}

fn is_whiteout(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|md| md.file_type().is_char_device() && md.rdev() == 0)
}

#[test]
fn incremental_commits_of_a_live_overlay_give_its_merged_view() {
    require_root();
    let mut d = Devbox::new(base);

    // 1: new files and directories, a changed lower file, metadata changes.
    fs::create_dir_all(d.path("home/dev/project")).unwrap();
    fs::write(d.path("home/dev/project/main.rs"), b"fn main() {}").unwrap();
    fs::write(d.path("home/dev/notes"), b"notes").unwrap();
    lchown(d.path("home/dev"), Some(1000), Some(1000)).unwrap();
    lchown(d.path("home/dev/notes"), Some(1000), Some(1000)).unwrap();
    symlink("project/main.rs", d.path("home/dev/main")).unwrap();
    fs::hard_link(d.path("home/dev/notes"), d.path("home/dev/notes.bak")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.path("home/dev/pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    fs::write(d.path("etc/app/conf"), b"changed conf").unwrap();
    fs::set_permissions(d.path("etc/motd"), fs::Permissions::from_mode(0o600)).unwrap();
    set_xattr(&d.path("home/dev/project"), "user.tag", b"v1");
    fs::create_dir(d.path("home/dev/becomes-file")).unwrap();
    fs::write(d.path("home/dev/becomes-file/inner"), b"inner").unwrap();
    fs::write(d.path("tmp/scratch"), vec![1u8; 4096]).unwrap();
    let (names, stats) = d.commit();
    assert!(names.contains(&"etc/app/conf".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("tmp")), "{names:?}");
    assert_eq!((stats.ignored, stats.ignored_bytes), (2, 4096));

    // 2: changes to what commit 1 packed, deletions of both kinds, a rename,
    // a lower directory deleted and made again, a new link to an old file.
    fs::write(d.path("home/dev/project/main.rs"), b"fn main() { v2 }").unwrap();
    fs::remove_file(d.path("home/dev/pipe")).unwrap();
    fs::remove_file(d.path("etc/gone-in-2")).unwrap();
    fs::rename(d.path("home/dev/notes.bak"), d.path("home/dev/notes.old")).unwrap();
    fs::remove_dir_all(d.path("usr/lib/pkg")).unwrap();
    fs::create_dir(d.path("usr/lib/pkg")).unwrap();
    fs::write(d.path("usr/lib/pkg/fresh"), b"fresh").unwrap();
    fs::hard_link(
        d.path("home/dev/project/main.rs"),
        d.path("home/dev/main.link"),
    )
    .unwrap();
    for i in 0..8 {
        fs::remove_file(d.path(&format!("var/log{i}"))).unwrap();
    }
    assert!(is_whiteout(&d.upper.join("etc/gone-in-2")));
    let (names, _) = d.commit();
    for expected in [
        "home/dev/.wh.pipe",
        "home/dev/.wh.notes.bak",
        "home/dev/notes.old",
        "etc/.wh.gone-in-2",
        "usr/lib/pkg/",
        "usr/lib/pkg/.wh..wh..opq",
        "var/.wh.log7",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} not in {names:?}"
        );
    }

    // 3: a directory replaced by a file, a whiteout replaced by a file of the
    // same name, a directory of commit 1 deleted, changes in the opaque one.
    fs::remove_dir_all(d.path("home/dev/becomes-file")).unwrap();
    fs::write(d.path("home/dev/becomes-file"), b"a file now").unwrap();
    fs::write(d.path("etc/gone-in-2"), b"back again").unwrap();
    fs::remove_dir_all(d.path("home/dev/project")).unwrap();
    fs::write(d.path("usr/lib/pkg/second"), b"second").unwrap();
    let (names, _) = d.commit();
    assert!(
        !names.iter().any(|n| n.contains(".wh..wh..opq")),
        "an opaque directory committed before gets no marker again: {names:?}"
    );
    assert!(
        names.contains(&"home/dev/.wh.project".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("home/dev/project/")),
        "{names:?}"
    );

    // 4: and back to a directory; a file of the opaque directory deleted.
    fs::remove_file(d.path("home/dev/becomes-file")).unwrap();
    fs::create_dir(d.path("home/dev/becomes-file")).unwrap();
    fs::write(d.path("home/dev/becomes-file/again"), b"again").unwrap();
    fs::remove_file(d.path("usr/lib/pkg/fresh")).unwrap();
    let (names, _) = d.commit();
    assert!(
        names.contains(&"usr/lib/pkg/.wh.fresh".to_owned()),
        "{names:?}"
    );

    // 5: nothing changed since: only entries the last commit may have caught
    // mid-change are packed again, and the view stays the same.
    d.commit();
}

#[test]
fn an_upperdir_committed_from_no_index_matches_pack_dir() {
    require_root();
    let mut d = Devbox::new(base);
    fs::write(d.path("etc/new"), b"new").unwrap();
    fs::remove_file(d.path("etc/motd")).unwrap();
    d.ignore = IgnoreSet::empty();
    d.commit();
    assert_eq!(d.layers[0], pack(&d.upper, true));
}
