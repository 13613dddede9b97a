//! Commit settings and forks: `create --auto-commit --commit-exclude`,
//! `create --from`, `update --auto-commit --commit-exclude` and what `show`
//! says of them.

use crate::cli::Cli;
use crate::fake::{Fake, TOKEN, WEB_AUTO, WEB_HEAD, WEB_RECLAIMED};

fn setup() -> (Fake, Cli) {
    let fake = Fake::start();
    let cli = Cli::new(&fake.url, Some(TOKEN));
    (fake, cli)
}

#[test]
fn create_sends_the_interval_in_seconds_and_the_patterns_as_a_list() {
    let (fake, cli) = setup();
    let run = cli.run(&[
        "create",
        "dev",
        "--image",
        "base:1",
        "--auto-commit",
        "1h30m",
        "--commit-exclude",
        "/tmp,/root/.cache/**",
        "--commit-exclude",
        "/srv/build/",
    ]);
    run.expect(0);
    assert!(
        run.stdout
            .contains("Auto-commit:   every 1h30m when something changed\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "Excludes:      /tmp\n               /root/.cache/**\n               /srv/build/\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Head:          - (no commit yet)\n"),
        "{}",
        run.stdout
    );
    let seen = fake.seen();
    let body = serde_json::to_value(&seen.created[0]).unwrap();
    assert_eq!(body["image"], "base:1");
    assert_eq!(body["from"], serde_json::Value::Null);
    assert_eq!(body["auto_commit"], 5400);
    assert_eq!(
        body["commit_exclude"],
        serde_json::json!(["/tmp", "/root/.cache/**", "/srv/build/"])
    );
}

#[test]
fn auto_commit_off_at_creation_sends_no_interval() {
    let (fake, cli) = setup();
    let run = cli.run(&["create", "dev", "--image", "base:1", "--auto-commit", "off"]);
    run.expect(0);
    assert!(
        run.stdout.contains("Auto-commit:   off\n"),
        "{}",
        run.stdout
    );
    assert_eq!(fake.seen().created[0].auto_commit, None);
}

#[test]
fn a_fork_names_its_source_and_starts_from_its_commit() {
    let (fake, cli) = setup();
    let run = cli.run(&["create", "dev2", "--from", "web"]);
    run.expect(0);
    assert!(
        run.stdout
            .contains(&format!("Image:         admin/web:{WEB_HEAD}\n")),
        "{}",
        run.stdout
    );
    let from = format!("web@{}", WEB_AUTO.to_uppercase());
    let run = cli.run(&["create", "dev3", "--from", &from, "--json"]);
    run.expect(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["image"], format!("admin/web:{WEB_AUTO}"));
    let seen = fake.seen();
    let bodies: Vec<serde_json::Value> = seen
        .created
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert_eq!(bodies[0]["from"], "web");
    assert_eq!(bodies[0]["image"], serde_json::Value::Null);
    assert_eq!(bodies[1]["from"], format!("web@{WEB_AUTO}"));
}

#[test]
fn a_fork_from_a_missing_devbox_or_commit_exits_3_and_from_a_reclaimed_one_4() {
    let (_fake, cli) = setup();
    let run = cli.run(&["create", "dev2", "--from", "nope"]);
    run.expect(3);
    assert_eq!(
        run.stderr,
        "error: devbox nope not found: it cannot be forked\n"
    );
    let run = cli.run(&["create", "dev2", "--from", "web@9999999999999999"]);
    run.expect(3);
    assert_eq!(
        run.stderr,
        "error: devbox web has no commit 9999999999999999; see `devbox history web`\n"
    );
    let run = cli.run(&["create", "dev2", "--from", &format!("web@{WEB_RECLAIMED}")]);
    run.expect(4);
    assert!(
        run.stderr.starts_with(&format!(
            "error: commit {WEB_RECLAIMED} of devbox web is no longer stored"
        )),
        "{}",
        run.stderr
    );
    // The server takes a source without commits for a bad request.
    let run = cli.run(&["create", "dev2", "--from", "fresh"]);
    run.expect(1);
    assert!(
        run.stderr.contains("that devbox has no commits yet"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn bad_forks_and_settings_are_refused_before_any_request() {
    let (fake, cli) = setup();
    let cases: &[(&[&str], &str)] = &[
        (
            &["create", "d", "--from", "web", "--image", "b:1"],
            "cannot be used with",
        ),
        (&["create", "d"], "--from"),
        (
            &["create", "d", "--from", "web@123"],
            "invalid commit id \"123\"",
        ),
        (&["create", "d", "--from", "Web"], "invalid devbox name"),
        (
            &["create", "d", "--image", "b:1", "--auto-commit", "10"],
            "like 90s, 10m, 1h or 1h30m",
        ),
        (
            &[
                "create",
                "d",
                "--image",
                "b:1",
                "--commit-exclude",
                "/x/[ab",
            ],
            "ignore pattern \"/x/[ab\" from --commit-exclude does not parse",
        ),
        (&["update", "web", "--auto-commit", "1d"], "expected off or"),
        (&["update", "web", "--auto-commit", "0m"], "is zero"),
        (
            &[
                "update",
                "web",
                "--commit-exclude",
                "/a",
                "--no-commit-exclude",
            ],
            "cannot be used with",
        ),
    ];
    for (args, want) in cases {
        let run = cli.run(args);
        run.expect(2);
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
    }
    assert!(fake.seen().requests.is_empty());
}

#[test]
fn update_changes_the_interval_and_replaces_the_patterns() {
    let (fake, cli) = setup();
    let run = cli.run(&[
        "update",
        "web",
        "--auto-commit",
        "30m",
        "--commit-exclude",
        "/srv/**,/var/cache",
    ]);
    run.expect(0);
    assert!(
        run.stdout
            .contains("Auto-commit:   every 30m when something changed\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Excludes:      /srv/**\n               /var/cache\n"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let run = cli.run(&[
        "update",
        "web",
        "--auto-commit",
        "off",
        "--no-commit-exclude",
    ]);
    run.expect(0);
    assert!(
        run.stdout.contains("Auto-commit:   off\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Excludes:      -\n"), "{}", run.stdout);
    let seen = fake.seen();
    assert_eq!(
        serde_json::to_value(&seen.updates[0]).unwrap(),
        serde_json::json!({
            "cpus": null, "memory": null, "pids": null, "env": [], "unset_env": [],
            "command": null, "auto_commit": 1800,
            "commit_exclude": ["/srv/**", "/var/cache"],
        })
    );
    assert_eq!(seen.updates[1].auto_commit, Some(0));
    assert_eq!(seen.updates[1].commit_exclude, Some(Vec::new()));
}

#[test]
fn show_gives_the_head_the_interval_and_the_patterns() {
    let (_fake, cli) = setup();
    let run = cli.run(&["show", "web"]);
    run.expect(0);
    for line in [
        format!("Head:          {WEB_HEAD}\n"),
        "Auto-commit:   every 10m when something changed\n".to_owned(),
        "Excludes:      /root/.cache/**\n".to_owned(),
    ] {
        assert!(run.stdout.contains(&line), "{line:?} in:\n{}", run.stdout);
    }
    let run = cli.run(&["show", "fresh"]);
    run.expect(0);
    assert!(
        run.stdout.contains("Head:          - (no commit yet)\n"),
        "{}",
        run.stdout
    );
    let run = cli.run(&["show", "web", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&run.expect(0).stdout).unwrap();
    assert_eq!(v["head"], WEB_HEAD);
    assert_eq!(v["auto_commit"], 600);
}
