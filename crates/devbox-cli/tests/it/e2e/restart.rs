//! A crash of the server does not take devboxes down with it.

use super::harness::Server;

#[test]
fn a_running_devbox_survives_a_server_killed_with_sigkill() {
    let mut s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "db", "--image", "base:1"]);
    s.ok(&["create", "idle", "--image", "base:1"]);
    s.ok(&["start", "db"]);
    s.ok(&["exec", "db", "--", "sh", "-c", "echo kept > /root/state"]);

    s.kill9();
    s.spawn();

    let shown = s.json(&["show", "db", "--json"]);
    assert_eq!(shown["state"], "running", "{shown}");
    assert_eq!(s.json(&["show", "idle", "--json"])["state"], "stopped");
    assert_eq!(s.ok(&["exec", "db", "--", "cat", "/root/state"]), "kept\n");
    s.ok(&["stop", "db"]);
    s.ok(&["start", "db"]);
    assert_eq!(s.ok(&["exec", "db", "--", "cat", "/root/state"]), "kept\n");
}

/// Sets a devbox's persisted state while the server is down, as a crash in
/// the middle of an operation would leave it.
async fn set_state(s: &Server, name: &str, state: devbox_model::State) {
    use devbox_store::DevboxStore;
    let store = devbox_store::SqliteStore::open(&s.data.path().join("devbox.db")).unwrap();
    let devbox = store
        .get_devbox(&name.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    store
        .transition(
            &devbox.id,
            devbox.state,
            state,
            &devbox_store::Transition::plain(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_cut_short_by_a_crash_are_finished_or_rolled_back() {
    use devbox_model::State;
    let mut s = Server::start();
    s.import_busybox("base:1");
    for name in ["stopping", "starting", "deleting", "creating"] {
        s.ok(&["create", name, "--image", "base:1"]);
    }
    s.ok(&["start", "stopping"]);
    s.ok(&["start", "deleting"]);
    let deleting_id = s.json(&["show", "deleting", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_owned();

    s.kill9();
    set_state(&s, "stopping", State::Stopping).await;
    set_state(&s, "starting", State::Starting).await;
    set_state(&s, "deleting", State::Deleting).await;
    set_state(&s, "creating", State::Creating).await;
    s.spawn();

    // A stop that was under way is finished: the container is gone.
    assert_eq!(s.json(&["show", "stopping", "--json"])["state"], "stopped");
    let out = s.cli(&["exec", "stopping", "--", "true"]);
    assert!(!out.status.success());
    // A start that had not produced a container is rolled back.
    assert_eq!(s.json(&["show", "starting", "--json"])["state"], "stopped");
    // A delete is finished, leaving nothing behind.
    let out = s.cli(&["show", "deleting"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let left = super::harness::leftovers(&s, &deleting_id);
    assert!(left.is_empty(), "recovered delete left behind: {left:?}");
    // A create is finished.
    assert_eq!(s.json(&["show", "creating", "--json"])["state"], "stopped");
    // And every recovered devbox works.
    for name in ["stopping", "starting", "creating"] {
        s.ok(&["start", name]);
        s.ok(&["exec", name, "--", "true"]);
    }
}

#[test]
fn a_second_server_on_the_same_data_directory_fails_before_touching_anything() {
    let s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "web", "--image", "base:1"]);
    s.ok(&["start", "web"]);
    let spool = s.data.path().join("tmp/keep-me");
    std::fs::write(&spool, b"an upload in progress").unwrap();

    let other_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_devbox"))
        .args(["server", "--data-dir"])
        .arg(s.data.path())
        .args(["--listen", &format!("127.0.0.1:{other_port}")])
        .args(["--subnet", &s.subnet, "--bridge", &s.bridge])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another devbox server"), "{err}");
    assert!(err.contains("pid "), "the holder is named: {err}");
    // The first server's spool and devboxes are untouched.
    assert!(spool.exists(), "the second server emptied the spool");
    assert_eq!(s.json(&["show", "web", "--json"])["state"], "running");
    assert_eq!(s.ok(&["exec", "web", "--", "echo", "fine"]), "fine\n");
    s.ok(&["rm", "web"]);
}
