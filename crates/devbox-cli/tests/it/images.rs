//! Image commands: encoded references, NDJSON progress, uploads.

use std::io::Read;

use devbox_model::api::ProgressEvent;

use crate::cli::Cli;
use crate::fake::{Fake, TOKEN};

fn setup() -> (Fake, Cli) {
    let fake = Fake::start();
    let cli = Cli::new(&fake.url, Some(TOKEN));
    (fake, cli)
}

fn tar_names(data: &[u8]) -> Vec<String> {
    tar::Archive::new(data)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn image_ls_prints_a_table() {
    let (_fake, cli) = setup();
    let run = cli.run(&["image", "ls"]);
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "REFERENCE                     DIGEST         SIZE     LAYERS   CREATED"
    );
    assert_eq!(
        lines[1],
        "busybox:1                     cccccccccccc   1.5MiB   2        2h ago"
    );
    assert!(
        lines[2].starts_with("localhost:5000/tools/base:2   cccccccccccc"),
        "{}",
        lines[2]
    );
    let json = cli.run(&["image", "ls", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.expect(0).stdout).unwrap();
    assert_eq!(v[1]["reference"], "localhost:5000/tools/base:2");
}

#[test]
fn references_travel_as_one_encoded_segment() {
    let (fake, cli) = setup();
    cli.run(&["image", "rm", "localhost:5000/busybox:1"])
        .expect(0);
    let run = cli.run(&["image", "show", "localhost:5000/busybox:1"]);
    run.expect(0);
    assert!(
        run.stdout.contains("localhost:5000/busybox:1"),
        "{}",
        run.stdout
    );
    assert_eq!(
        fake.seen().requests,
        [
            "DELETE /api/v1/images/localhost%3A5000%2Fbusybox%3A1",
            "GET /api/v1/images/localhost%3A5000%2Fbusybox%3A1",
        ]
    );
    let run = cli.run(&["image", "rm", "missing:1"]);
    run.expect(3);
    assert_eq!(run.stderr, "error: image \"missing:1\" not found\n");
}

#[test]
fn pull_follows_the_event_stream_to_the_image() {
    let (fake, cli) = setup();
    let run = cli.run(&["image", "pull", "localhost:5000/busybox:1", "--insecure"]);
    run.expect(0);
    assert!(run.stdout.contains("Reference:"), "{}", run.stdout);
    assert!(
        run.stdout.contains("localhost:5000/busybox:1"),
        "{}",
        run.stdout
    );
    // Bars are drawn only on a terminal.
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let seen = fake.seen();
    assert_eq!(
        seen.pulls[0].reference.to_string(),
        "localhost:5000/busybox:1"
    );
    assert!(seen.pulls[0].insecure);
    assert_eq!(seen.pulls[0].username, None);
}

#[test]
fn pull_json_prints_every_event_line() {
    let (_fake, cli) = setup();
    let run = cli.run(&["image", "pull", "busybox:1", "--json"]);
    run.expect(0);
    let events: Vec<ProgressEvent> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 6);
    assert!(matches!(events[0], ProgressEvent::Resolved { .. }));
    assert!(matches!(&events[5], ProgressEvent::Done { image } if image.reference == "busybox:1"));
}

#[test]
fn pull_errors_map_to_exit_codes() {
    let (_fake, cli) = setup();
    let run = cli.run(&["image", "pull", "missing:1"]);
    run.expect(3);
    assert_eq!(run.stderr, "error: manifest unknown: missing:1\n");
    let run = cli.run(&["image", "pull", "cut:1"]);
    run.expect(1);
    assert!(
        run.stderr.contains("ended the progress stream"),
        "{}",
        run.stderr
    );
}

#[test]
fn pull_reads_the_password_from_stdin() {
    let (fake, cli) = setup();
    let args = [
        "image",
        "pull",
        "busybox:1",
        "--username",
        "me",
        "--password-stdin",
    ];
    cli.run_with_stdin(&args, b"s3cret\n").expect(0);
    let run = cli.run_with_stdin(&args, b"");
    run.expect(2);
    assert!(
        run.stderr.contains("standard input is empty"),
        "{}",
        run.stderr
    );
    let seen = fake.seen();
    assert_eq!(seen.pulls.len(), 1);
    assert_eq!(seen.pulls[0].username.as_deref(), Some("me"));
    assert_eq!(seen.pulls[0].password.as_deref(), Some("s3cret"));
}

#[test]
fn a_tar_file_is_uploaded_byte_for_byte() {
    let (fake, cli) = setup();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("image.tar.zst");
    let content: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap();
    let run = cli.run(&[
        "image",
        "import",
        file.to_str().unwrap(),
        "--name",
        "base:1",
    ]);
    run.expect(0);
    assert!(run.stdout.contains("base:1"), "{}", run.stdout);
    let seen = fake.seen();
    assert_eq!(seen.imports.len(), 1);
    assert_eq!(seen.imports[0].0, "base:1");
    assert!(
        seen.imports[0].1 == content,
        "the upload differs from the file"
    );
    // The file's name travels along, for the server's messages.
    let source = reqwest::Url::parse_with_params(
        "http://x/",
        &[("name", "base:1"), ("source", file.to_str().unwrap())],
    )
    .unwrap();
    let expected = format!("POST /api/v1/images/import?{}", source.query().unwrap());
    assert!(
        seen.requests.contains(&expected),
        "{expected} not in {:?}",
        seen.requests
    );
}

#[test]
fn a_rootfs_directory_is_archived_on_the_fly() {
    let (fake, cli) = setup();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("bin/busybox"), vec![1u8; 300_000]).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::fs::write(root.join("etc/hostname"), "box\n").unwrap();
    let run = cli.run(&[
        "image",
        "import",
        root.to_str().unwrap(),
        "--name",
        "rootfs:1",
        "--json",
    ]);
    run.expect(0);
    assert!(
        run.stdout.lines().last().unwrap().contains("\"done\""),
        "{}",
        run.stdout
    );
    let seen = fake.seen();
    let body = &seen.imports[0].1;
    assert_eq!(
        tar_names(body),
        ["bin/", "bin/busybox", "bin/sh", "etc/", "etc/hostname"]
    );
    let mut ar = tar::Archive::new(&body[..]);
    let mut host = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().ends_with("hostname"))
        .unwrap();
    let mut text = String::new();
    host.read_to_string(&mut text).unwrap();
    assert_eq!(text, "box\n");
}

#[test]
fn an_oci_layout_directory_is_sent_as_it_is() {
    let (fake, cli) = setup();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(root.join("index.json"), "{}").unwrap();
    std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    std::fs::write(root.join("blobs/sha256/abc"), "blob").unwrap();
    cli.run(&["image", "import", root.to_str().unwrap(), "--name", "oci:1"])
        .expect(0);
    let seen = fake.seen();
    assert_eq!(
        tar_names(&seen.imports[0].1),
        [
            "blobs/",
            "blobs/sha256/",
            "blobs/sha256/abc",
            "index.json",
            "oci-layout"
        ]
    );
}

#[test]
fn importing_a_missing_path_fails_before_any_request() {
    let (fake, cli) = setup();
    let run = cli.run(&["image", "import", "/nonexistent/image.tar", "--name", "x:1"]);
    run.expect(1);
    assert!(
        run.stderr.contains("cannot read /nonexistent/image.tar"),
        "{}",
        run.stderr
    );
    assert!(fake.seen().requests.is_empty());
}
