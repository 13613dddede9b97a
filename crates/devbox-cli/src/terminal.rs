//! The local terminal during `exec -t`: raw mode that is always undone, and
//! the window size.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, Once};

use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr};

/// The settings to put back, shared with the panic hook: a panic on any
/// thread must not leave the user's shell in raw mode.
static SAVED: Mutex<Option<(OwnedFd, Termios)>> = Mutex::new(None);
static HOOK: Once = Once::new();

/// Raw mode on a terminal for as long as this value lives. Dropping it, on
/// return, error or unwinding panic, restores the settings found at start.
#[derive(Debug)]
pub struct RawMode {
    fd: OwnedFd,
    original: Termios,
}

impl RawMode {
    /// Puts the terminal behind `fd` in raw mode: no echo, no line editing,
    /// no signals from keys, so every key press goes to the remote side.
    pub fn enable(fd: impl AsFd) -> io::Result<Self> {
        let fd = fd.as_fd().try_clone_to_owned()?;
        let original = tcgetattr(&fd)?;
        install_panic_hook();
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((fd.try_clone()?, original.clone()));
        let mut raw = original.clone();
        raw.make_raw();
        tcsetattr(&fd, OptionalActions::Now, &raw)?;
        Ok(Self { fd, original })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(&self.fd, OptionalActions::Now, &self.original);
        SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Restores the terminal before the default hook prints the panic, so the
/// message is readable and the shell usable afterwards.
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some((fd, termios)) = saved {
                let _ = tcsetattr(&fd, OptionalActions::Now, &termios);
            }
            previous(info);
        }));
    });
}

/// `(rows, cols)` of the terminal behind `fd`; `None` when it is not a
/// terminal or reports no size.
pub fn window_size(fd: impl AsFd) -> Option<(u16, u16)> {
    let ws = tcgetwinsize(fd).ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{Mode, OFlags};
    use rustix::termios::{LocalModes, Winsize, tcsetwinsize};

    /// A pseudo-terminal pair: the controller side and the terminal side.
    fn pty() -> (OwnedFd, OwnedFd) {
        let controller =
            rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY)
                .expect("open /dev/ptmx: a pseudo-terminal is needed for this test");
        rustix::pty::grantpt(&controller).unwrap();
        rustix::pty::unlockpt(&controller).unwrap();
        let name = rustix::pty::ptsname(&controller, Vec::new()).unwrap();
        let term = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY,
            Mode::empty(),
        )
        .unwrap();
        (controller, term)
    }

    fn echo_on(fd: &OwnedFd) -> bool {
        tcgetattr(fd)
            .unwrap()
            .local_modes
            .contains(LocalModes::ECHO)
    }

    #[test]
    fn raw_mode_is_undone_on_drop() {
        let (_c, term) = pty();
        assert!(echo_on(&term));
        let guard = RawMode::enable(&term).unwrap();
        assert!(!echo_on(&term));
        let icanon = tcgetattr(&term).unwrap().local_modes;
        assert!(!icanon.contains(LocalModes::ICANON));
        drop(guard);
        assert!(echo_on(&term));
    }

    #[test]
    fn raw_mode_is_undone_when_a_panic_unwinds() {
        let (_c, term) = pty();
        let result = std::panic::catch_unwind(|| {
            let _guard = RawMode::enable(&term).unwrap();
            assert!(!echo_on(&term));
            panic!("boom");
        });
        assert!(result.is_err());
        assert!(echo_on(&term));
    }

    #[test]
    fn a_terminal_reports_its_size() {
        let (_c, term) = pty();
        tcsetwinsize(
            &term,
            Winsize {
                ws_row: 40,
                ws_col: 132,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .unwrap();
        assert_eq!(window_size(&term), Some((40, 132)));
        let file = tempfile::tempfile().unwrap();
        assert_eq!(window_size(&file), None);
        assert!(RawMode::enable(&file).is_err());
    }
}
