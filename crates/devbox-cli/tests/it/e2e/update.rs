//! `devbox update`: limits change live, the rest at the next start.

use super::harness::Server;

/// The devbox's memory limit as its cgroup holds it (v1 or v2).
fn memory_limit(s: &Server, name: &str) -> u64 {
    let out = s.ok(&[
        "exec",
        name,
        "--",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a limit: {out:?}"))
}

#[test]
fn limits_change_on_a_running_devbox_and_env_waits_for_the_next_start() {
    let s = Server::start();
    s.import_busybox("base:1");
    s.ok(&[
        "create", "web", "--image", "base:1", "--memory", "256m", "--env", "A=1",
    ]);
    s.ok(&["start", "web"]);
    assert_eq!(memory_limit(&s, "web"), 256 << 20);

    let shown = s.json(&[
        "update", "web", "--memory", "300m", "--env", "B=2", "--json",
    ]);
    assert_eq!(shown["resources"]["memory"], 300u64 << 20, "{shown}");
    assert_eq!(
        memory_limit(&s, "web"),
        300 << 20,
        "the new limit applies at once"
    );
    assert_eq!(shown["pending"], serde_json::json!(["env"]), "{shown}");
    // The running devbox still has the environment it started with.
    assert_eq!(
        s.ok(&["exec", "web", "--", "sh", "-c", "echo ${B:-unset}"]),
        "unset\n"
    );

    // A limit below what the devbox uses is refused, and nothing changes.
    s.ok(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "mkdir -p /dev/shm/x; dd if=/dev/zero of=/dev/shm/x/fill bs=1M count=40 2>/dev/null; true",
    ]);
    let out = s.cli(&["update", "web", "--memory", "16m"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("below") && err.contains("web"), "{err}");
    assert_eq!(memory_limit(&s, "web"), 300 << 20);
    assert_eq!(
        s.json(&["show", "web", "--json"])["resources"]["memory"],
        300u64 << 20
    );

    // Unsetting a variable the devbox does not have is a clear error.
    let out = s.cli(&["update", "web", "--unset-env", "NOPE"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOPE"));

    s.ok(&["restart", "web"]);
    assert_eq!(
        s.ok(&["exec", "web", "--", "sh", "-c", "echo $A$B"]),
        "12\n"
    );
    assert_eq!(
        s.json(&["show", "web", "--json"])["pending"],
        serde_json::json!([])
    );
    s.ok(&["rm", "web"]);
}
