//! Runs the agent as an ordinary process (not PID 1): it must run the command,
//! report its end (on the console and in `command.json`), reap orphans it
//! adopted, and stop cleanly on SIGTERM. The shim mode runs against a
//! stand-in for runc (`shim.rs`).

mod shim;
mod ssh;

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_devbox-agent");

fn agent(args: &[&str]) -> Child {
    Command::new(AGENT)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn devbox-agent")
}

fn term(child: &Child) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("send SIGTERM");
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not exit within {limit:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a pipe on a thread so the child never blocks on a full pipe.
fn collect(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        r.read_to_string(&mut s).expect("read output");
        s
    })
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn runs_the_command_reports_its_status_and_stops_on_sigterm() {
    let mut child = agent(&["--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    // The agent keeps running after its command ended.
    thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent exited early"
    );
    term(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert_eq!(out.join().unwrap(), "out\n");
    let err = err.join().unwrap();
    assert!(err.contains("err\n"), "{err}");
    assert!(
        err.contains("devbox-agent: command exited with status 3"),
        "{err}"
    );
}

#[test]
fn forwards_sigterm_to_the_command() {
    let mut child = agent(&[
        "--",
        "sh",
        "-c",
        "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.05; done",
    ]);
    let mut stdout = child.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    stdout.read_exact(&mut ready).unwrap();
    assert_eq!(&ready, b"ready\n");
    let out = collect(stdout);
    let err = collect(child.stderr.take().unwrap());
    term(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert_eq!(out.join().unwrap(), "got-term\n");
    let err = err.join().unwrap();
    assert!(err.contains("devbox-agent: stopping"), "{err}");
    assert!(err.contains("command exited with status 0"), "{err}");
}

#[test]
fn sigterm_reaches_a_command_that_does_not_handle_it() {
    // `sleep` neither handles nor unblocks SIGTERM: it must not inherit the
    // agent's blocked signals, or a stop would wait for it in vain.
    let mut child = agent(&["--", "sleep", "60"]);
    let err = collect(child.stderr.take().unwrap());
    thread::sleep(Duration::from_millis(300));
    term(&child);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(30)).code(),
        Some(0)
    );
    let err = err.join().unwrap();
    assert!(
        err.contains("devbox-agent: command was killed by signal 15"),
        "{err}"
    );
    assert!(!err.contains("still running"), "{err}");
}

#[test]
fn reaps_orphans_of_the_command() {
    // The command leaves a background process behind and exits; the agent
    // adopts the orphan and must reap it when it ends, leaving no zombie.
    let mut child = agent(&["--", "sh", "-c", "sleep 1 & echo $!"]);
    let mut stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    while !line.ends_with('\n') {
        let mut b = [0u8; 1];
        if stdout.read(&mut b).unwrap() == 0 {
            break;
        }
        line.push(b[0] as char);
    }
    let orphan: u32 = line.trim().parse().expect("the orphan's pid");
    let stat = format!("/proc/{orphan}/stat");
    // Once the shell has exited, the orphan's parent is the agent.
    let parent = || -> Option<u32> {
        let s = std::fs::read_to_string(&stat).ok()?;
        s.rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    wait_for("the agent to adopt the orphan", || {
        parent() == Some(child.id())
    });
    wait_for("the orphan to be reaped", || {
        !std::path::Path::new(&stat).exists()
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent exited early"
    );
    term(&child);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
}

#[test]
fn without_a_command_it_waits_until_sigterm() {
    let mut child = agent(&[]);
    let err = collect(child.stderr.take().unwrap());
    thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent exited early"
    );
    term(&child);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
    assert!(err.join().unwrap().contains("devbox-agent: stopping"));
}

#[test]
fn a_missing_command_is_reported_and_the_agent_keeps_running() {
    let mut child = agent(&["--", "/nonexistent/program"]);
    let err = collect(child.stderr.take().unwrap());
    thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent exited early"
    );
    term(&child);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
    let err = err.join().unwrap();
    assert!(err.contains("cannot run \"/nonexistent/program\""), "{err}");
}

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(AGENT).arg("sh").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}

/// A fresh status directory for one test.
fn status_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "devbox-agent-it-status-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn command_json(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("command.json")).unwrap_or_default()
}

#[test]
fn the_commands_state_is_written_to_the_status_directory() {
    let dir = status_dir("exit");
    let d = dir.to_str().unwrap();
    let mut child = agent(&[
        "--status-dir",
        d,
        "--",
        "sh",
        "-c",
        // Waits (a bounded while) to see itself reported as running.
        &format!(
            "for i in $(seq 200); do grep -q running {d}/command.json 2>/dev/null && break; sleep 0.05; done; \
             cat {d}/command.json > {d}/seen; exit 3"
        ),
    ]);
    wait_for("the command's exit in command.json", || {
        command_json(&dir) == r#"{"state":"exited","code":3}"#
    });
    // While it ran, the command saw itself reported as running.
    assert_eq!(
        std::fs::read_to_string(dir.join("seen")).unwrap(),
        r#"{"state":"running"}"#
    );
    term(&child);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_command_killed_by_a_signal_exits_with_128_plus_it() {
    let dir = status_dir("signal");
    let mut child = agent(&[
        "--status-dir",
        dir.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "kill -9 $$",
    ]);
    wait_for("the command's end in command.json", || {
        command_json(&dir) == r#"{"state":"exited","code":137}"#
    });
    term(&child);
    wait_exit(&mut child, Duration::from_secs(10));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_command_that_cannot_start_is_reported_as_failed() {
    let dir = status_dir("failed");
    let mut child = agent(&[
        "--status-dir",
        dir.to_str().unwrap(),
        "--",
        "/nonexistent/program",
    ]);
    wait_for("the failure in command.json", || {
        !command_json(&dir).is_empty()
    });
    let json = command_json(&dir);
    assert!(
        json.starts_with(r#"{"state":"failed","message":"cannot run \"/nonexistent/program\": "#),
        "{json}"
    );
    term(&child);
    wait_exit(&mut child, Duration::from_secs(10));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_status_directory_is_said_once_and_changes_nothing() {
    let mut child = agent(&[
        "--status-dir",
        "/nonexistent/status",
        "--",
        "sh",
        "-c",
        "exit 0",
    ]);
    let err = collect(child.stderr.take().unwrap());
    thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the agent exited early"
    );
    term(&child);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
    let err = err.join().unwrap();
    assert_eq!(
        err.matches("cannot report the command's state").count(),
        1,
        "{err}"
    );
    assert!(err.contains("command exited with status 0"), "{err}");
}
