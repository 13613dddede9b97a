//! `commit`, `history`, `rollback`, `diff` and `gc` against the scripted
//! server: request bodies, what they print, `--json` and exit codes.

use crate::cli::Cli;
use crate::fake::{Fake, IDLE_HEAD, NEW_COMMIT, TOKEN, WEB_AUTO, WEB_HEAD, WEB_RECLAIMED};

fn setup() -> (Fake, Cli) {
    let fake = Fake::start();
    let cli = Cli::new(&fake.url, Some(TOKEN));
    (fake, cli)
}

#[test]
fn commit_prints_the_commit_id_and_the_image_digest() {
    let (fake, cli) = setup();
    let run = cli.run(&["commit", "web", "-m", "installed toolchain", "--pin"]);
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], format!("Commit:     {NEW_COMMIT}"));
    assert_eq!(
        lines[1],
        format!("Digest:     sha256:{}", NEW_COMMIT.repeat(4))
    );
    assert_eq!(lines[2], format!("Reference:  admin/web:{NEW_COMMIT}"));
    assert_eq!(
        lines[3],
        "Layer:      1KiB (3MiB left out by the exclude patterns)"
    );
    assert_eq!(lines[4], "Pinned:     yes");
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let seen = fake.seen();
    assert_eq!(seen.requests, ["POST /api/v1/devboxes/web/commits"]);
    assert_eq!(
        serde_json::to_value(&seen.commits[0]).unwrap(),
        serde_json::json!({"message": "installed toolchain", "consistent": false, "pin": true})
    );
}

#[test]
fn a_consistent_commit_asks_for_a_frozen_walk_and_json_prints_the_api_answer() {
    let (fake, cli) = setup();
    let run = cli.run(&["commit", "web", "--consistent", "--json"]);
    run.expect(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["id"], NEW_COMMIT);
    assert_eq!(v["trigger"], "manual");
    assert_eq!(v["parent"], WEB_HEAD);
    let seen = fake.seen();
    assert_eq!(
        serde_json::to_value(&seen.commits[0]).unwrap(),
        serde_json::json!({"message": null, "consistent": true, "pin": false})
    );
}

#[test]
fn a_slow_commit_says_what_it_waits_for() {
    let (_fake, cli) = setup();
    let run = cli.run(&["commit", "slow"]);
    run.expect(0);
    assert_eq!(
        run.stderr,
        "committing slow: reading and packing its changes\n"
    );
    let run = cli.run(&["commit", "slow", "--consistent"]);
    run.expect(0);
    assert_eq!(
        run.stderr,
        "committing slow: its processes are frozen while its files are read\n"
    );
}

#[test]
fn a_commit_of_a_stopped_busy_or_missing_devbox_is_refused_with_its_exit_code() {
    let (_fake, cli) = setup();
    let run = cli.run(&["commit", "idle"]);
    run.expect(4);
    assert_eq!(
        run.stderr,
        "error: devbox idle is stopped: there is nothing to commit, since its stop committed \
         its changes; start it to change it\n"
    );
    assert!(run.stdout.is_empty());
    let run = cli.run(&["commit", "busy"]);
    run.expect(4);
    assert!(
        run.stderr.contains("busy with another operation"),
        "{}",
        run.stderr
    );
    let run = cli.run(&["commit", "nope"]);
    run.expect(3);
    assert_eq!(run.stderr, "error: devbox \"nope\" not found\n");
    let run = cli.run(&["commit", "full"]);
    run.expect(1);
    assert!(
        run.stderr
            .starts_with("error: cannot commit devbox full: No space left on device"),
        "{}",
        run.stderr
    );
}

/// The cells of a table line: columns are three spaces apart, and no cell
/// of these fixtures holds three spaces.
fn cols(line: &str) -> Vec<&str> {
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn history_is_a_table_newest_first_with_the_head_marked() {
    let (fake, cli) = setup();
    let run = cli.run(&["history", "web"]);
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert_eq!(
        cols(lines[0]),
        ["ID", "CREATED", "TRIGGER", "SIZE", "NOTES", "MESSAGE"]
    );
    assert!(lines[0].starts_with("    ID"), "{}", lines[0]);
    assert_eq!(
        cols(lines[1]),
        [
            "*",
            WEB_HEAD,
            "5m ago",
            "manual",
            "12MiB",
            "pinned",
            "installed toolchain"
        ]
    );
    assert_eq!(
        cols(lines[2]),
        [WEB_AUTO, "1h ago", "auto", "1KiB", "-", "-"]
    );
    assert!(lines[2].starts_with("    "), "{}", lines[2]);
    assert_eq!(
        cols(lines[3]),
        [
            WEB_RECLAIMED,
            "3d ago",
            "stop",
            "1KiB",
            "image reclaimed",
            "first stop"
        ]
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_eq!(fake.seen().requests, ["GET /api/v1/devboxes/web/commits"]);
}

#[test]
fn history_json_prints_the_api_array_as_is() {
    let (_fake, cli) = setup();
    let run = cli.run(&["history", "web", "--json"]);
    run.expect(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 3);
    for key in [
        "id",
        "created_at",
        "trigger",
        "message",
        "digest",
        "layer_size",
    ] {
        assert!(list[0].get(key).is_some(), "{key} in {}", list[0]);
    }
    assert_eq!(list[0]["id"], WEB_HEAD);
    assert_eq!(list[0]["head"], true);
    assert_eq!(list[2]["digest"], serde_json::Value::Null);
}

#[test]
fn an_empty_history_is_a_header_and_a_note() {
    let (_fake, cli) = setup();
    let run = cli.run(&["history", "fresh"]);
    run.expect(0);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert_eq!(
        run.stderr,
        "note: fresh has no commits yet; `devbox commit fresh` makes one, and so does its stop\n"
    );
    let run = cli.run(&["history", "nope"]);
    run.expect(3);
    assert_eq!(run.stderr, "error: devbox \"nope\" not found\n");
}

#[test]
fn a_rollback_of_a_running_devbox_says_it_restarts_then_runs_from_the_commit() {
    let (fake, cli) = setup();
    let run = cli.run(&["rollback", "web", WEB_AUTO]);
    run.expect(0);
    assert_eq!(
        run.stderr,
        format!(
            "note: web is running: rolling back restarts it to run from commit {WEB_AUTO} \
             (its stop commits its changes first, and they stay in the history)\n"
        )
    );
    assert_eq!(
        run.stdout,
        format!("web: restarted, running from commit {WEB_AUTO}\n")
    );
    let seen = fake.seen();
    assert_eq!(
        seen.requests,
        [
            "GET /api/v1/devboxes/web",
            "POST /api/v1/devboxes/web/rollback"
        ]
    );
    assert_eq!(seen.rollbacks[0].commit, WEB_AUTO);
}

#[test]
fn a_rollback_of_a_stopped_devbox_says_its_next_start_runs_from_the_commit() {
    let (fake, cli) = setup();
    let run = cli.run(&["rollback", "idle", &IDLE_HEAD.to_uppercase()]);
    run.expect(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!("idle: stopped; its next start runs from commit {IDLE_HEAD}\n")
    );
    let run = cli.run(&["rollback", "idle", IDLE_HEAD, "--json", "--timeout", "3"]);
    run.expect(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["head"], IDLE_HEAD);
    assert_eq!(
        fake.seen().requests.last().unwrap(),
        "POST /api/v1/devboxes/idle/rollback?timeout=3"
    );
}

#[test]
fn a_rollback_to_an_unknown_or_foreign_commit_exits_3_and_to_a_reclaimed_one_4() {
    let (_fake, cli) = setup();
    let run = cli.run(&["rollback", "web", "9999999999999999"]);
    run.expect(3);
    assert_eq!(
        run.stderr.lines().last().unwrap(),
        "error: devbox web has no commit 9999999999999999; see `devbox history web`"
    );
    // Another devbox's commit is no commit of this one.
    let run = cli.run(&["rollback", "web", IDLE_HEAD]);
    run.expect(3);
    assert!(
        run.stderr.contains(&format!("has no commit {IDLE_HEAD}")),
        "{}",
        run.stderr
    );
    let run = cli.run(&["rollback", "web", WEB_RECLAIMED]);
    run.expect(4);
    assert!(
        run.stderr.contains("retention reclaimed its image"),
        "{}",
        run.stderr
    );
    let run = cli.run(&["rollback", "nope", WEB_HEAD]);
    run.expect(3);
    assert_eq!(run.stderr, "error: devbox \"nope\" not found\n");
}

#[test]
fn diff_lists_paths_like_git_status_then_what_was_left_out_and_totals() {
    let (fake, cli) = setup();
    let run = cli.run(&["diff", "web"]);
    run.expect(0);
    assert_eq!(
        run.stdout,
        format!(
            "A   /root/state      3B\n\
             M   /etc/passwd      1.5KiB\n\
             A   /root/.config/   dir\n\
             D   /usr/share/doc\n\
             \n\
             left out by the exclude patterns:\n  \
               /root/.cache/   120 entries   35MiB\n\
             \n\
             2 added, 1 modified, 1 deleted since commit {WEB_HEAD}: 1.5KiB to commit; \
             35MiB left out\n"
        )
    );
    assert_eq!(fake.seen().requests, ["GET /api/v1/devboxes/web/diff"]);
    let run = cli.run(&["diff", "idle"]);
    run.expect(0);
    assert_eq!(run.stdout, format!("no changes since commit {IDLE_HEAD}\n"));
    let run = cli.run(&["diff", "fresh"]);
    run.expect(0);
    assert_eq!(
        run.stdout,
        "A   /root/x   2KiB\n\
         1 added, 0 modified, 0 deleted since the image it started from: 2KiB to commit\n"
    );
}

#[test]
fn diff_json_prints_the_api_answer_and_a_missing_devbox_exits_3() {
    let (_fake, cli) = setup();
    let run = cli.run(&["diff", "web", "--json"]);
    run.expect(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["since"], WEB_HEAD);
    assert_eq!(v["entries"][0]["change"], "added");
    assert_eq!(v["ignored"][0]["path"], "/root/.cache");
    cli.run(&["diff", "nope"]).expect(3);
}

#[test]
fn gc_prints_what_was_reclaimed_in_human_units() {
    let (fake, cli) = setup();
    let run = cli.run(&["gc"]);
    run.expect(0);
    assert_eq!(
        run.stdout,
        "Reclaimed:          1.3GiB\n\
         Commits expired:    2 (they stay in the history)\n\
         Manifests:          2\n\
         Blobs:              5 (300MiB)\n\
         Layer directories:  3 (1GiB)\n"
    );
    let run = cli.run(&["gc", "--dry-run"]);
    run.expect(0);
    assert!(
        run.stdout
            .starts_with("dry run: nothing was removed; a gc now would reclaim this\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Would reclaim:      1.3GiB\n"),
        "{}",
        run.stdout
    );
    let run = cli.run(&["gc", "--dry-run", "--json"]);
    run.expect(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["blob_bytes"], 300 * 1024 * 1024);
    let seen = fake.seen();
    assert_eq!(seen.requests, ["POST /api/v1/gc"; 3]);
    let dry: Vec<bool> = seen.gcs.iter().map(|g| g.dry_run).collect();
    assert_eq!(dry, [false, true, true]);
}

#[test]
fn bad_commit_arguments_are_refused_before_any_request() {
    let (fake, cli) = setup();
    let cases: &[(&[&str], &str)] = &[
        (&["commit", "Web"], "invalid devbox name"),
        (&["commit"], "<NAME>"),
        (&["rollback", "web"], "<COMMIT>"),
        (&["rollback", "web", "head"], "invalid commit id \"head\""),
        (&["rollback", "web", "12345"], "devbox history NAME"),
        (&["history", "../x"], "invalid devbox name"),
        (&["diff", "web", "--short"], "--short"),
        (&["gc", "web"], "unexpected argument"),
    ];
    for (args, want) in cases {
        let run = cli.run(args);
        run.expect(2);
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
    }
    assert!(fake.seen().requests.is_empty());
}
