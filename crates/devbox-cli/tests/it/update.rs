//! `devbox update`: the request body, what applies when, and the server's refusals.

use crate::cli::Cli;
use crate::fake::{Fake, TOKEN};

fn setup() -> (Fake, Cli) {
    let fake = Fake::start();
    let cli = Cli::new(&fake.url, Some(TOKEN));
    (fake, cli)
}

#[test]
fn limits_are_sent_in_bytes_and_the_updated_devbox_is_printed() {
    let (fake, cli) = setup();
    let run = cli.run(&["update", "web", "--cpus", "2", "--memory", "128m"]);
    run.expect(0);
    assert!(run.stdout.contains("CPUs:          2\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains("Memory:        128MiB\n"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("Pending:"), "{}", run.stdout);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let seen = fake.seen();
    assert_eq!(seen.requests, ["PATCH /api/v1/devboxes/web"]);
    assert_eq!(
        serde_json::to_value(&seen.updates[0]).unwrap(),
        serde_json::json!({
            "cpus": 2.0, "memory": 134217728u64, "pids": null,
            "env": [], "unset_env": [], "command": null,
            "auto_commit": null, "commit_exclude": null,
        })
    );
}

#[test]
fn env_and_command_of_a_running_devbox_wait_for_its_next_start() {
    let (fake, cli) = setup();
    let run = cli.run(&[
        "update",
        "web",
        "--env",
        "A=1",
        "--unset-env",
        "B",
        "--cmd",
        "make run",
    ]);
    run.expect(0);
    assert!(
        run.stdout
            .contains("Pending:       env, command (at the next start)\n"),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr,
        "note: env, command of web apply at its next start; \
         `devbox restart web` applies them now\n"
    );
    let run = cli.run(&["update", "web", "--no-cmd"]);
    run.expect(0);
    assert!(run.stdout.contains("Command:       -\n"), "{}", run.stdout);
    let seen = fake.seen();
    assert_eq!(
        serde_json::to_value(&seen.updates[0]).unwrap(),
        serde_json::json!({
            "cpus": null, "memory": null, "pids": null, "env": ["A=1"],
            "unset_env": ["B"], "command": ["/bin/sh", "-c", "make run"],
            "auto_commit": null, "commit_exclude": null,
        })
    );
    assert_eq!(seen.updates[1].command, Some(Vec::new()));
}

#[test]
fn a_stopped_devbox_has_nothing_pending() {
    let (_fake, cli) = setup();
    let run = cli.run(&["update", "idle", "-e", "A=1", "--pids", "64"]);
    run.expect(0);
    assert!(run.stdout.contains("PIDs:          64\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains("Env:           A=1\n"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("Pending:"), "{}", run.stdout);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn json_prints_the_api_answer_with_its_pending_settings() {
    let (_fake, cli) = setup();
    let run = cli.run(&["update", "web", "--cmd", "serve", "--json"]);
    run.expect(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["pending"], serde_json::json!(["command"]));
    assert_eq!(v["command"], serde_json::json!(["/bin/sh", "-c", "serve"]));
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn a_memory_limit_below_current_usage_is_refused_with_the_servers_message() {
    let (_fake, cli) = setup();
    let run = cli.run(&["update", "web", "--memory", "64M"]);
    run.expect(1);
    assert_eq!(
        run.stderr,
        "error: cannot lower the memory limit of devbox \"web\" to 64MiB: it uses 100MiB now; \
         give it at least that, or stop it first\n"
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn a_busy_devbox_exits_4_and_a_missing_one_3() {
    let (_fake, cli) = setup();
    let run = cli.run(&["update", "busy", "--cpus", "1"]);
    run.expect(4);
    assert!(
        run.stderr
            .starts_with("error: cannot update devbox while it is starting"),
        "{}",
        run.stderr
    );
    let run = cli.run(&["update", "nope", "--cpus", "1"]);
    run.expect(3);
    assert_eq!(run.stderr, "error: devbox \"nope\" not found\n");
}

#[test]
fn bad_updates_are_refused_before_any_request() {
    let (fake, cli) = setup();
    for args in [
        &["update", "web"][..],
        &["update", "web", "--cmd", "x", "--no-cmd"],
        &["update", "web", "--cmd", ""],
        &["update", "web", "--memory", "64 parsecs"],
        &["update", "web", "-e", "A=1", "--unset-env", "A"],
    ] {
        let run = cli.run(args);
        run.expect(2);
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(fake.seen().requests.is_empty());
}
