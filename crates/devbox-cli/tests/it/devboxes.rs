//! Devbox commands: request bodies, tables, `--json` and exit codes.

use crate::cli::Cli;
use crate::fake::{Fake, TOKEN, devbox_list_body};

fn setup() -> (Fake, Cli) {
    let fake = Fake::start();
    let cli = Cli::new(&fake.url, Some(TOKEN));
    (fake, cli)
}

#[test]
fn ls_prints_an_aligned_table() {
    let (_fake, cli) = setup();
    let run = cli.run(&["ls"]);
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert_eq!(
        lines[0],
        "NAME   STATE     IMAGE       CPUS   MEMORY   IP          CREATED"
    );
    assert!(
        lines[1].starts_with("web    running   busybox:1   1      1GiB     10.77.0.2   "),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("db     stopped   busybox:1   0.5    512MiB   -           "),
        "{}",
        lines[2]
    );
    assert!(lines[1].ends_with(" ago"), "{}", lines[1]);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn ls_json_prints_the_api_answer_unchanged() {
    let (_fake, cli) = setup();
    let run = cli.run(&["ls", "--json"]);
    run.expect(0);
    assert_eq!(run.stdout, format!("{}\n", devbox_list_body()));
}

#[test]
fn create_sends_the_flags_as_the_api_body() {
    let (fake, cli) = setup();
    let run = cli.run(&[
        "create",
        "web",
        "--image",
        "busybox:1",
        "--cpus",
        "1.5",
        "--memory",
        "512MiB",
        "--pids",
        "64",
        "-e",
        "A=1",
        "--env",
        "B=two words",
        "--cmd",
        "sleep infinity",
    ]);
    run.expect(0);
    assert!(run.stdout.contains("Name:"), "{}", run.stdout);
    assert!(run.stdout.contains("web"), "{}", run.stdout);
    let seen = fake.seen();
    let body = serde_json::to_value(&seen.created[0]).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "name": "web", "image": "busybox:1", "cpus": 1.5, "memory": 536870912u64,
            "pids": 64, "env": ["A=1", "B=two words"],
            "command": ["/bin/sh", "-c", "sleep infinity"],
        })
    );
}

#[test]
fn create_of_a_taken_name_exits_4() {
    let (_fake, cli) = setup();
    let run = cli.run(&["create", "taken", "--image", "busybox:1"]);
    run.expect(4);
    assert_eq!(
        run.stderr,
        "error: a devbox named \"taken\" exists already\n"
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn bad_names_are_refused_before_any_request() {
    let (fake, cli) = setup();
    let run = cli.run(&["create", "Web", "--image", "busybox:1"]);
    run.expect(2);
    assert!(
        run.stderr.contains("invalid devbox name \"Web\""),
        "{}",
        run.stderr
    );
    assert!(fake.seen().requests.is_empty());
}

#[test]
fn lifecycle_commands_report_the_new_state() {
    let (fake, cli) = setup();
    assert_eq!(
        cli.run(&["start", "web"]).expect(0).stdout,
        "web: running\n"
    );
    assert_eq!(cli.run(&["stop", "web"]).expect(0).stdout, "web: stopped\n");
    assert_eq!(
        cli.run(&["restart", "web"]).expect(0).stdout,
        "web: running\n"
    );
    let json = cli.run(&["stop", "web", "--json"]);
    json.expect(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["state"], "stopped");
    let reqs = fake.seen().requests.clone();
    assert_eq!(
        reqs,
        [
            "POST /api/v1/devboxes/web/start",
            "POST /api/v1/devboxes/web/stop",
            "POST /api/v1/devboxes/web/restart",
            "POST /api/v1/devboxes/web/stop",
        ]
    );
}

#[test]
fn conflicts_exit_4_and_missing_devboxes_exit_3() {
    let (_fake, cli) = setup();
    let run = cli.run(&["stop", "busy"]);
    run.expect(4);
    assert!(
        run.stderr
            .starts_with("error: cannot stop devbox while it is starting"),
        "{}",
        run.stderr
    );
    let run = cli.run(&["start", "nope"]);
    run.expect(3);
    assert_eq!(run.stderr, "error: devbox \"nope\" not found\n");
    cli.run(&["show", "nope"]).expect(3);
    cli.run(&["rm", "nope"]).expect(3);
}

#[test]
fn show_and_rm() {
    let (fake, cli) = setup();
    let run = cli.run(&["show", "web"]);
    run.expect(0);
    assert!(run.stdout.contains("State:"), "{}", run.stdout);
    assert!(run.stdout.contains("running"), "{}", run.stdout);
    let json = cli.run(&["show", "web", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.expect(0).stdout).unwrap();
    assert_eq!(v["name"], "web");
    let rm = cli.run(&["rm", "web"]);
    rm.expect(0);
    assert!(rm.stdout.is_empty());
    assert!(
        fake.seen()
            .requests
            .contains(&"DELETE /api/v1/devboxes/web".to_owned())
    );
}

#[test]
fn logs_stream_to_stdout() {
    let (fake, cli) = setup();
    let run = cli.run(&["logs", "web"]);
    run.expect(0);
    assert_eq!(run.stdout, "line 1\nline 2\nline 3\n");
    cli.run(&["logs", "web", "-f", "--tail", "5"]).expect(0);
    assert_eq!(
        fake.seen().requests,
        [
            "GET /api/v1/devboxes/web/logs",
            "GET /api/v1/devboxes/web/logs?follow=true&tail=5",
        ]
    );
    cli.run(&["logs", "nope"]).expect(3);
}
