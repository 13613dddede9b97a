//! Starting a login's process: as its user, in its directory, with pipes or
//! on a new pseudo-terminal, and signalling it through a pidfd so a reused
//! PID is never hit.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustix::process::{Pid, PidfdFlags, Signal};
use rustix::termios::Winsize;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use crate::args::Ids;
use crate::sys::{self, Become};

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: OsString,
    /// What the program sees as its name (`-sh` for a login shell).
    pub arg0: Option<OsString>,
    pub args: Vec<OsString>,
    /// The whole environment.
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    pub ids: Ids,
    /// A terminal of this size (rows, columns), or pipes.
    pub pty: Option<(u16, u16)>,
}

/// The streams of a started process.
#[derive(Debug)]
pub enum Streams {
    Pipes {
        stdin: ChildStdin,
        stdout: ChildStdout,
        stderr: ChildStderr,
    },
    Pty(Pty),
}

/// A started process.
#[derive(Debug)]
pub struct Started {
    pub child: Child,
    pub control: Arc<Control>,
    pub streams: Streams,
}

/// Signals and resizes one process from any task.
#[derive(Debug)]
pub struct Control {
    pidfd: OwnedFd,
    pty: Option<Pty>,
}

impl Control {
    /// Delivers `sig`; a process that ended already is not an error.
    pub fn signal(&self, sig: Signal) {
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, sig);
    }

    /// Sets the terminal's size; the kernel tells the terminal's
    /// foreground processes with SIGWINCH.
    pub fn resize(&self, rows: u16, cols: u16) {
        if let Some(pty) = &self.pty {
            let _ = rustix::termios::tcsetwinsize(pty.fd.get_ref(), winsize(rows, cols));
        }
    }
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Opens a pseudo-terminal pair of the given size: the controller,
/// non-blocking, and the replica.
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
    rustix::termios::tcsetwinsize(&controller, winsize(rows, cols))?;
    rustix::io::ioctl_fionbio(&controller, true)?;
    Ok((controller, replica))
}

/// Starts `spec`. The error is the spawn's, whose kind tells a missing
/// program (127) from one that cannot run (126).
pub fn start(spec: &Spec) -> io::Result<Started> {
    let mut cmd = Command::new(&spec.program);
    if let Some(arg0) = &spec.arg0 {
        cmd.arg0(arg0);
    }
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd);
    let controller = match spec.pty {
        Some((rows, cols)) => {
            let (controller, replica) = open_pty(rows, cols)?;
            cmd.stdin(Stdio::from(replica.try_clone()?))
                .stdout(Stdio::from(replica.try_clone()?))
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
    sys::become_in_child(
        cmd.as_std_mut(),
        Become {
            uid: spec.ids.uid,
            gid: spec.ids.gid,
            groups: spec.ids.groups.clone(),
            terminal: spec.pty.is_some(),
        },
    );
    let mut child = cmd.spawn()?;
    // The command (and with it our copies of the replica) goes now, so the
    // controller reads EOF once the process and its children close theirs.
    drop(cmd);
    let pid = child
        .id()
        .and_then(|p| Pid::from_raw(p as i32))
        .ok_or_else(|| io::Error::other("the started process has no PID"))?;
    // Not yet waited for, so the PID still names our child.
    let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty())?;
    let pty = match controller {
        Some(fd) => Some(Pty {
            fd: Arc::new(sys::async_fd(fd)?),
        }),
        None => None,
    };
    let streams = match &pty {
        Some(p) => Streams::Pty(p.clone()),
        None => Streams::Pipes {
            stdin: child.stdin.take().expect("piped"),
            stdout: child.stdout.take().expect("piped"),
            stderr: child.stderr.take().expect("piped"),
        },
    };
    Ok(Started {
        child,
        control: Arc::new(Control { pidfd, pty }),
        streams,
    })
}

/// The exit code a shell reports for a program that could not be started.
pub fn spawn_failure_code(e: &io::Error) -> u32 {
    match e.kind() {
        io::ErrorKind::NotFound => 127,
        _ => 126,
    }
}

/// The controller side of a process's terminal; clones share it.
#[derive(Debug, Clone)]
pub struct Pty {
    fd: Arc<AsyncFd<OwnedFd>>,
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
                // Linux reports EIO once every replica is closed: the end.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
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

/// The SSH name of the signal that ended a process, as RFC 4254 spells it
/// (without `SIG`); `None` for one it has no name for.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGABRT => "ABRT",
        libc::SIGALRM => "ALRM",
        libc::SIGFPE => "FPE",
        libc::SIGHUP => "HUP",
        libc::SIGILL => "ILL",
        libc::SIGINT => "INT",
        libc::SIGKILL => "KILL",
        libc::SIGPIPE => "PIPE",
        libc::SIGQUIT => "QUIT",
        libc::SIGSEGV => "SEGV",
        libc::SIGTERM => "TERM",
        libc::SIGUSR1 => "USR1",
        libc::SIGUSR2 => "USR2",
        libc::SIGWINCH => "WINCH",
        _ => return None,
    })
}

/// The signal an SSH name stands for.
pub fn signal_of(name: &str) -> Option<Signal> {
    let n = match name.trim_start_matches("SIG") {
        "ABRT" => libc::SIGABRT,
        "ALRM" => libc::SIGALRM,
        "FPE" => libc::SIGFPE,
        "HUP" => libc::SIGHUP,
        "ILL" => libc::SIGILL,
        "INT" => libc::SIGINT,
        "KILL" => libc::SIGKILL,
        "PIPE" => libc::SIGPIPE,
        "QUIT" => libc::SIGQUIT,
        "SEGV" => libc::SIGSEGV,
        "TERM" => libc::SIGTERM,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "WINCH" => libc::SIGWINCH,
        _ => return None,
    };
    Signal::from_named_raw(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_round_trip() {
        for n in [libc::SIGTERM, libc::SIGKILL, libc::SIGWINCH, libc::SIGUSR2] {
            let name = signal_name(n).unwrap();
            assert_eq!(signal_of(name).map(|s| s.as_raw()), Some(n), "{name}");
        }
        assert_eq!(signal_of("SIGINT").map(|s| s.as_raw()), Some(libc::SIGINT));
        assert!(signal_of("NOPE").is_none());
        assert!(signal_name(64).is_none());
    }

    #[test]
    fn a_missing_program_is_127_and_an_unrunnable_one_126() {
        assert_eq!(spawn_failure_code(&io::ErrorKind::NotFound.into()), 127);
        assert_eq!(
            spawn_failure_code(&io::ErrorKind::PermissionDenied.into()),
            126
        );
    }
}
