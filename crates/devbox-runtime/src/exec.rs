//! A process started in a devbox with `runc exec`, and its terminal.
//!
//! runc runs in the foreground for the whole life of the process: it
//! forwards the signals it receives to the process and exits with the
//! process's status (128 + n when a signal n killed it). With a terminal,
//! runc needs one on its own side too: the runtime opens a pseudo-terminal
//! pair, hands the replica to runc as its standard streams, and keeps the
//! controller as the [`Pty`]. runc copies between that terminal and the one
//! it allocates inside the devbox, and on SIGWINCH copies the window size
//! across, which is how a resize reaches the process.
//!
//! Signals reach the process through a pidfd, never by a PID that may have
//! been reused: runc makes itself the subreaper of the process it starts,
//! so the process is runc's child, and runc is this runtime's own child,
//! which it has not reaped. A pidfd opened for the PID in runc's pid file
//! is checked to belong to a child of that runc; only then is it used.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use async_trait::async_trait;

use devbox_model::DevboxId;
use rustix::process::{Pid, PidfdFlags};
use rustix::termios::{OptionalActions, Winsize};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{Child, Command};

use crate::error::RuntimeError;
use crate::runtime::{ExecControl, ExecReader, ExecSession, ExecWriter};
use devbox_model::Signal;

/// A running exec.
pub struct ExecProcess {
    id: DevboxId,
    child: Child,
    control: Arc<Control>,
    stdin: Option<ExecWriter>,
    stdout: Option<ExecReader>,
    stderr: Option<ExecReader>,
    process_file: PathBuf,
    code: Option<i32>,
}

/// The controller side of an exec's terminal: read the process's output,
/// write its input. Non-blocking, driven by tokio; clones share the
/// terminal, so one task can read while another writes.
#[derive(Debug, Clone)]
pub(crate) struct Pty {
    fd: Arc<AsyncFd<OwnedFd>>,
}

/// Signals and resizes one exec.
#[derive(Debug)]
struct Control {
    id: DevboxId,
    /// A pidfd of the runc process: it stays valid while tokio has not
    /// reaped runc, and never names another process.
    runc: Arc<OwnedFd>,
    runc_pid: i32,
    /// Where runc writes the PID of the process it started.
    pid_file: PathBuf,
    /// The process's own pidfd, once known and checked.
    process: OnceLock<OwnedFd>,
    pty: Option<Pty>,
}

fn exec_err<'a>(id: &'a DevboxId, op: &'static str) -> impl FnOnce(io::Error) -> RuntimeError + 'a {
    move |source| RuntimeError::Exec {
        id: id.clone(),
        op,
        source,
    }
}

/// Opens a pseudo-terminal pair of the given size: the controller,
/// non-blocking, and the replica, in raw mode (runc sets raw mode too, but
/// only once it runs; input written before must not be echoed or
/// translated by this outer terminal).
fn open_pty(rows: u16, cols: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&controller)?;
    unlockpt(&controller)?;
    let name = ptsname(&controller, Vec::new())?;
    let replica = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut attrs = rustix::termios::tcgetattr(&replica)?;
    attrs.make_raw();
    rustix::termios::tcsetattr(&replica, OptionalActions::Now, &attrs)?;
    rustix::termios::tcsetwinsize(&controller, winsize(rows, cols))?;
    rustix::io::ioctl_fionbio(&controller, true)?;
    Ok((controller, replica))
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// The parent PID of `pid`, from `/proc/<pid>/status`.
fn parent_of(pid: i32) -> Option<i32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess")
            .field("id", &self.id)
            .field("child", &self.child)
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

impl ExecProcess {
    /// Spawns `cmd` (a `runc exec`), on a new terminal when `tty` is given.
    pub(crate) fn spawn(
        id: &DevboxId,
        mut cmd: Command,
        tty: Option<(u16, u16)>,
        process_file: PathBuf,
        pid_file: PathBuf,
    ) -> Result<Self, RuntimeError> {
        let controller = match tty {
            Some((rows, cols)) => {
                let (controller, replica) =
                    open_pty(rows, cols).map_err(|source| RuntimeError::Pty {
                        id: id.clone(),
                        source,
                    })?;
                let dup = |fd: &OwnedFd| {
                    fd.try_clone().map_err(|source| RuntimeError::Pty {
                        id: id.clone(),
                        source,
                    })
                };
                cmd.stdin(Stdio::from(dup(&replica)?))
                    .stdout(Stdio::from(dup(&replica)?))
                    .stderr(Stdio::from(replica));
                Some(controller)
            }
            None => {
                cmd.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                None
            }
        };
        // The command, and with it this process's copies of the replica, is
        // dropped once spawned: the controller then reads EOF (EIO) as soon
        // as runc exits.
        let mut child = cmd.spawn().map_err(exec_err(id, "run runc exec"))?;
        let runc_pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .expect("a child that was not waited for has a pid");
        // The child has not been waited for, so the PID is still runc's.
        let runc = Arc::new(
            rustix::process::pidfd_open(
                Pid::from_raw(runc_pid).expect("a child's pid is positive"),
                PidfdFlags::empty(),
            )
            .map_err(|e| exec_err(id, "open a pidfd for runc exec")(e.into()))?,
        );
        let pty = match controller {
            Some(fd) => Some(Pty {
                fd: Arc::new(
                    crate::sys::async_fd(fd).map_err(exec_err(id, "register the terminal"))?,
                ),
            }),
            None => None,
        };
        let (stdin, stdout, stderr): (Option<ExecWriter>, Option<ExecReader>, Option<ExecReader>) =
            match &pty {
                Some(p) => (Some(Box::new(p.clone())), Some(Box::new(p.clone())), None),
                None => (
                    child.stdin.take().map(|w| Box::new(w) as ExecWriter),
                    child.stdout.take().map(|r| Box::new(r) as ExecReader),
                    child.stderr.take().map(|r| Box::new(r) as ExecReader),
                ),
            };
        Ok(Self {
            id: id.clone(),
            child,
            control: Arc::new(Control {
                id: id.clone(),
                runc,
                runc_pid,
                pid_file,
                process: OnceLock::new(),
                pty,
            }),
            stdin,
            stdout,
            stderr,
            process_file,
            code: None,
        })
    }

    fn clean_files(&self) {
        let _ = fs::remove_file(&self.process_file);
        let _ = fs::remove_file(&self.control.pid_file);
        let _ = fs::remove_file(crate::runc::exec_log_path(&self.control.pid_file));
    }
}

#[async_trait]
impl ExecSession for ExecProcess {
    fn take_stdin(&mut self) -> Option<ExecWriter> {
        self.stdin.take()
    }

    fn take_stdout(&mut self) -> Option<ExecReader> {
        self.stdout.take()
    }

    fn take_stderr(&mut self) -> Option<ExecReader> {
        self.stderr.take()
    }

    fn control(&self) -> Arc<dyn ExecControl> {
        self.control.clone()
    }

    async fn wait(&mut self) -> Result<i32, RuntimeError> {
        if let Some(code) = self.code {
            return Ok(code);
        }
        let status = self
            .child
            .wait()
            .await
            .map_err(exec_err(&self.id, "wait for runc exec"))?;
        let mut code = exit_code(status);
        // runc exits 255 when it could not start the program at all; its log
        // tells that apart from a program that exited 255 itself.
        if code == 255 {
            let log = fs::read_to_string(crate::runc::exec_log_path(&self.control.pid_file))
                .unwrap_or_default();
            if let Some((mapped, message)) = crate::runc::exec_failure_code(&log) {
                tracing::debug!(devbox = %self.id, "exec failed to start: {message}");
                code = mapped;
            }
        }
        self.code = Some(code);
        self.clean_files();
        Ok(code)
    }
}

/// The exit code of a finished process, shell style.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

impl Drop for ExecProcess {
    /// An exec dropped before it ended is killed: nobody reads its output
    /// any more. runc itself then exits and tokio reaps it.
    fn drop(&mut self) {
        if self.code.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.control.signal(Signal::Kill);
        }
        self.clean_files();
    }
}

impl Control {
    /// The process's pidfd: opened for the PID runc recorded, and kept only
    /// if that PID is a child of our (unreaped) runc, so it is the process
    /// runc started and not one that reused a PID.
    fn process(&self) -> Option<&OwnedFd> {
        if let Some(fd) = self.process.get() {
            return Some(fd);
        }
        let pid = fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()?;
        let fd = rustix::process::pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
        // Checked after opening: from now on the pidfd names one process
        // whatever happens to the PID, and at the time of the check that
        // process was runc's child.
        if parent_of(pid) != Some(self.runc_pid) {
            return None;
        }
        Some(self.process.get_or_init(|| fd))
    }

    fn send(&self, fd: &OwnedFd, sig: rustix::process::Signal) -> Result<(), RuntimeError> {
        match rustix::process::pidfd_send_signal(fd, sig) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(exec_err(&self.id, "signal the exec")(e.into())),
        }
    }
}

impl ExecControl for Control {
    fn signal(&self, sig: Signal) -> Result<(), RuntimeError> {
        if sig == Signal::Kill {
            // runc cannot forward SIGKILL, which it cannot catch: kill the
            // process itself. Killing runc as well ends the exec at once
            // when the process is not yet known.
            if let Some(fd) = self.process() {
                return self.send(fd, rustix::process::Signal::KILL);
            }
        }
        self.send(&self.runc, crate::runtime::to_rustix(sig))
    }

    fn resize(&self, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        let Some(pty) = &self.pty else {
            return Ok(());
        };
        rustix::termios::tcsetwinsize(pty.fd.get_ref(), winsize(rows, cols))
            .map_err(|e| exec_err(&self.id, "resize the terminal")(e.into()))?;
        // The outer terminal is not runc's controlling terminal, so the
        // kernel does not notify runc; it copies the size inward on SIGWINCH.
        self.send(&self.runc, rustix::process::Signal::WINCH)
    }
}

impl AsyncRead for Pty {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                rustix::io::read(fd.get_ref().as_fd(), &mut *unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Once every replica is closed (runc exited), Linux reports
                // EIO: that is the end of the stream.
                Ok(Err(e)) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Pty {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard
                .try_io(|fd| rustix::io::write(fd.get_ref().as_fd(), data).map_err(io::Error::from))
            {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    }

    #[tokio::test]
    async fn a_pty_carries_bytes_both_ways_and_has_its_size() {
        let (controller, replica) = open_pty(24, 80).unwrap();
        let size = rustix::termios::tcgetwinsize(&replica).unwrap();
        assert_eq!((size.ws_row, size.ws_col), (24, 80));
        let mut pty = Pty {
            fd: Arc::new(crate::sys::async_fd(controller).unwrap()),
        };
        pty.write_all(b"ping\n").await.unwrap();
        let mut got = [0u8; 5];
        let mut r = fs::File::from(replica.try_clone().unwrap());
        io::Read::read_exact(&mut r, &mut got).unwrap();
        // Raw mode: no echo, no translation.
        assert_eq!(&got, b"ping\n");
        io::Write::write_all(&mut r, b"pong").unwrap();
        let mut back = [0u8; 4];
        pty.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"pong");
        drop(r);
        drop(replica);
        let mut rest = Vec::new();
        pty.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "EIO after the replica closed reads as EOF");
    }
}
