//! Shim mode: the host process that is the parent of a devbox's init.
//!
//! `runc run --detach` leaves the container's init without a parent that
//! waits for it, so nobody would learn how it ended, and its output would go
//! to whatever file runc was given. The shim fills that role, as
//! containerd's shim and podman's conmon do:
//!
//! 1. The process the runtime starts (the *starter*) forks the shim daemon
//!    and waits for one report line from it.
//! 2. The daemon leaves the runtime behind (new session, no controlling
//!    terminal, standard streams on `/dev/null`, working directory `/`, no
//!    inherited descriptors), becomes a child subreaper, and runs
//!    `runc run --detach` with a pipe as the container's output. When runc
//!    returns, the container's init has been re-parented to the daemon.
//! 3. The daemon reports runc's exit status; the starter exits with it, so
//!    the runtime's call fails exactly when runc failed, and only once the
//!    daemon knows.
//! 4. The daemon copies the pipe into the rotated console log until the
//!    init exits, writes the exit record, drains what the dying container
//!    still wrote (at most [`DRAIN`]), and exits.
//!
//! While it lives, the daemon holds an exclusive lock on its lock file (with
//! its PID inside), so the runtime can tell when it is gone.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Pid, PidfdFlags, WaitOptions, pidfd_open, wait};

use crate::args::ShimArgs;
use crate::console::Console;
use crate::oom::OomWatch;
use crate::record::{ExitRecord, write_atomic};
use crate::status::shell_code;
use crate::sys::{self, Forked};

/// How long the shim goes on reading the container's output after its init
/// exited. The kernel kills every process of the devbox's PID namespace
/// with it, so the pipe normally ends at once; this bounds the wait for a
/// writer that escaped the namespace.
const DRAIN: Duration = Duration::from_secs(2);

/// The starter's exit code when the shim itself failed, as `runc` and
/// `docker` use for errors of the runtime rather than of the container.
const SHIM_FAILED: i32 = 125;

/// What the daemon tells the starter.
#[derive(Debug, PartialEq, Eq)]
enum Report {
    /// runc exited with this code.
    Status(i32),
    /// The shim could not run runc; the message says why.
    Error(String),
}

impl Report {
    fn line(&self) -> String {
        match self {
            Report::Status(code) => format!("status {code}\n"),
            Report::Error(message) => format!("error {}\n", message.replace('\n', " ")),
        }
    }

    fn parse(text: &str) -> Option<Report> {
        let line = text.strip_suffix('\n')?;
        if let Some(code) = line.strip_prefix("status ") {
            return code.parse().ok().map(Report::Status);
        }
        line.strip_prefix("error ")
            .map(|m| Report::Error(m.to_owned()))
    }
}

/// Runs shim mode and returns the starter's exit code. The daemon never
/// returns from here.
pub fn run(args: &ShimArgs) -> i32 {
    if let Err(e) = sys::close_inherited() {
        eprintln!("devbox-agent shim: close inherited files: {e}");
        return SHIM_FAILED;
    }
    let (report_r, report_w) = match pipe_with(PipeFlags::CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("devbox-agent shim: create a pipe: {e}");
            return SHIM_FAILED;
        }
    };
    match sys::fork() {
        Err(e) => {
            eprintln!("devbox-agent shim: fork: {e}");
            SHIM_FAILED
        }
        Ok(Forked::Parent) => {
            drop(report_w);
            starter(report_r)
        }
        Ok(Forked::Child) => {
            drop(report_r);
            daemon(args, File::from(report_w));
            std::process::exit(0);
        }
    }
}

/// Waits for the daemon's report and turns it into the exit code.
fn starter(report: OwnedFd) -> i32 {
    let mut text = String::new();
    // End of file comes when the daemon has written its report, or died.
    let _ = File::from(report).read_to_string(&mut text);
    match Report::parse(&text) {
        Some(Report::Status(code)) => code,
        Some(Report::Error(message)) => {
            eprintln!("devbox-agent shim: {message}");
            SHIM_FAILED
        }
        None => {
            eprintln!("devbox-agent shim: the shim ended before it started the container");
            SHIM_FAILED
        }
    }
}

/// An error of the daemon, with what it was doing.
fn ctx(what: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> String {
    move |e| format!("{}: {e}", what())
}

fn daemon(args: &ShimArgs, mut report: File) {
    let supervisor = match start(args) {
        Ok((code, supervisor)) => {
            let _ = report.write_all(Report::Status(code).line().as_bytes());
            supervisor
        }
        Err(message) => {
            let _ = report.write_all(Report::Error(message).line().as_bytes());
            return;
        }
    };
    // The starter exits now; nothing of the runtime is left open here.
    drop(report);
    if let Some(s) = supervisor {
        s.supervise(args);
    }
}

/// Detaches from the starter's session, streams and directory.
fn detach() -> Result<(), String> {
    rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
    rustix::process::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(ctx(|| "open /dev/null".into()))?;
    rustix::stdio::dup2_stdin(&null).map_err(|e| format!("redirect stdin: {e}"))?;
    rustix::stdio::dup2_stdout(&null).map_err(|e| format!("redirect stdout: {e}"))?;
    rustix::stdio::dup2_stderr(&null).map_err(|e| format!("redirect stderr: {e}"))?;
    Ok(())
}

/// Takes the lock that says this devbox has a live shim, and writes the
/// shim's PID into it.
fn lock(args: &ShimArgs) -> Result<File, String> {
    let path = &args.lock_file;
    let mut f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(ctx(|| format!("open {}", path.display())))?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => {
            let mut owner = String::new();
            let _ = f.read_to_string(&mut owner);
            return Err(format!(
                "devbox {} already has a shim (pid {})",
                args.id,
                owner.trim()
            ));
        }
        Err(e) => return Err(format!("lock {}: {e}", path.display())),
    }
    f.set_len(0)
        .and_then(|()| writeln!(f, "{}", std::process::id()))
        .map_err(ctx(|| format!("write {}", path.display())))?;
    Ok(f)
}

/// Everything the daemon watches once the container runs.
#[derive(Debug)]
struct Supervisor {
    /// Held for the daemon's life.
    _lock: File,
    console: Console,
    output: OwnedFd,
    init: Pid,
    init_fd: OwnedFd,
    oom: OomWatch,
}

/// Runs runc; returns its exit code and, when it started the container, what
/// to supervise.
fn start(args: &ShimArgs) -> Result<(i32, Option<Supervisor>), String> {
    detach()?;
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| format!("become a child subreaper: {e}"))?;
    let lock = lock(args)?;
    let console = Console::open(&args.console, args.console_max)
        .map_err(ctx(|| format!("open {}", args.console.display())))?;
    let (output, input) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| format!("create the output pipe: {e}"))?;
    let input2 = input
        .try_clone()
        .map_err(ctx(|| "duplicate the output pipe".into()))?;
    let mut cmd = Command::new(&args.runc);
    cmd.arg("--root")
        .arg(&args.root)
        .arg("--log")
        .arg(&args.runc_log)
        .args(["--log-format", "json", "run", "--detach", "--pid-file"])
        .arg(&args.pid_file)
        .arg("--bundle")
        .arg(&args.bundle)
        .arg(&args.id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(input))
        .stderr(Stdio::from(input2));
    let status = cmd
        .status()
        .map_err(ctx(|| format!("run {}", args.runc.display())))?;
    // Our copies of the pipe's write end go with the command, so the pipe
    // ends when the container's last writer does.
    drop(cmd);
    let code = shell_code(std::os::unix::process::ExitStatusExt::into_raw(status)).0;
    if code != 0 {
        return Ok((code, None));
    }
    let init = read_pid(&args.pid_file)?;
    // The init is our child now (runc exited, and we are the subreaper),
    // and stays a zombie until we reap it, so its PID cannot be reused.
    let init_fd = pidfd_open(init, PidfdFlags::empty())
        .map_err(|e| format!("open a pidfd for the container's init {init:?}: {e}"))?;
    Ok((
        0,
        Some(Supervisor {
            _lock: lock,
            console,
            output,
            init,
            init_fd,
            oom: OomWatch::new(args.oom_file.clone(), Instant::now()),
        }),
    ))
}

fn read_pid(path: &Path) -> Result<Pid, String> {
    let text = std::fs::read_to_string(path).map_err(ctx(|| format!("read {}", path.display())))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| format!("{} holds no PID: {text:?}", path.display()))
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

impl Supervisor {
    /// Collects every child that ended; returns the init's wait status once
    /// it ended. Other children are orphans runc left behind.
    fn reap(&self) -> Option<i32> {
        let mut init = None;
        // Any child: the container's init leads a process group of its own.
        while let Ok(Some((pid, status))) = wait(WaitOptions::NOHANG) {
            if pid == self.init {
                init = Some(status.as_raw());
            }
        }
        init
    }

    /// Copies one read of the output to the log; `false` at its end.
    fn copy(&mut self, buf: &mut [u8]) -> bool {
        match rustix::io::read(&self.output, &mut *buf) {
            Ok(0) => false,
            Ok(n) => {
                // A log that cannot be written loses this output; the
                // container must not block on it.
                let _ = self.console.write(&buf[..n]);
                true
            }
            Err(Errno::INTR | Errno::AGAIN) => true,
            Err(_) => false,
        }
    }

    fn supervise(mut self, args: &ShimArgs) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut open = true;
        let status = loop {
            let (init_ended, readable) = {
                let mut fds = vec![PollFd::new(&self.init_fd, PollFlags::IN)];
                if open {
                    fds.push(PollFd::new(&self.output, PollFlags::IN));
                }
                match poll(&mut fds, Some(&timespec(Duration::from_secs(1)))) {
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
                (
                    !fds[0].revents().is_empty(),
                    open && !fds[1].revents().is_empty(),
                )
            };
            if readable {
                open = self.copy(&mut buf);
            }
            self.oom.sample(Instant::now());
            if let Some(status) = self.reap() {
                break status;
            }
            if init_ended {
                // Readable but not reapable: another reaper took it, which
                // cannot happen while we are its parent. Do not spin.
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        let finished_at = SystemTime::now();
        let (code, signal) = shell_code(status);
        let record = ExitRecord {
            code,
            signal,
            oom_killed: self.oom.killed(signal, Instant::now()),
            finished_at,
        };
        // Nobody could be told of a failure here; the runtime sees no record.
        let _ = write_atomic(&args.exit_file, &record.to_json());
        if open {
            self.drain(&mut buf);
        }
    }

    fn drain(&mut self, buf: &mut [u8]) {
        let deadline = Instant::now() + DRAIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let mut fds = [PollFd::new(&self.output, PollFlags::IN)];
            match poll(&mut fds, Some(&timespec(left))) {
                Ok(0) => return,
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(_) => return,
            }
            if !self.copy(buf) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_garbage_is_none() {
        for r in [
            Report::Status(0),
            Report::Status(1),
            Report::Error("run runc: No such file or directory".into()),
        ] {
            assert_eq!(Report::parse(&r.line()), Some(r));
        }
        // A message never spans lines, so the starter reads all of it.
        let multi = Report::Error("a\nb".into()).line();
        assert_eq!(Report::parse(&multi), Some(Report::Error("a b".into())));
        assert_eq!(Report::parse(""), None);
        assert_eq!(Report::parse("status \n"), None);
        assert_eq!(Report::parse("status 0"), None);
        assert_eq!(Report::parse("hello\n"), None);
    }
}
