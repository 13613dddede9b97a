//! `exec` over the WebSocket: streams, control messages, signals, exit codes.

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::Stdio;

use rustix::termios::{LocalModes, Winsize, tcgetattr, tcsetwinsize};

use devbox_model::api::ExecClientMsg;

use crate::cli::{Cli, finish};
use crate::fake::{Fake, TOKEN};

fn setup() -> (Fake, Cli) {
    let fake = Fake::start();
    let cli = Cli::new(&fake.url, Some(TOKEN));
    (fake, cli)
}

#[test]
fn stdin_is_forwarded_and_the_exit_code_returned() {
    let (fake, cli) = setup();
    let run = cli.run_with_stdin(&["exec", "-i", "web", "--", "cat"], b"hello\nworld\n");
    run.expect(7);
    assert_eq!(run.stdout, "hello\nworld\n");
    assert_eq!(run.stderr, "bye\n");
    let seen = fake.seen();
    assert_eq!(seen.exec_stdin, b"hello\nworld\n");
    assert!(
        matches!(
            &seen.exec_control[..],
            [ExecClientMsg::Start { cmd, tty: false, .. }, ExecClientMsg::Eof] if cmd == &["cat"]
        ),
        "{:?}",
        seen.exec_control
    );
}

#[test]
fn the_start_message_carries_the_flags() {
    let (_fake, cli) = setup();
    let run = cli.run(&[
        "exec", "-t", "-e", "A=1", "-w", "/tmp", "web", "--", "start", "-x", "--y",
    ]);
    run.expect(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "type": "start", "cmd": ["start", "-x", "--y"], "env": ["A=1"],
            "workdir": "/tmp", "tty": true, "rows": null, "cols": null,
        })
    );
}

#[test]
fn signals_are_forwarded_without_a_terminal() {
    let (fake, cli) = setup();
    let mut child = cli
        .command(&["exec", "web", "--", "wait-signal"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let run = finish(child.wait_with_output().unwrap());
    run.expect(130);
    assert_eq!(rest, "got INT\n");
    assert!(
        fake.seen()
            .exec_control
            .iter()
            .any(|m| matches!(m, ExecClientMsg::Signal { signal } if signal == "INT"))
    );
}

#[test]
fn a_command_that_cannot_run_exits_125() {
    let (_fake, cli) = setup();
    let run = cli.run(&["exec", "web", "--", "broken"]);
    run.expect(125);
    assert_eq!(run.stderr, "error: devbox \"web\" is not running\n");
    let run = cli.run(&["exec", "web", "--", "vanish"]);
    run.expect(125);
    assert!(
        run.stderr.contains("closed before the command exited"),
        "{}",
        run.stderr
    );
    let run = cli.run(&["exec", "nope", "--", "true"]);
    run.expect(125);
    assert_eq!(run.stderr, "error: devbox \"nope\" not found\n");
}

/// A pseudo-terminal pair: the controller side and the terminal side.
pub fn pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)
        .expect("open /dev/ptmx: a pseudo-terminal is needed for this test");
    grantpt(&controller).unwrap();
    unlockpt(&controller).unwrap();
    let name = ptsname(&controller, Vec::new()).unwrap();
    let term = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    set_size(&term, rows, cols);
    (controller, term)
}

fn set_size(term: &OwnedFd, rows: u16, cols: u16) {
    let size = Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    tcsetwinsize(term, size).unwrap();
}

fn echo_on(term: &OwnedFd) -> bool {
    tcgetattr(term)
        .unwrap()
        .local_modes
        .contains(LocalModes::ECHO)
}

#[test]
fn a_terminal_is_raw_during_exec_and_resizes_are_sent() {
    let (fake, cli) = setup();
    let (_controller, term) = pty(30, 100);
    assert!(echo_on(&term));
    let mut child = cli
        .command(&["exec", "-it", "web", "--", "resize"])
        .stdin(Stdio::from(term.try_clone().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "size Some(30) Some(100)\n");
    assert!(
        !echo_on(&term),
        "the terminal is not in raw mode during exec"
    );
    set_size(&term, 50, 120);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::WINCH,
    )
    .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let run = finish(child.wait_with_output().unwrap());
    run.expect(0);
    assert_eq!(rest, "resized 50 120\n");
    assert!(echo_on(&term), "the terminal was left in raw mode");
    let seen = fake.seen();
    assert!(matches!(
        seen.exec_control[0],
        ExecClientMsg::Start {
            tty: true,
            rows: Some(30),
            cols: Some(100),
            ..
        }
    ));
}

#[test]
fn a_failed_exec_restores_the_terminal() {
    let (_fake, cli) = setup();
    let (_controller, term) = pty(24, 80);
    let out = cli
        .command(&["exec", "-it", "web", "--", "broken"])
        .stdin(Stdio::from(term.try_clone().unwrap()))
        .output()
        .unwrap();
    let run = finish(out);
    run.expect(125);
    assert!(echo_on(&term), "the terminal was left in raw mode");
}

/// Waits until the fake has recorded `n` control messages of the session.
fn wait_for_control(fake: &Fake, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fake.seen().exec_control.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "the fake saw only {:?}",
            fake.seen().exec_control
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn interrupt(child: &std::process::Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::INT,
    )
    .unwrap();
}

#[test]
fn a_second_interrupt_ends_exec_when_the_server_does_not_answer() {
    let (fake, cli) = setup();
    let child = cli
        .command(&["exec", "web", "--", "hang"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Start and end of input arrive first; the signal handlers are in by then.
    wait_for_control(&fake, 2);
    interrupt(&child);
    // The first interrupt is forwarded as always.
    wait_for_control(&fake, 3);
    assert!(
        matches!(&fake.seen().exec_control[2], ExecClientMsg::Signal { signal } if signal == "INT"),
        "{:?}",
        fake.seen().exec_control
    );
    interrupt(&child);
    let run = finish(child.wait_with_output().unwrap());
    run.expect(130);
    assert_eq!(
        run.stderr,
        "note: interrupted twice without an answer from the server; leaving \
         (the command may still run in web)\n"
    );
    assert_eq!(
        fake.seen().exec_control.len(),
        3,
        "the second one is not sent"
    );
}
