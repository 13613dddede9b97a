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
