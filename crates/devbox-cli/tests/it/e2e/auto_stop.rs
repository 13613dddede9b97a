//! Idle auto-stop against a real server: a devbox nobody uses stops once
//! its window passed, with its reason recorded; one running a CPU-busy
//! loop in the background does not.

use std::time::{Duration, Instant};

use super::harness::Server;

#[test]
fn an_idle_devbox_stops_and_a_busy_one_keeps_running() {
    let s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "quiet", "--image", "base:1", "--auto-stop", "8s"]);
    s.ok(&[
        "create",
        "busy",
        "--image",
        "base:1",
        "--auto-stop",
        "8s",
        "--cmd",
        "while :; do :; done",
    ]);
    let shown = s.json(&["show", "quiet", "--json"]);
    assert_eq!(shown["auto_stop"], 8, "{shown}");
    assert!(s.ok(&["show", "quiet"]).contains("after 8s idle"));
    s.ok(&["start", "quiet"]);
    s.ok(&["start", "busy"]);
    // An exec is activity: the window starts again after it.
    s.ok(&["exec", "quiet", "--", "true"]);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    let quiet = loop {
        let d = s.json(&["show", "quiet", "--json"]);
        if d["state"] == "stopped" {
            break d;
        }
        // Stopping is the commit the stop makes on its way to stopped.
        assert!(d["state"] == "running" || d["state"] == "stopping", "{d}");
        assert!(
            Instant::now() < deadline,
            "the idle devbox did not stop in 90 s: {d}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "it stopped before its window"
    );
    assert_eq!(quiet["reason"], "idle for 8s", "{quiet}");
    assert!(quiet["last_activity"].is_string(), "{quiet}");
    let show = s.ok(&["show", "quiet"]);
    assert!(show.contains("stopped (idle for 8s)"), "{show}");
    // The busy one had the same window and more: still running.
    std::thread::sleep(Duration::from_secs(4));
    let busy = s.json(&["show", "busy", "--json"]);
    assert_eq!(busy["state"], "running", "{busy}");
    s.ok(&["update", "busy", "--auto-stop", "off"]);
    assert_eq!(
        s.json(&["show", "busy", "--json"])["auto_stop"],
        serde_json::Value::Null
    );
}
