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
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    let state = "stopped (exited with 137: out of memory)";
    let pad = " ".repeat(state.len() - "running".len());
    assert!(
        lines[0].starts_with(&format!(
            "NAME   STATE{}   IMAGE       CPUS   MEMORY   IP          CREATED   ",
            " ".repeat(state.len() - "STATE".len())
        )),
        "{}",
        lines[0]
    );
    // The width of CREATED depends on today's date; NOTES is aligned after it.
    let notes = lines[0].find("   NOTES").unwrap() + 3;
    assert_eq!(&lines[0][notes..], "NOTES");
    assert!(
        lines[1].starts_with(&format!(
            "web    running{pad}   busybox:1   1      1GiB     10.77.0.2   "
        )),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with(&format!(
            "db     stopped{pad}   busybox:1   0.5    512MiB   -           "
        )),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with(&format!("oom    {state}   busybox:1   1      1GiB     ")),
        "{}",
        lines[3]
    );
    // CREATED, then ACTIVE: never used since the server started.
    assert!(
        lines[1][..notes].trim_end().ends_with(" ago   -"),
        "{}",
        lines[1]
    );
    assert_eq!(&lines[1][notes..], "-");
    assert_eq!(
        &lines[3][notes..],
        "startup command exited with 137; 1 OOM kill"
    );
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
            "name": "web", "image": "busybox:1", "from": null, "auto_commit": null,
            "commit_exclude": [], "cpus": 1.5, "memory": 536870912u64,
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
fn stop_and_restart_pass_the_timeout() {
    let (fake, cli) = setup();
    cli.run(&["stop", "web", "--timeout", "3"]).expect(0);
    cli.run(&["restart", "--timeout", "0", "web"]).expect(0);
    assert_eq!(
        fake.seen().requests,
        [
            "POST /api/v1/devboxes/web/stop?timeout=3",
            "POST /api/v1/devboxes/web/restart?timeout=0",
        ]
    );
}

#[test]
fn a_slow_stop_says_what_it_waits_for() {
    let (_fake, cli) = setup();
    let run = cli.run(&["stop", "slow", "--timeout", "2"]);
    run.expect(0);
    assert_eq!(run.stdout, "slow: stopped\n");
    assert_eq!(
        run.stderr,
        "stopping slow: waiting up to 2s for its processes to exit\n"
    );
    let run = cli.run(&["restart", "slow", "--timeout", "2", "--json"]);
    run.expect(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["state"], "running");
    assert_eq!(
        run.stderr,
        "restarting slow: waiting up to 2s for its processes to exit, then starting it\n"
    );
}

#[test]
fn a_slow_stop_shows_a_spinner_on_a_terminal() {
    use std::io::Read;
    let (_fake, cli) = setup();
    let (controller, term) = crate::exec::pty(24, 120);
    let child = cli
        .command(&["stop", "slow", "--timeout", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(term))
        .spawn()
        .unwrap();
    // The terminal side closes when the child exits; reading the controller
    // then ends with an error instead of end-of-file.
    let mut screen = Vec::new();
    let _ = std::fs::File::from(controller).read_to_end(&mut screen);
    let run = crate::cli::finish(child.wait_with_output().unwrap());
    run.expect(0);
    assert_eq!(run.stdout, "slow: stopped\n");
    let screen = String::from_utf8_lossy(&screen);
    assert!(
        screen.contains("stopping slow: waiting up to 2s for its processes to exit"),
        "{screen:?}"
    );
}

#[test]
fn start_warns_about_a_startup_command_that_failed_at_once() {
    let (_fake, cli) = setup();
    let run = cli.run(&["start", "failing"]);
    run.expect(5);
    assert_eq!(run.stdout, "failing: running\n");
    assert_eq!(
        run.stderr,
        "warning: the startup command of failing exited with 3; see: devbox logs failing\n"
    );
    let run = cli.run(&["start", "unstartable"]);
    run.expect(5);
    assert_eq!(
        run.stderr,
        "warning: the startup command of unstartable failed to start: \
         /bin/sh: no such file or directory; see: devbox logs unstartable\n"
    );
    let run = cli.run(&["restart", "failing"]);
    run.expect(5);
    assert!(run.stderr.contains("exited with 3"), "{}", run.stderr);
    // Scripts get the API's object and the same exit code.
    let run = cli.run(&["start", "failing", "--json"]);
    run.expect(5);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["command_status"]["state"], "exited");
    assert_eq!(v["command_status"]["code"], 3);
}

#[test]
fn a_startup_command_that_runs_or_succeeded_is_no_warning() {
    let (_fake, cli) = setup();
    for name in ["web", "oneshot"] {
        let run = cli.run(&["start", name]);
        run.expect(0);
        assert_eq!(run.stdout, format!("{name}: running\n"));
        assert!(run.stderr.is_empty(), "{}", run.stderr);
    }
    // A stop does not judge the command it just ended.
    let run = cli.run(&["stop", "failing"]);
    run.expect(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn show_explains_a_devbox_that_stopped_on_its_own() {
    let (_fake, cli) = setup();
    let run = cli.run(&["show", "oom"]);
    run.expect(0);
    for line in [
        "State:         stopped (exited with 137: out of memory)\n",
        "OOM kills:     1\n",
        "Command:       /bin/sh -c 'make run' (exited with 137)\n",
    ] {
        assert!(run.stdout.contains(line), "{line:?} in:\n{}", run.stdout);
    }
    let run = cli.run(&["show", "oom", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&run.expect(0).stdout).unwrap();
    assert_eq!(v["reason"], "exited with 137: out of memory");
    assert_eq!(v["oom_kills"], 1);
}

#[test]
fn a_followed_log_ends_with_exit_0_when_the_server_ends_it() {
    let (_fake, cli) = setup();
    let run = cli.run(&["logs", "web", "-f"]);
    run.expect(0);
    assert_eq!(
        run.stdout,
        "line 1\nline 2\nline 3\nline 4, written later\nstopping\n"
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
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
