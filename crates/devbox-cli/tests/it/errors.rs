//! Tokens, unreachable servers and usage errors.

use crate::cli::Cli;
use crate::fake::{Fake, TOKEN};

#[test]
fn without_a_token_the_error_says_how_to_give_one() {
    let fake = Fake::start();
    let cli = Cli::new(&fake.url, None);
    let run = cli.run(&["ls"]);
    run.expect(1);
    assert!(
        run.stderr.starts_with("error: invalid API token: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--token"), "{}", run.stderr);
    assert!(run.stderr.contains("DEVBOX_TOKEN"), "{}", run.stderr);
    let file = cli.data_dir().join("admin-token");
    assert!(
        run.stderr.contains(&file.display().to_string()),
        "{}",
        run.stderr
    );
}

#[test]
fn a_refused_admin_token_names_its_file_and_how_to_point_at_the_right_one() {
    let fake = Fake::start();
    let cli = Cli::new(&fake.url, None);
    let file = cli.data_dir().join("admin-token");
    std::fs::write(&file, "dbx_of_another_server\n").unwrap();
    let run = cli.run(&["ls"]);
    run.expect(1);
    assert!(
        run.stderr.starts_with("error: invalid API token: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("read from {}", file.display())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("--data-dir DIR, set DEVBOX_DATA_DIR=DIR"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("DEVBOX_TOKEN"), "{}", run.stderr);
}

#[test]
fn the_admin_token_file_is_used_without_a_token() {
    let fake = Fake::start();
    let cli = Cli::new(&fake.url, None);
    std::fs::write(cli.data_dir().join("admin-token"), format!("{TOKEN}\n")).unwrap();
    cli.run(&["ls"]).expect(0);
}

#[test]
fn a_wrong_token_is_reported_as_refused() {
    let fake = Fake::start();
    let cli = Cli::new(&fake.url, Some("wrong"));
    let run = cli.run(&["ls"]);
    run.expect(1);
    assert!(
        run.stderr.contains("refused the token given"),
        "{}",
        run.stderr
    );
    let run = cli.run(&["--token", TOKEN, "ls"]);
    run.expect(0);
}

#[test]
fn an_unreachable_server_is_named() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let cli = Cli::new(&url, Some(TOKEN));
    for args in [&["ls"][..], &["exec", "web", "--", "true"][..]] {
        let run = cli.run(args);
        assert_eq!(
            run.stderr,
            format!(
                "error: cannot reach the devbox server at {url}: is `devbox server` running?\n"
            )
        );
        assert_ne!(run.code, 0);
    }
    cli.run(&["ls"]).expect(1);
    cli.run(&["exec", "web", "--", "true"]).expect(125);
}

#[test]
fn a_malformed_url_is_a_usage_error() {
    let cli = Cli::new("localhost:7070", Some(TOKEN));
    let run = cli.run(&["ls"]);
    run.expect(2);
    assert!(run.stderr.contains("invalid server URL"), "{}", run.stderr);
}

#[test]
fn help_documents_the_exit_codes() {
    let cli = Cli::new("http://127.0.0.1:1", None);
    let run = cli.run(&["--help"]);
    run.expect(0);
    assert!(run.stdout.contains("Exit codes:"), "{}", run.stdout);
    assert!(run.stdout.contains("4    conflict"), "{}", run.stdout);
    assert!(run.stdout.contains("5    start, restart"), "{}", run.stdout);
    let run = cli.run(&["server", "--help"]);
    run.expect(0);
    assert!(run.stdout.contains("--bridge"), "{}", run.stdout);
    assert!(!run.stdout.contains("--url"), "{}", run.stdout);
    let run = cli.run(&["frobnicate"]);
    run.expect(2);
}
