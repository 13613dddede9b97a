//! Shim mode against a stand-in for runc: a shell script that, like
//! `runc run --detach`, starts the bundle's "container" (here the script
//! `<bundle>/init`) in the background, writes its PID to `--pid-file` and
//! exits. The shim must adopt it, copy its output to the capped console
//! log, record how it ended, and leave nothing running.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{AGENT, wait_for};

const FAKE_RUNC: &str = r#"#!/bin/sh
while [ $# -gt 0 ]; do
    case "$1" in
        --log) log="$2"; shift ;;
        --pid-file) pid="$2"; shift ;;
        --bundle) bundle="$2"; shift ;;
    esac
    shift
done
if [ ! -f "$bundle/init" ]; then
    echo '{"level":"error","msg":"no init in the bundle"}' >> "$log"
    exit 1
fi
# Like a container's init, in a process group of its own.
setsid sh "$bundle/init" &
echo $! > "$pid"
"#;

/// A scratch directory with a fake runc and a bundle.
struct Scene {
    dir: PathBuf,
}

impl Scene {
    fn new(name: &str, init: Option<&str>) -> Scene {
        let dir =
            std::env::temp_dir().join(format!("devbox-agent-it-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bundle")).unwrap();
        let runc = dir.join("runc");
        fs::write(&runc, FAKE_RUNC).unwrap();
        fs::set_permissions(&runc, fs::Permissions::from_mode(0o755)).unwrap();
        if let Some(init) = init {
            fs::write(dir.join("bundle/init"), init).unwrap();
        }
        Scene { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn args(&self, console_max: u64) -> Vec<String> {
        let p = |n: &str| self.path(n).to_string_lossy().into_owned();
        vec![
            "shim".into(),
            "--runc".into(),
            p("runc"),
            "--root".into(),
            p("state"),
            "--id".into(),
            "test-devbox".into(),
            "--bundle".into(),
            p("bundle"),
            "--runc-log".into(),
            p("runc.log"),
            "--pid-file".into(),
            p("init.pid"),
            "--console".into(),
            p("console.log"),
            "--console-max".into(),
            console_max.to_string(),
            "--exit-file".into(),
            p("exit.json"),
            "--lock-file".into(),
            p("shim.lock"),
        ]
    }

    /// Runs the starter to its end, as the runtime does.
    fn start(&self, console_max: u64) -> Output {
        Command::new(AGENT)
            .args(self.args(console_max))
            .output()
            .expect("run the shim")
    }

    fn exit_record(&self) -> String {
        let path = self.path("exit.json");
        wait_for("the exit record", || path.exists());
        fs::read_to_string(path).unwrap()
    }

    /// The daemon's PID, from its lock file.
    fn daemon(&self) -> u32 {
        let text = fs::read_to_string(self.path("shim.lock")).unwrap();
        text.trim().parse().expect("a PID in the lock file")
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Whether a process runs (a zombie has ended).
fn alive(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

fn wait_gone(pid: u32) {
    wait_for("the shim to exit", || !alive(pid));
}

#[test]
fn the_shim_records_the_exit_and_the_output_of_its_container() {
    let s = Scene::new(
        "exit",
        Some("echo hello; sleep 0.3; echo oops >&2; exit 7\n"),
    );
    let out = s.start(1 << 20);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    let daemon = s.daemon();
    let record = s.exit_record();
    assert!(
        record.starts_with(r#"{"code":7,"signal":null,"oom_killed":null,"finished_at":"20"#),
        "{record}"
    );
    assert!(record.ends_with("Z\"}"), "{record}");
    wait_gone(daemon);
    assert_eq!(
        fs::read_to_string(s.path("console.log")).unwrap(),
        "hello\noops\n"
    );
    assert!(!s.path("exit.json.tmp").exists());
}

#[test]
fn a_killed_init_is_recorded_as_128_plus_the_signal() {
    let s = Scene::new("kill", Some("exec sleep 100\n"));
    let out = s.start(1 << 20);
    assert!(out.status.success(), "{out:?}");
    let daemon = s.daemon();
    assert!(alive(daemon), "the shim must wait for its container");
    let init: i32 = fs::read_to_string(s.path("init.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The container's init is the shim's child now.
    let stat = fs::read_to_string(format!("/proc/{init}/stat")).unwrap();
    let parent: u32 = stat
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap();
    assert_eq!(parent, daemon);
    let pid = rustix::process::Pid::from_raw(init).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let record = s.exit_record();
    assert!(record.starts_with(r#"{"code":137,"signal":9,"#), "{record}");
    wait_gone(daemon);
}

#[test]
fn a_failing_runc_fails_the_start_with_its_status() {
    let s = Scene::new("fail", None);
    let out = s.start(1 << 20);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let log = fs::read_to_string(s.path("runc.log")).unwrap();
    assert!(log.contains("no init in the bundle"), "{log}");
    wait_gone(s.daemon());
    assert!(!s.path("exit.json").exists());
}

#[test]
fn a_missing_runc_is_reported_by_the_starter() {
    let s = Scene::new("norunc", Some("exit 0\n"));
    fs::remove_file(s.path("runc")).unwrap();
    let out = s.start(1 << 20);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("devbox-agent shim: run ") && err.contains("runc"),
        "{err}"
    );
}

#[test]
fn a_chatty_container_keeps_its_console_within_the_maximum() {
    let s = Scene::new(
        "chatty",
        Some(
            "i=0; while [ $i -lt 3000 ]; do echo \"line $i of the chatty container\"; i=$((i+1)); done; echo last\n",
        ),
    );
    let out = s.start(4096);
    assert!(out.status.success(), "{out:?}");
    let daemon = s.daemon();
    s.exit_record();
    wait_gone(daemon);
    let cur = fs::read_to_string(s.path("console.log")).unwrap();
    let old = fs::read_to_string(s.path("console.log.1")).unwrap();
    assert!(
        cur.len() + old.len() <= 4096,
        "{} + {}",
        old.len(),
        cur.len()
    );
    assert!(cur.ends_with("last\n"), "{cur:?}");
    assert!(old.ends_with("of the chatty container\n"), "{old:?}");
}

#[test]
fn the_shim_leaves_its_starters_session_and_files_behind() {
    let s = Scene::new("detach", Some("exec sleep 100\n"));
    // A descriptor the starter inherits without close-on-exec, as a
    // careless server might leak one.
    let marker = s.path("marker");
    fs::write(&marker, "").unwrap();
    let leaked = rustix::fs::open(
        &marker,
        rustix::fs::OFlags::RDONLY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let out = s.start(1 << 20);
    drop(leaked);
    assert!(out.status.success(), "{out:?}");
    let daemon = s.daemon();
    let fds: Vec<PathBuf> = fs::read_dir(format!("/proc/{daemon}/fd"))
        .unwrap()
        .filter_map(|e| fs::read_link(e.unwrap().path()).ok())
        .collect();
    assert!(
        !fds.contains(&marker),
        "the shim kept a leaked file: {fds:?}"
    );
    for std in 0..3 {
        let target = fs::read_link(format!("/proc/{daemon}/fd/{std}")).unwrap();
        assert_eq!(target, Path::new("/dev/null"), "fd {std}");
    }
    // The session is read from /proc rather than asked of getsid(2): where
    // the test's own session leader lives outside its PID namespace (as in
    // a container), getsid reports 0, which is no PID.
    let (me, _) = session_and_tty("self");
    let (session, tty) = session_and_tty(&daemon.to_string());
    assert_eq!(
        session, daemon as i32,
        "the shim leads a session of its own"
    );
    assert_ne!(session, me);
    assert_eq!(tty, 0, "the shim has no controlling terminal");
    assert_eq!(
        fs::read_link(format!("/proc/{daemon}/cwd")).unwrap(),
        Path::new("/")
    );
    let init: i32 = fs::read_to_string(s.path("init.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = rustix::process::Pid::from_raw(init).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    s.exit_record();
    wait_gone(daemon);
}

/// The session ID and controlling terminal of a process, from the fields of
/// `/proc/PID/stat` after its name: state, ppid, pgrp, session, tty_nr.
fn session_and_tty(pid: &str) -> (i32, i32) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    (fields[3].parse().unwrap(), fields[4].parse().unwrap())
}
