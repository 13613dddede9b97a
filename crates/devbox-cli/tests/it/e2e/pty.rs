//! Interactive exec: a real pty over the WebSocket, with resize and exit codes,
//! and the CLI's `exec -it` under a terminal.

use std::time::Duration;

use devbox_model::api::{ExecClientMsg, ExecServerMsg, stream};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::harness::Server;

fn send_msg(msg: &ExecClientMsg) -> Message {
    Message::Text(serde_json::to_string(msg).unwrap().into())
}

fn stdin(data: &str) -> Message {
    let mut v = vec![stream::STDIN];
    v.extend_from_slice(data.as_bytes());
    Message::Binary(v.into())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pty_session_resizes_and_reports_the_exit_code() {
    let s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "tty", "--image", "base:1"]);
    s.ok(&["start", "tty"]);

    let url = format!("ws://{}/api/v1/devboxes/tty/exec/ws", s.listen);
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", s.token()).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let start = ExecClientMsg::Start {
        cmd: vec!["sh".into()],
        env: vec![],
        workdir: None,
        tty: true,
        rows: Some(30),
        cols: Some(100),
    };
    ws.send(send_msg(&start)).await.unwrap();
    ws.send(stdin("stty size; tty\n")).await.unwrap();

    let mut screen = String::new();
    let mut exit = None;
    let mut resized = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while exit.is_none() {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no exit within 30 s; screen so far:\n{screen}"));
        match msg {
            Some(Ok(Message::Binary(b))) => {
                assert_eq!(b[0], stream::STDOUT, "a pty has one output stream");
                screen.push_str(&String::from_utf8_lossy(&b[1..]));
            }
            Some(Ok(Message::Text(t))) => {
                match serde_json::from_str::<ExecServerMsg>(&t).unwrap() {
                    ExecServerMsg::Exit { code } => exit = Some(code),
                    ExecServerMsg::Error { message, .. } => panic!("exec failed: {message}"),
                }
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended early: {other:?}; screen:\n{screen}"),
        }
        if !resized && screen.contains("30 100") && screen.contains("/dev/pts/") {
            resized = true;
            ws.send(send_msg(&ExecClientMsg::Resize {
                rows: 40,
                cols: 120,
            }))
            .await
            .unwrap();
            ws.send(stdin("stty size; exit 7\n")).await.unwrap();
        }
    }
    assert!(resized, "initial size not applied:\n{screen}");
    assert!(screen.contains("40 120"), "resize not applied:\n{screen}");
    assert_eq!(exit, Some(7));
}

#[test]
fn the_cli_runs_an_interactive_shell_under_a_terminal() {
    let s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "term", "--image", "base:1"]);
    s.ok(&["start", "term"]);
    // `script` gives the CLI a real terminal on this side, as a user's shell would.
    let cmd = format!("{} exec -it term -- sh", env!("CARGO_BIN_EXE_devbox"));
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("DEVBOX_URL", &s.url)
        .env("DEVBOX_DATA_DIR", s.data.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let mut i = c.stdin.take().unwrap();
            i.write_all(b"echo $((6*7)) > /root/answer; tty; exit 5\n")?;
            // Keep stdin open until the remote shell exits, like a person would.
            std::thread::sleep(Duration::from_secs(3));
            drop(i);
            c.wait_with_output()
        })
        .expect("`script` (util-linux) is needed to give the CLI a terminal");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/dev/pts/"),
        "no pty inside: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert_eq!(s.ok(&["exec", "term", "--", "cat", "/root/answer"]), "42\n");
}
