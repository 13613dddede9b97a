//! The init loop: start the command, reap children, stop on request, and
//! report the command's state in `command.json` of the status directory.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};

use crate::args::{Ids, InitArgs, SshArgs};
use crate::record::{CommandStatus, write_atomic};
use crate::status::{describe, shell_code};
use crate::sys::{self, SignalSet};

/// How long the agent waits for the devbox's processes after asking them to
/// terminate. The runtime applies its own grace period and kills the whole
/// devbox after it, so this only bounds a stop the runtime is not watching.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// The shortest and longest wait before the SSH server is started again.
const SSH_RESTART_MIN: Duration = Duration::from_secs(1);
const SSH_RESTART_MAX: Duration = Duration::from_secs(30);

/// An SSH server that ran this long is taken to have worked, and the next
/// restart waits the shortest time again.
const SSH_HEALTHY: Duration = Duration::from_secs(10);

/// The SSH server process: started, watched, and started again when it
/// ends, waiting longer each time it ends soon after its start.
#[derive(Debug)]
struct SshServer {
    args: SshArgs,
    pid: Option<Pid>,
    started: Instant,
    next_start: Instant,
    backoff: Duration,
}

impl SshServer {
    fn new(mut args: SshArgs, status_dir: &Path) -> Self {
        args.status_dir = Some(status_dir.to_owned());
        let now = Instant::now();
        SshServer {
            args,
            pid: None,
            started: now,
            next_start: now,
            backoff: SSH_RESTART_MIN,
        }
    }

    /// Starts the server when it is due.
    fn ensure(&mut self) {
        let now = Instant::now();
        if self.pid.is_some() || now < self.next_start {
            return;
        }
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg0("devbox-agent")
            .arg("ssh")
            .arg("--listen")
            .arg(self.args.listen.to_string())
            .arg("--keys")
            .arg(&self.args.keys);
        if let Some(dir) = &self.args.status_dir {
            cmd.arg("--status-dir").arg(dir);
        }
        cmd.process_group(0);
        sys::unblock_signals_in_child(&mut cmd);
        self.started = now;
        match cmd.spawn() {
            Ok(child) => self.pid = Some(Pid::from_child(&child)),
            Err(e) => {
                eprintln!("devbox-agent: cannot start the SSH server: {e}");
                self.ended(now);
            }
        }
    }

    /// Notes that the server ended (or did not start) and when to start it
    /// again.
    fn ended(&mut self, now: Instant) {
        self.pid = None;
        if now.duration_since(self.started) >= SSH_HEALTHY {
            self.backoff = SSH_RESTART_MIN;
        }
        self.next_start = now + self.backoff;
        self.backoff = (self.backoff * 2).min(SSH_RESTART_MAX);
    }
}

/// Where the startup command's state is written, for the runtime to read.
#[derive(Debug)]
struct StatusFile {
    path: PathBuf,
    warned: bool,
}

impl StatusFile {
    fn new(dir: &Path) -> Self {
        StatusFile {
            path: dir.join("command.json"),
            warned: false,
        }
    }

    /// Writes `status`; a failure is said once on the console, and never
    /// stops the agent: the devbox works without its status.
    fn write(&mut self, status: &CommandStatus) {
        if let Err(e) = write_atomic(&self.path, &status.to_json())
            && !self.warned
        {
            eprintln!(
                "devbox-agent: cannot report the command's state in {}: {e}",
                self.path.display()
            );
            self.warned = true;
        }
    }
}

/// Runs until SIGTERM or SIGINT, then stops the devbox's processes.
pub fn run(args: InitArgs) -> io::Result<()> {
    let signals = SignalSet::new(&[libc::SIGTERM, libc::SIGINT, libc::SIGCHLD])?;
    signals.block()?;
    let pid1 = rustix::process::getpid().is_init();
    if !pid1 {
        // Outside a PID namespace (when run by hand or in tests) the agent
        // still adopts the orphans of its command, so it reaps them as PID 1
        // would.
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    }
    let mut status = StatusFile::new(&args.status_dir);
    let mut ssh = args.ssh.map(|a| SshServer::new(a, &args.status_dir));
    let mut child = args
        .command
        .and_then(|c| spawn(&c, args.user.as_ref(), &mut status));
    loop {
        if let Some(ssh) = ssh.as_mut() {
            ssh.ensure();
        }
        match signals.wait(Duration::from_secs(1)) {
            Some(sig) if sig == libc::SIGTERM || sig == libc::SIGINT => {
                eprintln!("devbox-agent: stopping");
                if !pid1 && let Some(pid) = ssh.as_ref().and_then(|s| s.pid) {
                    // As PID 1 the signal to every process reaches it too.
                    let _ = rustix::process::kill_process(pid, Signal::TERM);
                }
                stop(&signals, pid1, &mut child, &mut status);
                return Ok(());
            }
            // SIGCHLD, or a timeout: reaping on a timer too means a child that
            // ends while the previous SIGCHLD is still pending is never missed.
            _ => {
                reap(&mut child, &mut status, ssh.as_mut());
            }
        }
    }
}

/// Starts the startup command in its own process group, with the agent's
/// standard streams and environment.
fn spawn(command: &[OsString], user: Option<&Ids>, status: &mut StatusFile) -> Option<Pid> {
    let (program, args) = command.split_first()?;
    let mut cmd = Command::new(program);
    cmd.args(args).process_group(0);
    match user {
        Some(ids) => sys::become_in_child(
            &mut cmd,
            sys::Become {
                uid: ids.uid,
                gid: ids.gid,
                groups: ids.groups.clone(),
                terminal: false,
            },
        ),
        None => sys::unblock_signals_in_child(&mut cmd),
    }
    match cmd.spawn() {
        Ok(child) => {
            status.write(&CommandStatus::Running);
            Some(Pid::from_child(&child))
        }
        Err(e) => {
            let message = format!("cannot run {program:?}: {e}");
            eprintln!("devbox-agent: {message}");
            status.write(&CommandStatus::Failed { message });
            None
        }
    }
}

/// Collects every child that has ended, reporting the startup command's end
/// and noting the SSH server's.
fn reap(child: &mut Option<Pid>, status: &mut StatusFile, mut ssh: Option<&mut SshServer>) -> bool {
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, ended))) => {
                if let Some(ssh) = ssh.as_deref_mut()
                    && ssh.pid == Some(pid)
                {
                    eprintln!(
                        "devbox-agent: the SSH server {}; starting it again",
                        describe(ended.as_raw())
                    );
                    ssh.ended(Instant::now());
                }
                if Some(pid) == *child {
                    let raw = ended.as_raw();
                    eprintln!("devbox-agent: command {}", describe(raw));
                    let (code, _) = shell_code(raw);
                    status.write(&CommandStatus::Exited { code });
                    *child = None;
                }
            }
            // Some children remain, none has ended yet.
            Ok(None) => return true,
            // ECHILD: no children at all.
            Err(_) => return false,
        }
    }
}

/// Asks the devbox's processes to terminate and waits until they are gone or
/// [`STOP_WAIT`] has passed.
fn stop(signals: &SignalSet, pid1: bool, child: &mut Option<Pid>, status: &mut StatusFile) {
    let sent = if pid1 {
        sys::kill_all(libc::SIGTERM)
    } else if let Some(pid) = *child {
        // Not PID 1: signal only the command's process group, never every
        // process of the machine.
        rustix::process::kill_process_group(pid, Signal::TERM).map_err(io::Error::from)
    } else {
        Ok(())
    };
    if let Err(e) = sent
        && e.raw_os_error() != Some(libc::ESRCH)
    {
        eprintln!("devbox-agent: cannot signal processes: {e}");
    }
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline {
        let has_children = reap(child, status, None);
        let others = if pid1 {
            others_alive().unwrap_or(has_children)
        } else {
            has_children
        };
        if !others {
            return;
        }
        signals.wait(Duration::from_millis(50));
    }
    eprintln!("devbox-agent: processes still running after {STOP_WAIT:?}; exiting");
}

/// Whether any process other than the agent exists in the PID namespace.
/// Processes started by `runc exec` are not the agent's children, so waiting
/// for children alone would not see them.
fn others_alive() -> io::Result<bool> {
    for entry in std::fs::read_dir("/proc")? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name != "1" && name.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(true);
        }
    }
    Ok(false)
}
