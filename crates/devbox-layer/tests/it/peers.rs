//! Real peers judge our formats: git decides what our ignore patterns
//! ignore, and Debian's gzip, zstd and tar (and Python's gzip module) read
//! the layers we compress on all cores.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use devbox_layer::compression::{Compression, write_layer_threads};
use devbox_layer::ignore::IgnoreSet;

use crate::round_trip::build_rich_tree;
use crate::support::{list_tar, pack, require_root};

/// Fails the test unless `tool` runs, naming the Debian package to install.
fn require_tool(tool: &str, package: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "this test needs {tool}: apt-get install {package}");
}

fn run(cmd: &mut Command, input: Option<&[u8]>) -> Vec<u8> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.unwrap_or_default().to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Patterns and paths (a trailing `/` makes a directory), judged by git and by us.
const SCENARIOS: &[(&str, &[&str])] = &[
    (
        "build/\n!build/keep\n*.log\n!important.log\n",
        &[
            "build/",
            "build/keep",
            "build/x",
            "src/",
            "src/a.log",
            "src/important.log",
            "x.log",
        ],
    ),
    (
        "/tmp\n/var/tmp\n/run\n/root/.cache/**\n!/root/.cache/keep\n",
        &[
            "tmp/",
            "tmp/a",
            "var/",
            "var/tmp/",
            "var/tmp/b",
            "var/lib/",
            "var/lib/tmp",
            "run/",
            "root/",
            "root/.cache/",
            "root/.cache/pip/",
            "root/.cache/pip/x",
            "root/.cache/keep",
            "root/tmp",
        ],
    ),
    (
        "**/node_modules\ndoc/**/*.pdf\na/**/b\n[a-c]*.txt\n!bb.txt\n?.o\n",
        &[
            "node_modules/",
            "node_modules/x",
            "p/q/node_modules/",
            "p/q/node_modules/y",
            "doc/",
            "doc/x.pdf",
            "doc/d/e/y.pdf",
            "doc/z.txt",
            "a/",
            "a/b",
            "a/x/",
            "a/x/b",
            "a/x/y/",
            "a/x/y/b",
            "ab.txt",
            "bb.txt",
            "cc.txt",
            "dd.txt",
            "x.o",
            "xy.o",
        ],
    ),
    (
        "\\#hash\n\\!bang\nspace\\ \ntrail   \n*.swp\n!/keep/*.swp\n/keep/\n!/keep/\n",
        &[
            "#hash",
            "!bang",
            "space ",
            "trail",
            "x.swp",
            "keep/",
            "keep/a.swp",
            "keep/b",
        ],
    ),
    (
        "*\n!*/\n!*.rs\n",
        &[
            "top.txt",
            "src/",
            "src/main.rs",
            "src/notes.txt",
            "src/deep/",
            "src/deep/lib.rs",
        ],
    ),
];

#[test]
fn our_ignore_rules_ignore_what_git_ignores() {
    require_tool("git", "git");
    for (patterns, paths) in SCENARIOS {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path();
        run(Command::new("git").arg("init").arg("-q").arg(repo), None);
        fs::write(repo.join(".gitignore"), patterns).unwrap();
        for path in *paths {
            match path.strip_suffix('/') {
                Some(dir) => fs::create_dir_all(repo.join(dir)).unwrap(),
                None => {
                    let file = repo.join(path);
                    fs::create_dir_all(file.parent().unwrap()).unwrap();
                    fs::write(file, b"").unwrap();
                }
            }
        }
        let names: Vec<&str> = paths.iter().map(|p| p.trim_end_matches('/')).collect();
        let query = names.join("\n") + "\n";
        let out = run(
            Command::new("git").current_dir(repo).args([
                "check-ignore",
                "--no-index",
                "--stdin",
                "-v",
                "-n",
            ]),
            Some(query.as_bytes()),
        );
        let mut ours = IgnoreSet::empty();
        ours.add_text(patterns.as_bytes(), ".gitignore").unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out.lines().count(),
            names.len(),
            "git judged every path: {out}"
        );
        for line in out.lines() {
            let (source, path) = line.split_once('\t').unwrap();
            let pattern = source.splitn(3, ':').nth(2).unwrap();
            let git_ignores = !pattern.is_empty() && !pattern.starts_with('!');
            assert_eq!(
                effectively_ignored(&ours, repo, path),
                git_ignores,
                "{path:?} with patterns {patterns:?} (git: {source})"
            );
        }
    }
}

/// Whether a walk from the root leaves `path` out: it, or a directory
/// above it, is ignored.
fn effectively_ignored(set: &IgnoreSet, root: &Path, path: &str) -> bool {
    let mut prefix = String::new();
    for component in path.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(component);
        let is_dir = root.join(&prefix).is_dir();
        if set.is_ignored(prefix.as_bytes(), is_dir) {
            return true;
        }
    }
    false
}

#[test]
fn debian_tools_read_our_parallel_gzip_and_zstd_layers() {
    require_root();
    for (tool, package) in [
        ("gzip", "gzip"),
        ("zstd", "zstd"),
        ("tar", "tar"),
        ("python3", "python3"),
    ] {
        require_tool(tool, package);
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let socket = build_rich_tree(&src);
    fs::remove_file(socket).unwrap();
    // Several compression chunks' worth, part text-like, part noise.
    let mut big = Vec::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..5_000_000u64 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        big.push(if (i / 100_000) % 2 == 0 {
            b"source code "[(i % 12) as usize]
        } else {
            state as u8
        });
    }
    fs::write(src.join("big.bin"), &big).unwrap();
    let tar = pack(&src, false);
    let names: Vec<String> = list_tar(&tar)
        .into_iter()
        .map(|e| e.0.trim_end_matches('/').to_owned())
        .collect();

    for (c, ext) in [(Compression::Gzip, "gz"), (Compression::Zstd, "zst")] {
        let path = tmp.path().join(format!("layer.tar.{ext}"));
        let mut blob = Vec::new();
        let digests = write_layer_threads(&tar[..], &mut blob, c, 3).unwrap();
        assert_eq!(digests.size, blob.len() as u64);
        fs::write(&path, &blob).unwrap();
        let (tool, test_flag) = match c {
            Compression::Gzip => ("gzip", "-t"),
            _ => ("zstd", "-qt"),
        };
        run(Command::new(tool).arg(test_flag).arg(&path), None);
        let back = run(Command::new(tool).arg("-dc").arg(&path), None);
        assert!(back == tar, "{tool} -dc gives the tar back");
        let flag = match c {
            Compression::Gzip => "--gzip",
            _ => "--zstd",
        };
        let listed = run(Command::new("tar").arg(flag).arg("-tf").arg(&path), None);
        let listed: Vec<String> = String::from_utf8(listed)
            .unwrap()
            .lines()
            .map(|l| l.trim_end_matches('/').to_owned())
            .collect();
        assert_eq!(listed, names, "tar lists what we packed");
    }

    // One gzip member, which Python's reader (and `gzip -l`) take as it is.
    let gz = tmp.path().join("layer.tar.gz");
    let script = "import gzip,sys; sys.stdout.buffer.write(gzip.open(sys.argv[1]).read())";
    let back = run(Command::new("python3").args(["-c", script]).arg(&gz), None);
    assert!(back == tar, "python's gzip gives the tar back");
    let listing = run(Command::new("gzip").arg("-lq").arg(&gz), None);
    let listing = String::from_utf8(listing).unwrap();
    let uncompressed: u64 = listing.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(uncompressed, tar.len() as u64 % (1 << 32), "{listing}");
}
