//! Runs the agent as an ordinary process (not PID 1): it must run the command,
//! report its end, reap orphans it adopted, and stop cleanly on SIGTERM.

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
