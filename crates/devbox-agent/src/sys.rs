//! The system calls the agent needs that `rustix` does not offer safely:
//! blocking signals and waiting for them synchronously, signalling every
//! process of the devbox, and, for shim mode, forking and closing inherited
//! descriptors. Each is a thin wrapper around one libc call.
//!
//! Waiting synchronously (instead of installing handlers) keeps PID 1 simple:
//! a blocked signal stays pending until `sigtimedwait` collects it, so none is
//! lost between two loop iterations, and no code runs in signal context.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

/// A set of signals that can be blocked and waited for.
pub struct SignalSet(libc::sigset_t);

impl std::fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalSet")
    }
}

impl SignalSet {
    #[allow(unsafe_code)]
    pub fn new(signals: &[i32]) -> io::Result<Self> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `sigemptyset` initialises the set behind the pointer, which
        // points to writable memory of the right type.
        if unsafe { libc::sigemptyset(set.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `sigemptyset` succeeded, so the set is initialised.
        let mut set = unsafe { set.assume_init() };
        for &sig in signals {
            // SAFETY: `set` is an initialised sigset_t owned by this frame.
            if unsafe { libc::sigaddset(&mut set, sig) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Self(set))
    }

    /// Blocks the signals of the set for this (single-threaded) process.
    /// Children inherit the mask: start them with [`unblock_signals_in_child`].
    #[allow(unsafe_code)]
    pub fn block(&self) -> io::Result<()> {
        // SAFETY: the set is initialised and the old-set pointer may be null.
        let r = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &self.0, std::ptr::null_mut()) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` for one signal of the (blocked) set and returns
    /// its number, or `None` on timeout or interruption.
    #[allow(unsafe_code)]
    pub fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: the set and the timespec are valid for the call; the info
        // pointer may be null.
        let sig = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &ts) };
        (sig > 0).then_some(sig)
    }
}

/// Makes `cmd` run its program with no signal blocked. The agent blocks the
/// signals it waits for, and `std::process::Command` passes that mask on, so
/// without this a command that never unblocks them itself (say `sleep`)
/// would never receive the SIGTERM of a stop.
#[allow(unsafe_code)]
pub fn unblock_signals_in_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: it calls sigemptyset and
    // sigprocmask on a stack value and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let mut set = MaybeUninit::<libc::sigset_t>::uninit();
            if libc::sigemptyset(set.as_mut_ptr()) != 0
                || libc::sigprocmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut()) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    };
}

/// Sends `sig` to every process the agent may signal except itself: as PID 1
/// of a PID namespace, that is every other process of the devbox.
#[allow(unsafe_code)]
pub fn kill_all(sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(-1, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Which side of a [`fork`] the caller is on.
#[derive(Debug)]
pub enum Forked {
    Parent,
    Child,
}

/// Forks the process.
#[allow(unsafe_code)]
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the agent forks only in shim mode, before it has started any
    // thread, so the child cannot inherit a lock held by another thread and
    // may go on running ordinary Rust code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        _ => Ok(Forked::Parent),
    }
}

/// Closes every descriptor above standard error, whatever opened it: the
/// shim must not keep any of its starter's files open for the life of a
/// container.
#[allow(unsafe_code)]
pub fn close_inherited() -> io::Result<()> {
    // SAFETY: called first in shim mode, before the program opens anything,
    // so no `File` or `OwnedFd` of this program owns a descriptor above 2;
    // closing descriptors nothing owns cannot invalidate one.
    if unsafe { libc::close_range(3, libc::c_uint::MAX, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Who a child process becomes between fork and exec.
#[derive(Debug, Clone)]
pub struct Become {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Start a new session and make standard input (a terminal's replica)
    /// its controlling terminal, as a login on a terminal has.
    pub terminal: bool,
}

/// Makes `cmd` run as `who`: supplementary groups, group and user are set
/// in that order (each step needs the privilege the next one gives up), and
/// with a terminal, the process leads a new session on it. Dropping root
/// this way also clears the process's effective and permitted
/// capabilities, as a `runc exec` as that user has them.
#[allow(unsafe_code)]
pub fn become_in_child(cmd: &mut std::process::Command, who: Become) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: setsid, ioctl, setgroups,
    // setgid, setuid, sigemptyset and sigprocmask are, and the group list
    // was allocated before the fork, so nothing is allocated here.
    unsafe {
        cmd.pre_exec(move || {
            let mut set = MaybeUninit::<libc::sigset_t>::uninit();
            if libc::sigemptyset(set.as_mut_ptr()) != 0
                || libc::sigprocmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut()) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if who.terminal {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::getuid() == 0 {
                if libc::setgroups(who.groups.len(), who.groups.as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::setgid(who.gid) != 0 || libc::setuid(who.uid) != 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::getuid() != who.uid {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(())
        })
    };
}

/// Registers a non-blocking descriptor with the tokio reactor.
#[allow(unsafe_code)]
pub fn async_fd(
    fd: std::os::fd::OwnedFd,
) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: tokio requires the descriptor to stay open and to be the same
    // one for the whole life of the `AsyncFd`. An `OwnedFd` owns its
    // descriptor, closes it only when dropped (which happens when the
    // `AsyncFd` is), and always returns the same number from `as_raw_fd`.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(io::Error::from)
}
