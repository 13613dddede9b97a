//! The event stream against a real server: `devbox events --json` sees
//! every state change and operation of a devbox's life in sequence, and a
//! client that reconnects with `Last-Event-ID` resumes after it, or is told
//! that it cannot.

use std::time::{Duration, Instant};

use futures::StreamExt;

use super::harness::Server;

/// The JSON events printed so far.
fn parsed(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Reads SSE frames (`id`, `data`) from a streamed response until `n` were read.
async fn frames(resp: reqwest::Response, n: usize) -> Vec<(Option<String>, serde_json::Value)> {
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("events arrive within 20 s")
            .expect("the stream stays open")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut id = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_owned());
                }
                if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str(v.trim()).unwrap());
                }
            }
            if let Some(data) = data {
                out.push((id, data));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_state_change_and_operation_is_an_event_and_a_reconnect_resumes() {
    let s = Server::start();
    s.import_busybox("base:1");
    let follower = s.follow(&["events", "--json"]);
    // The stream is open once the first operation's events show.
    s.ok(&["create", "web", "--image", "base:1"]);
    s.ok(&["start", "web"]);
    s.ok(&["stop", "web"]);
    s.ok(&["rm", "web"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !follower.text().contains("\"deleted\"") {
        assert!(
            Instant::now() < deadline,
            "no deleted event in 30 s:\n{}",
            follower.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let events = parsed(&follower.text());
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence numbers go up by one: {seqs:?}"
    );
    let states: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "state")
        .map(|e| e["to"].as_str().unwrap().to_owned())
        .collect();
    // The create may have happened before the stream was open.
    let from_start = states
        .iter()
        .position(|s| s == "starting")
        .expect("a starting event");
    assert_eq!(
        states[from_start..],
        ["starting", "running", "stopping", "stopped", "deleting"],
        "{events:?}"
    );
    for op in ["start", "stop", "delete"] {
        let started = events
            .iter()
            .position(|e| e["type"] == "operation_started" && e["op"] == op)
            .unwrap_or_else(|| panic!("no {op} start in {events:?}"));
        let finished = events
            .iter()
            .position(|e| e["type"] == "operation_finished" && e["op"] == op)
            .unwrap_or_else(|| panic!("no {op} end in {events:?}"));
        assert!(started < finished, "{op}");
        assert_eq!(events[started]["devbox"], "web");
        assert_eq!(events[started]["caller"], "token:admin");
    }

    // A failed operation is an event with the server's message.
    let out = s.cli(&["start", "nosuch"]);
    assert_eq!(out.status.code(), Some(3));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !follower.text().contains("operation_failed") {
        assert!(Instant::now() < deadline, "{}", follower.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let failed = parsed(&follower.text())
        .into_iter()
        .find(|e| e["type"] == "operation_failed")
        .unwrap();
    assert_eq!(failed["message"], "devbox nosuch not found", "{failed}");

    // Resuming after the first of two events sent gets the second first.
    let http = s.http();
    let url = format!("{}/api/v1/events", s.url);
    s.ok(&["create", "api", "--image", "base:1"]);
    let resp = http
        .get(&url)
        .header("Last-Event-ID", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let all = frames(resp, 2).await;
    // An ID of no run of this server: the stream says so, then replays
    // what it keeps, from the oldest.
    assert_eq!(all[0].1["type"], "gap", "{all:?}");
    assert!(all[0].0.is_none(), "a gap has no ID");
    assert_eq!(all[1].1["seq"], 1);
    let first_id = all[1].0.clone().unwrap();
    let resp = http
        .get(&url)
        .header("Last-Event-ID", &first_id)
        .send()
        .await
        .unwrap();
    let resumed = frames(resp, 1).await;
    assert_eq!(resumed[0].1["seq"], 2, "{resumed:?}");
    let boot = first_id.rsplit_once('-').unwrap().0.to_owned();
    let resp = http
        .get(&url)
        .header("Last-Event-ID", format!("{boot}-999999"))
        .send()
        .await
        .unwrap();
    let never = frames(resp, 1).await;
    assert_eq!(never[0].1["type"], "gap");
    assert!(
        never[0].1["message"]
            .as_str()
            .unwrap()
            .contains("never sent"),
        "{never:?}"
    );

    // Without a token there is no stream.
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}
