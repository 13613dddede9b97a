use std::fs;
use std::os::unix::fs::symlink;

use super::*;

fn set(text: &str) -> IgnoreSet {
    let mut set = IgnoreSet::empty();
    set.add_text(text.as_bytes(), "test").unwrap();
    set
}

/// Examples from the gitignore documentation, with the outcome git gives.
#[test]
fn documented_gitignore_examples_hold() {
    // (patterns, path, is_dir, ignored)
    let table: &[(&str, &str, bool, bool)] = &[
        // "doc/frotz/" matches doc/frotz directory, but not a/doc/frotz directory.
        ("doc/frotz/", "doc/frotz", true, true),
        ("doc/frotz/", "a/doc/frotz", true, false),
        // "frotz/" matches frotz and a/frotz that are directories.
        ("frotz/", "frotz", true, true),
        ("frotz/", "a/frotz", true, true),
        ("frotz/", "a/frotz", false, false),
        // "*.html" and negation of one file.
        ("*.html\n!foo.html", "x/bar.html", false, true),
        ("*.html\n!foo.html", "x/foo.html", false, false),
        // "/*.c" matches cat-file.c but not mozilla-sha1/sha1.c.
        ("/*.c", "cat-file.c", false, true),
        ("/*.c", "mozilla-sha1/sha1.c", false, false),
        // "foo/*" matches foo/test.json but not foo/bar/hello.c (not descended further).
        ("foo/*", "foo/test.json", false, true),
        ("foo/*", "foo/bar/hello.c", false, false),
        // "**/foo" matches foo anywhere, "**/foo/bar" bar directly under foo anywhere.
        ("**/foo", "a/b/foo", false, true),
        ("**/foo/bar", "a/foo/bar", false, true),
        ("**/foo/bar", "a/foo/x/bar", false, false),
        // "abc/**" matches everything inside abc.
        ("abc/**", "abc/d/e", false, true),
        // "a/**/b" matches a/b, a/x/b, a/x/y/b.
        ("a/**/b", "a/x/y/b", false, true),
        // The last match wins, and a later pattern can ignore again.
        ("*.log\n!keep.log\nkeep.log", "keep.log", false, true),
        // A comment and an escaped hash.
        ("# not a pattern", "# not a pattern", false, false),
        ("\\#hash", "#hash", false, true),
    ];
    for &(patterns, path, is_dir, ignored) in table {
        assert_eq!(
            set(patterns).is_ignored(path.as_bytes(), is_dir),
            ignored,
            "{patterns:?} on {path:?} (dir: {is_dir})"
        );
    }
}

#[test]
fn the_defaults_leave_out_scratch_directories_only() {
    let set = IgnoreSet::defaults();
    for path in ["tmp", "var/tmp", "run"] {
        assert!(set.is_ignored(path.as_bytes(), true), "{path}");
    }
    for path in ["root/tmp", "var/run-things", "runner", "var", "tmpfile"] {
        assert!(!set.is_ignored(path.as_bytes(), true), "{path}");
    }
}

#[test]
fn a_later_list_can_take_a_default_back() {
    let mut set = IgnoreSet::defaults();
    set.add_list(["!/run", " /root/.cache/** ", ""], "the setting")
        .unwrap();
    assert!(!set.is_ignored(b"run", true));
    assert!(set.is_ignored(b"root/.cache/pip", true));
    assert!(!set.is_ignored(b"root/.cache", true));
    assert!(set.is_ignored(b"tmp", true));
}

#[test]
fn a_bad_pattern_names_itself_and_where_it_came_from() {
    let mut set = IgnoreSet::empty();
    let err = set
        .add_text(b"ok\n\n[unclosed\n", "/etc/devbox/commit-ignore")
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("\"[unclosed\""), "{text}");
    assert!(text.contains("/etc/devbox/commit-ignore line 3"), "{text}");
    assert!(text.contains("never closed"), "{text}");

    let err = set
        .add_list(["/tmp", "bad\\"], "--commit-exclude")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("\"bad\\\\\"") && text.contains("--commit-exclude"),
        "{text}"
    );
}

#[test]
fn the_ignore_file_is_read_inside_the_root_only() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("etc/devbox")).unwrap();
    let outside = tmp.path().join("secret");
    fs::write(&outside, "[host secret").unwrap();

    let mut set = IgnoreSet::empty();
    assert!(
        !set.add_file_in(&root, COMMIT_IGNORE_FILE).unwrap(),
        "absent"
    );

    // An absolute symlink resolves inside the root, where nothing is.
    let file = root.join(COMMIT_IGNORE_FILE);
    symlink(&outside, &file).unwrap();
    assert!(!set.add_file_in(&root, COMMIT_IGNORE_FILE).unwrap());
    fs::remove_file(&file).unwrap();
    // So does a relative one climbing out.
    symlink("../../../secret", &file).unwrap();
    assert!(!set.add_file_in(&root, COMMIT_IGNORE_FILE).unwrap());
    fs::remove_file(&file).unwrap();

    // A symlink within the root is followed, as the devbox would see it.
    fs::write(root.join("etc/real"), "/build\n").unwrap();
    symlink("/etc/real", &file).unwrap();
    assert!(set.add_file_in(&root, COMMIT_IGNORE_FILE).unwrap());
    assert!(set.is_ignored(b"build", true));
    fs::remove_file(&file).unwrap();

    // A directory in its place is an error, not silently nothing.
    fs::create_dir(&file).unwrap();
    let err = set.add_file_in(&root, COMMIT_IGNORE_FILE).unwrap_err();
    assert!(matches!(err, IgnoreError::NotAFile { .. }), "{err}");
}

#[test]
fn for_commit_puts_defaults_then_the_file_then_the_list() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("etc/devbox")).unwrap();
    fs::write(
        tmp.path().join(COMMIT_IGNORE_FILE),
        "# keep the runtime dir\n!/run\n/srv/cache/\n",
    )
    .unwrap();
    let set = IgnoreSet::for_commit(tmp.path(), &["/srv/cache/keep", "!/srv/cache/"]).unwrap();
    assert!(
        !set.is_ignored(b"run", true),
        "the file overrides a default"
    );
    assert!(
        !set.is_ignored(b"srv/cache", true),
        "the list overrides the file"
    );
    assert!(set.is_ignored(b"srv/cache/keep", false));
    assert!(set.is_ignored(b"tmp", true));
}
