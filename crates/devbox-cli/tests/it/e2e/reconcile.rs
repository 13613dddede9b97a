//! The reconciler notices devboxes whose container ended on its own.

use std::time::{Duration, Instant};

use super::harness::Server;

/// The host PID of the devbox's init, as runc reports it.
fn init_pid(s: &Server, id: &str) -> i32 {
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(s.data.path().join("runtime/runc"))
        .args(["state", id])
        .output()
        .expect("run runc state");
    assert!(out.status.success(), "runc state: {out:?}");
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    state["pid"]
        .as_i64()
        .expect("a running container has a pid") as i32
}

#[test]
fn a_devbox_whose_init_is_killed_on_the_host_shows_as_stopped_with_the_reason() {
    let s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "victim", "--image", "base:1"]);
    s.ok(&["start", "victim"]);
    s.ok(&[
        "exec",
        "victim",
        "--",
        "sh",
        "-c",
        "echo kept > /root/state",
    ]);
    let id = s.json(&["show", "victim", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let killed = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(init_pid(&s, &id)).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let shown = loop {
        let shown = s.json(&["show", "victim", "--json"]);
        if shown["state"] == "stopped" {
            break shown;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "still {} five seconds after its init was killed; server log:\n{}",
            shown["state"],
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let reason = shown["reason"].as_str().unwrap_or_default();
    assert_eq!(reason, "exited with 137: killed by SIGKILL", "{shown}");
    let listed = s.ok(&["ls"]);
    assert!(listed.contains(reason), "ls does not say why: {listed}");

    // The devbox is whole: it starts again with its files, and the reason
    // goes with the next run.
    s.ok(&["start", "victim"]);
    assert_eq!(
        s.ok(&["exec", "victim", "--", "cat", "/root/state"]),
        "kept\n"
    );
    let shown = s.json(&["show", "victim", "--json"]);
    assert!(shown["reason"].is_null(), "{shown}");
    s.ok(&["rm", "victim"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_is_json_even_for_a_method_a_route_does_not_take() {
    let s = Server::start();
    let r = s
        .http()
        .put(format!("{}/api/v1/devboxes", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("PUT") && msg.contains("/api/v1/devboxes"),
        "{msg}"
    );
}

#[test]
fn a_startup_command_that_fails_at_once_shows_in_start_and_show() {
    let s = Server::start();
    s.import_busybox("base:1");
    s.ok(&[
        "create",
        "broken",
        "--image",
        "base:1",
        "--cmd",
        "sh -c 'exit 3'",
    ]);
    let out = s.cli(&["start", "broken"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("exited with 3"), "{stderr}");
    let shown = s.json(&["show", "broken", "--json"]);
    assert_eq!(shown["state"], "running", "the devbox itself runs: {shown}");
    assert_eq!(
        shown["command_status"],
        serde_json::json!({"state": "exited", "code": 3}),
        "{shown}"
    );

    s.ok(&[
        "create",
        "typo",
        "--image",
        "base:1",
        "--cmd",
        "/no/such/program",
    ]);
    let out = s.cli(&["start", "typo"]);
    assert_eq!(out.status.code(), Some(5));
    // `--cmd` runs through the image's shell, which reports the missing
    // program as 127.
    let shown = s.json(&["show", "typo", "--json"]);
    assert_eq!(
        shown["command_status"],
        serde_json::json!({"state": "exited", "code": 127}),
        "{shown}"
    );
    s.ok(&["rm", "broken"]);
    s.ok(&["rm", "typo"]);
}
