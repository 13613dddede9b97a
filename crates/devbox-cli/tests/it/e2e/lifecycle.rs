//! The user's whole journey: import, create, start, exec, stop, start, delete.

use super::harness::{Server, leftovers};

#[test]
fn a_devbox_keeps_its_files_across_stop_and_start_and_leaves_nothing_when_deleted() {
    let s = Server::start();
    s.import_busybox("base:1");
    let images = s.json(&["image", "ls", "--json"]);
    assert_eq!(images[0]["reference"], "base:1", "{images}");

    s.ok(&[
        "create",
        "web",
        "--image",
        "base:1",
        "--cpus",
        "1",
        "--memory",
        "512MiB",
        "--env",
        "FOO=bar",
        "--cmd",
        "echo started with FOO=$FOO",
    ]);
    let shown = s.json(&["show", "web", "--json"]);
    assert_eq!(shown["state"], "stopped");
    let id = shown["id"].as_str().unwrap().to_owned();

    s.ok(&["start", "web"]);
    assert_eq!(s.json(&["show", "web", "--json"])["state"], "running");
    let out = s.ok(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo hi > /root/x; cat /etc/os-release",
    ]);
    assert!(out.contains("NAME=\"Devbox test\""), "{out}");
    assert_eq!(
        s.ok(&["exec", "web", "--", "sh", "-c", "echo $FOO"]),
        "bar\n"
    );
    assert_eq!(s.ok(&["exec", "web", "--", "hostname"]), "web\n");

    // Exit codes and the two output streams come back separately.
    let out = s.cli(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));

    // A program that does not exist is 127, one that cannot run 126, as in a shell.
    let out = s.cli(&["exec", "web", "--", "nosuchcmd"]);
    assert_eq!(
        out.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuchcmd"));
    let out = s.cli(&["exec", "web", "--", "/etc/os-release"]);
    assert_eq!(
        out.status.code(),
        Some(126),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Standard input reaches the command with -i.
    let out = s.cli_with_stdin(&["exec", "-i", "web", "--", "cat"], b"piped input\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped input\n");
    // Without -i the command's stdin is empty, not endless.
    assert_eq!(s.ok(&["exec", "web", "--", "cat"]), "");
    // A command that stops reading early still reports its own exit code.
    let lots = "y\n".repeat(4 << 20);
    let out = s.cli_with_stdin(
        &["exec", "-i", "web", "--", "head", "-n", "1"],
        lots.as_bytes(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "y\n");

    // Limits are real cgroup limits; the network reaches the gateway.
    let mem = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/devbox/{id}/memory.limit_in_bytes"
    ))
    .unwrap_or_else(|e| panic!("memory cgroup of {id}: {e}"));
    assert_eq!(mem.trim(), (512u64 << 20).to_string());
    let quota = std::fs::read_to_string(format!("/sys/fs/cgroup/cpu/devbox/{id}/cpu.cfs_quota_us"))
        .unwrap();
    assert_eq!(quota.trim(), "100000");
    s.ok(&[
        "exec", "web", "--", "ping", "-c", "1", "-W", "5", &s.gateway,
    ]);
    let resolv = s.ok(&["exec", "web", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver"), "{resolv}");

    // The startup command's output is in the log.
    let logs = s.ok(&["logs", "web"]);
    assert!(logs.contains("started with FOO=bar"), "{logs}");

    s.ok(&["stop", "web"]);
    assert_eq!(s.json(&["show", "web", "--json"])["state"], "stopped");
    let out = s.cli(&["exec", "web", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not running"),
        "{:?}",
        out
    );
    s.ok(&["stop", "web"]); // idempotent

    s.ok(&["start", "web"]);
    s.ok(&["start", "web"]); // idempotent
    assert_eq!(s.ok(&["exec", "web", "--", "cat", "/root/x"]), "hi\n");
    // A followed log ends, as docker's does, once the devbox stops, after
    // the last words of its run; the next run's output follows in the log.
    let mut follower = s.follow_logs("web");
    assert!(
        follower.wait_for("started with FOO=bar", 2),
        "{}",
        follower.text()
    );
    s.ok(&["restart", "web"]);
    let ended = follower.wait_end();
    assert!(
        ended.is_some_and(|st| st.success()),
        "devbox logs -f did not end with the stop: {ended:?}, {}",
        follower.text()
    );
    assert!(
        follower.text().contains("devbox-agent: stopping"),
        "{}",
        follower.text()
    );
    let logs = s.ok(&["logs", "web"]);
    assert_eq!(logs.matches("started with FOO=bar").count(), 3, "{logs}");
    assert_eq!(s.ok(&["exec", "web", "--", "cat", "/root/x"]), "hi\n");

    let list = s.json(&["ls", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "web");
    assert_eq!(list[0]["state"], "running");
    let table = s.ok(&["ls"]);
    assert!(
        table.contains("web") && table.contains("running"),
        "{table}"
    );

    s.ok(&["rm", "web"]);
    assert_eq!(s.json(&["ls", "--json"]), serde_json::json!([]));
    let left = leftovers(&s, &id);
    assert!(left.is_empty(), "deleting devbox web left behind: {left:?}");
    // The server's stderr is a file here: no colour codes in it.
    let log = s.log();
    assert!(log.contains("listening on"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "colour codes in the server log:\n{log}"
    );
}
