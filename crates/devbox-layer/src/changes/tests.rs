//! Incremental packing of plain directories (no root needed): what a layer
//! holds after each kind of change.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use crate::ignore::IgnoreSet;
use crate::index::{IndexEntry, IndexReader};
use crate::pack::{PackError, PackOptions, PackStats, pack_changes, pack_dir};
use crate::watermark::Watermark;

/// A watermark no entry reaches: nothing is rechecked.
fn settled(dir: &Path) -> Watermark {
    let st = rustix::fs::stat(dir).unwrap();
    Watermark::at(i64::MAX, crate::stat::dev(&st))
}

struct Commit {
    tar: Vec<u8>,
    index: Vec<u8>,
    stats: PackStats,
}

fn commit_with(dir: &Path, previous: Option<&[u8]>, ignore: &IgnoreSet, w: Watermark) -> Commit {
    let mut tar = Vec::new();
    let mut index = Vec::new();
    let mut prev = previous;
    let prev = prev.as_mut().map(|r| r as &mut dyn std::io::Read);
    let stats = pack_changes(dir, prev, ignore, w, &mut tar, &mut index).unwrap();
    Commit { tar, index, stats }
}

fn commit(dir: &Path, previous: Option<&Commit>) -> Commit {
    let prev = previous.map(|c| c.index.as_slice());
    commit_with(dir, prev, &IgnoreSet::empty(), settled(dir))
}

/// (name, link target) of each tar entry.
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

fn plain(tar: &[u8]) -> Vec<String> {
    names(tar).into_iter().map(|(n, _)| n).collect()
}

fn index_entries(index: &[u8]) -> Vec<IndexEntry> {
    IndexReader::new(index)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn tree(root: &Path) {
    fs::create_dir_all(root.join("etc/app")).unwrap();
    fs::write(root.join("etc/app/conf"), b"v1").unwrap();
    fs::write(root.join("etc/hosts"), b"hosts").unwrap();
    fs::create_dir_all(root.join("home/dev")).unwrap();
    fs::write(root.join("home/dev/notes"), b"notes").unwrap();
    symlink("notes", root.join("home/dev/link")).unwrap();
}

#[test]
fn with_no_index_the_layer_is_what_pack_dir_writes() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let full = commit(tmp.path(), None);
    let mut tar = Vec::new();
    let stats = pack_dir(tmp.path(), &mut tar, &PackOptions { overlay: true }).unwrap();
    assert_eq!(full.tar, tar);
    assert_eq!(full.stats, stats);
    assert_eq!(full.stats.changes, full.stats.entries);
    let paths: Vec<Vec<u8>> = index_entries(&full.index)
        .into_iter()
        .map(|e| e.path)
        .collect();
    let expected: Vec<&[u8]> = vec![
        b"etc",
        b"etc/app",
        b"etc/app/conf",
        b"etc/hosts",
        b"home",
        b"home/dev",
        b"home/dev/link",
        b"home/dev/notes",
    ];
    assert_eq!(paths, expected);
}

#[test]
fn an_unchanged_tree_gives_an_empty_layer() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let first = commit(tmp.path(), None);
    let second = commit(tmp.path(), Some(&first));
    assert_eq!(plain(&second.tar), Vec::<String>::new());
    assert_eq!(second.stats.changes, 0);
    assert_eq!(second.index, first.index, "the index is the same too");
}

#[test]
fn a_changed_file_comes_with_its_parents_only() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let first = commit(tmp.path(), None);
    fs::write(tmp.path().join("etc/app/conf"), b"v2, longer").unwrap();
    let second = commit(tmp.path(), Some(&first));
    assert_eq!(plain(&second.tar), ["etc/", "etc/app/", "etc/app/conf"]);
    assert_eq!(second.stats.changes, 1);
    assert_eq!(second.stats.bytes, 10);
}

#[test]
fn a_file_of_an_earlier_commit_deleted_since_is_whited_out() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let first = commit(tmp.path(), None);
    fs::remove_file(tmp.path().join("etc/hosts")).unwrap();
    fs::remove_dir_all(tmp.path().join("home")).unwrap();
    let second = commit(tmp.path(), Some(&first));
    // The directory was changed by the deletion; `home`'s content needs no whiteouts of its own.
    assert_eq!(plain(&second.tar), ["etc/", "etc/.wh.hosts", ".wh.home"]);
    assert_eq!(second.stats.whiteouts, 2);
    // The root itself is no entry, so `home`'s whiteout comes after `etc`'s content.
    let paths: Vec<Vec<u8>> = index_entries(&second.index)
        .into_iter()
        .map(|e| e.path)
        .collect();
    let expected: Vec<&[u8]> = vec![b"etc", b"etc/app", b"etc/app/conf"];
    assert_eq!(paths, expected);
}

#[test]
fn a_rename_is_a_deletion_and_an_addition() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let first = commit(tmp.path(), None);
    fs::rename(tmp.path().join("etc/hosts"), tmp.path().join("etc/hosts2")).unwrap();
    let second = commit(tmp.path(), Some(&first));
    assert_eq!(plain(&second.tar), ["etc/", "etc/.wh.hosts", "etc/hosts2"]);
}

#[test]
fn a_directory_replaced_by_a_file_and_back() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let first = commit(tmp.path(), None);
    fs::remove_dir_all(tmp.path().join("etc/app")).unwrap();
    fs::write(tmp.path().join("etc/app"), b"now a file").unwrap();
    let second = commit(tmp.path(), Some(&first));
    // The file hides the old directory's content: no whiteouts below it.
    assert_eq!(plain(&second.tar), ["etc/", "etc/app"]);

    fs::remove_file(tmp.path().join("etc/app")).unwrap();
    fs::create_dir(tmp.path().join("etc/app")).unwrap();
    fs::write(tmp.path().join("etc/app/new"), b"new").unwrap();
    let third = commit(tmp.path(), Some(&second));
    assert_eq!(plain(&third.tar), ["etc/", "etc/app/", "etc/app/new"]);
}

#[test]
fn metadata_changes_are_caught() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let first = commit(tmp.path(), None);
    let notes = tmp.path().join("home/dev/notes");
    fs::set_permissions(&notes, fs::Permissions::from_mode(0o600)).unwrap();
    let second = commit(tmp.path(), Some(&first));
    assert_eq!(plain(&second.tar), ["home/", "home/dev/", "home/dev/notes"]);
}

#[test]
fn entries_changed_at_or_after_the_watermark_are_packed_again_next_time() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let dev = crate::stat::dev(&rustix::fs::stat(tmp.path()).unwrap());
    let ignore = IgnoreSet::empty();
    // A watermark before everything: all of it may have been caught mid-write.
    let first = commit_with(tmp.path(), None, &ignore, Watermark::at(0, dev));
    assert!(index_entries(&first.index).iter().all(|e| e.recheck));
    let second = commit_with(tmp.path(), Some(&first.index), &ignore, settled(tmp.path()));
    assert_eq!(second.tar, first.tar, "everything is packed again");
    assert!(index_entries(&second.index).iter().all(|e| !e.recheck));
    let third = commit(tmp.path(), Some(&second));
    assert_eq!(third.stats.changes, 0, "and then it has settled");
}

#[test]
fn a_link_to_a_file_of_an_earlier_commit_carries_the_content() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let first = commit(tmp.path(), None);
    fs::hard_link(tmp.path().join("etc/hosts"), tmp.path().join("home/hosts")).unwrap();
    let second = commit(tmp.path(), Some(&first));
    // Linking changed the inode's change time: both names are packed, the
    // first with the content, the second as a link to it in this layer.
    assert_eq!(
        names(&second.tar),
        [
            ("etc/".to_owned(), None),
            ("etc/hosts".to_owned(), None),
            ("home/".to_owned(), None),
            ("home/hosts".to_owned(), Some("etc/hosts".to_owned())),
        ]
    );
    assert_eq!(second.stats.bytes, 5);
}

#[test]
fn ignored_paths_are_left_out_counted_and_never_whited_out() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    fs::create_dir_all(tmp.path().join("tmp/deep")).unwrap();
    fs::write(tmp.path().join("tmp/deep/big"), vec![7u8; 3000]).unwrap();
    fs::write(tmp.path().join("etc/app/conf.swp"), b"swap").unwrap();
    let mut ignore = IgnoreSet::defaults();
    ignore.add_list(["*.swp"], "test").unwrap();
    let w = settled(tmp.path());
    let first = commit_with(tmp.path(), None, &ignore, w);
    let tar = plain(&first.tar);
    assert!(
        tar.iter()
            .all(|n| !n.starts_with("tmp") && !n.ends_with(".swp")),
        "{tar:?}"
    );
    assert_eq!(
        first.stats.ignored, 4,
        "tmp, tmp/deep, tmp/deep/big, conf.swp"
    );
    assert_eq!(first.stats.ignored_bytes, 3004);

    // A file committed before a rule ignored it stays in the index, so
    // deleting it while ignored writes nothing, and the image keeps it.
    let plain_set = IgnoreSet::empty();
    let before = commit_with(tmp.path(), None, &plain_set, w);
    fs::remove_file(tmp.path().join("etc/app/conf.swp")).unwrap();
    let after = commit_with(tmp.path(), Some(&before.index), &ignore, w);
    assert!(!plain(&after.tar).contains(&"etc/app/.wh.conf.swp".to_owned()));
    let kept = index_entries(&after.index);
    assert!(kept.iter().any(|e| e.path == b"etc/app/conf.swp"));
    assert!(kept.iter().any(|e| e.path == b"tmp/deep/big"));
    // Once the rule is gone, the deletion is committed.
    let later = commit_with(tmp.path(), Some(&after.index), &plain_set, w);
    assert!(plain(&later.tar).contains(&"etc/app/.wh.conf.swp".to_owned()));
}

#[test]
fn an_index_of_another_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    let first = commit(&a, None);
    let mut prev = first.index.as_slice();
    let err = pack_changes(
        &b,
        Some(&mut prev),
        &IgnoreSet::empty(),
        settled(&b),
        Vec::new(),
        Vec::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, PackError::IndexOfAnotherDirectory { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&b.display().to_string()), "{err}");
}

#[test]
fn a_corrupt_index_fails_the_pack() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let first = commit(tmp.path(), None);
    let mut bad = first.index.clone();
    let n = bad.len();
    bad[n - 10] ^= 0x55;
    let mut prev = bad.as_slice();
    let err = pack_changes(
        tmp.path(),
        Some(&mut prev),
        &IgnoreSet::empty(),
        settled(tmp.path()),
        Vec::new(),
        Vec::new(),
    )
    .unwrap_err();
    assert!(matches!(err, PackError::Index { .. }), "{err}");
}

#[test]
fn a_watermark_of_another_filesystem_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = pack_changes(
        tmp.path(),
        None,
        &IgnoreSet::empty(),
        Watermark::at(0, u64::MAX),
        Vec::new(),
        Vec::new(),
    )
    .unwrap_err();
    assert!(matches!(err, PackError::WatermarkElsewhere { .. }), "{err}");
}

#[test]
fn a_whiteout_counts_as_a_directory_for_directory_patterns() {
    crate::test_tree::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let mknod = |name: &str| {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join(name),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
    };
    mknod("build");
    mknod("other");
    let mut ignore = IgnoreSet::empty();
    ignore.add_list(["build/"], "test").unwrap();
    let c = commit_with(tmp.path(), None, &ignore, settled(tmp.path()));
    assert_eq!(plain(&c.tar), [".wh.other"]);
    assert_eq!(c.stats.ignored, 1);
}

/// A tar sink that changes the tree the first time the pack writes to it.
struct Meddling<F: FnMut()> {
    out: Vec<u8>,
    hook: Option<F>,
}

impl<F: FnMut()> std::io::Write for Meddling<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(mut hook) = self.hook.take() {
            hook();
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_file_written_during_the_walk_is_caught_next_time() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("upper");
    fs::create_dir(&root).unwrap();
    for name in ["a", "m", "z"] {
        fs::write(root.join(name), b"before").unwrap();
    }
    let ignore = IgnoreSet::empty();
    let first = commit_with(&root, None, &ignore, Watermark::take(tmp.path()).unwrap());

    // `a` is packed first; it changes (same size) while the commit runs.
    fs::write(root.join("m"), b"second").unwrap();
    let a = root.join("a");
    let mut tar = Meddling {
        out: Vec::new(),
        hook: Some(|| fs::write(&a, b"during").unwrap()),
    };
    let mut index = Vec::new();
    let watermark = Watermark::take(tmp.path()).unwrap();
    let mut prev = first.index.as_slice();
    pack_changes(
        &root,
        Some(&mut prev),
        &ignore,
        watermark,
        &mut tar,
        &mut index,
    )
    .unwrap();
    // Files written in the tick the first commit started in come again too.
    assert!(plain(&tar.out).contains(&"m".to_owned()));

    let third = commit_with(
        &root,
        Some(&index),
        &ignore,
        Watermark::take(tmp.path()).unwrap(),
    );
    assert!(
        plain(&third.tar).contains(&"a".to_owned()),
        "{:?}",
        plain(&third.tar)
    );
}

#[test]
fn a_commit_packs_straight_into_a_layer_writer() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let plain_commit = commit(tmp.path(), None);
    let mut layer =
        crate::compression::LayerWriter::new(Vec::new(), crate::compression::Compression::Gzip, 2)
            .unwrap();
    let stats = pack_changes(
        tmp.path(),
        None,
        &IgnoreSet::empty(),
        settled(tmp.path()),
        &mut layer,
        std::io::sink(),
    )
    .unwrap();
    let (blob, digests) = layer.finish().unwrap();
    assert_eq!(stats, plain_commit.stats);
    assert_eq!(
        digests.diff_id,
        crate::digest::Digest::of(&plain_commit.tar)
    );
    assert_eq!(digests.digest, crate::digest::Digest::of(&blob));
}
