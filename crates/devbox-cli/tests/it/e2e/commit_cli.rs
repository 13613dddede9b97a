//! The commit commands as a user types them, against the real server:
//! `create --auto-commit --commit-exclude`, `diff`, `commit`, `history`,
//! `rollback`, `create --from`, `update`, `show` and `gc`, with what they
//! print and their exit codes.

use std::process::Output;

use super::harness::Server;

/// Runs a shell command in the devbox.
fn sh(s: &Server, name: &str, cmd: &str) -> String {
    s.ok(&["exec", name, "--", "sh", "-c", cmd])
}

/// The exit code, stdout and stderr of a run.
fn outcome(out: &Output) -> (i32, String, String) {
    (
        out.status.code().expect("the CLI ends with an exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of a `Key:   value` line of a fields list.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

#[test]
fn a_user_commits_reads_the_history_rolls_back_and_forks_with_the_cli() {
    let s = Server::start();
    s.import_busybox("base:1");
    let created = s.ok(&[
        "create",
        "dev",
        "--image",
        "base:1",
        "--auto-commit",
        "1h",
        "--commit-exclude",
        "/root/.cache/**,/srv/scratch/",
    ]);
    assert_eq!(
        field(&created, "Auto-commit"),
        "every 1h when something changed"
    );
    assert_eq!(field(&created, "Head"), "- (no commit yet)");
    s.ok(&["start", "dev"]);
    sh(
        &s,
        "dev",
        "echo v1 > /root/state; mkdir -p /root/.cache /srv/scratch; \
         head -c 4096 /dev/zero > /root/.cache/big; echo x > /srv/scratch/y",
    );

    let diff = s.ok(&["diff", "dev"]);
    assert!(
        diff.lines()
            .any(|l| l.starts_with("A   /root/state") && l.ends_with("3B")),
        "{diff}"
    );
    assert!(
        diff.contains("left out by the exclude patterns:\n"),
        "{diff}"
    );
    assert!(diff.contains("/root/.cache/"), "{diff}");
    assert!(
        diff.lines()
            .last()
            .unwrap()
            .contains("since the image it started from"),
        "{diff}"
    );
    let json = s.json(&["diff", "dev", "--json"]);
    assert_eq!(json["since"], serde_json::Value::Null, "{json}");

    let committed = s.ok(&["commit", "dev", "-m", "state v1", "--pin"]);
    let c1 = field(&committed, "Commit").to_owned();
    assert_eq!(c1.len(), 16, "{committed}");
    assert!(
        field(&committed, "Digest").starts_with("sha256:"),
        "{committed}"
    );
    assert_eq!(field(&committed, "Pinned"), "yes");
    assert_eq!(
        s.json(&["show", "dev", "--json"])["state"],
        "running",
        "a commit is live"
    );
    let diff = s.ok(&["diff", "dev"]);
    assert!(
        diff.lines()
            .last()
            .unwrap()
            .starts_with(&format!("no changes since commit {c1}; ")),
        "the cache is still left out, and counted: {diff}"
    );

    sh(&s, "dev", "echo v2 > /root/state");
    let consistent = s.ok(&["commit", "dev", "--consistent"]);
    let c2 = field(&consistent, "Commit").to_owned();
    let history = s.ok(&["history", "dev"]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(lines[1].starts_with(&format!("*   {c2}")), "{history}");
    assert!(lines[1].contains("manual"), "{history}");
    assert!(lines[2].starts_with(&format!("    {c1}")), "{history}");
    assert!(
        lines[2].contains("pinned") && lines[2].ends_with("state v1"),
        "{history}"
    );
    let list = s.json(&["history", "dev", "--json"]);
    assert_eq!(list[0]["id"].as_str(), Some(c2.as_str()));
    assert_eq!(list[1]["message"], "state v1");

    // A running devbox restarts, and says so first.
    let (code, stdout, stderr) = outcome(&s.cli(&["rollback", "dev", &c1.to_uppercase()]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "note: dev is running: rolling back restarts it to run from commit {c1}"
        )),
        "{stderr}"
    );
    assert_eq!(
        stdout,
        format!("dev: restarted, running from commit {c1}\n")
    );
    assert_eq!(sh(&s, "dev", "cat /root/state"), "v1\n");
    assert_eq!(field(&s.ok(&["show", "dev"]), "Head"), c1);

    // A stopped one waits for its next start.
    s.ok(&["stop", "dev"]);
    let stdout = s.ok(&["rollback", "dev", &c2]);
    assert_eq!(
        stdout,
        format!("dev: stopped; its next start runs from commit {c2}\n")
    );
    s.ok(&["start", "dev"]);
    assert_eq!(sh(&s, "dev", "cat /root/state"), "v2\n");

    let fork = s.ok(&["create", "dev2", "--from", &format!("dev@{c1}")]);
    assert_eq!(field(&fork, "Image"), format!("admin/dev:{c1}"));
    s.ok(&["start", "dev2"]);
    assert_eq!(sh(&s, "dev2", "cat /root/state"), "v1\n");
    s.ok(&["rm", "dev2"]);

    let updated = s.ok(&[
        "update",
        "dev",
        "--auto-commit",
        "off",
        "--no-commit-exclude",
    ]);
    assert_eq!(field(&updated, "Auto-commit"), "off");
    assert_eq!(field(&updated, "Excludes"), "-");

    let dry = s.ok(&["gc", "--dry-run"]);
    assert!(dry.starts_with("dry run: nothing was removed"), "{dry}");
    let report = s.json(&["gc", "--json"]);
    assert_eq!(report["dry_run"], false, "{report}");
    let gc = s.ok(&["gc"]);
    assert!(gc.starts_with("Reclaimed:"), "{gc}");
    s.ok(&["rm", "dev"]);
}

#[test]
fn the_cli_turns_the_servers_refusals_into_exit_codes() {
    let s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "dev", "--image", "base:1"]);
    s.ok(&["create", "other", "--image", "base:1"]);

    let (code, _, stderr) = outcome(&s.cli(&["commit", "dev"]));
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("nothing to commit"), "{stderr}");
    let (code, _, _) = outcome(&s.cli(&["commit", "ghost"]));
    assert_eq!(code, 3);
    let (code, _, _) = outcome(&s.cli(&["history", "ghost"]));
    assert_eq!(code, 3);
    let (code, _, _) = outcome(&s.cli(&["diff", "ghost"]));
    assert_eq!(code, 3);

    let (code, stdout, stderr) = outcome(&s.cli(&["history", "dev"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stderr.contains("dev has no commits yet"), "{stderr}");
    let (code, _, stderr) = outcome(&s.cli(&["create", "fork", "--from", "dev"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no commits yet"), "{stderr}");

    s.ok(&["start", "other"]);
    let theirs = field(&s.ok(&["commit", "other"]), "Commit").to_owned();
    let (code, _, stderr) = outcome(&s.cli(&["rollback", "dev", &theirs]));
    assert_eq!(code, 3, "another devbox's commit: {stderr}");
    assert!(stderr.contains("devbox history dev"), "{stderr}");
    let (code, _, _) = outcome(&s.cli(&["rollback", "dev", "0123456789abcdef"]));
    assert_eq!(code, 3);
    let (code, _, stderr) = outcome(&s.cli(&["create", "fork", "--from", "ghost"]));
    assert_eq!(code, 3, "{stderr}");
    let (code, _, stderr) =
        outcome(&s.cli(&["create", "fork", "--from", "other@0123456789abcdef"]));
    assert_eq!(code, 3, "{stderr}");

    let list = s.json(&["ls", "--json"]);
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "nothing was created: {list}"
    );
    s.ok(&["rm", "other"]);
    s.ok(&["rm", "dev"]);
}
