//! `devbox-agent`: the init process (PID 1) of every devbox, and on the host
//! the shim that is the parent of each devbox's container.
//!
//! The runtime bind-mounts this binary read-only at `/.devbox/agent` and
//! starts it as the container's first process. It is statically linked, so it
//! runs in any image, even one without a C library. It owns three duties:
//! reaping every process that ends up as its child (orphans are re-parented to
//! PID 1), running the devbox's startup command with the devbox's standard
//! output, error and environment, and stopping cleanly: on SIGTERM or SIGINT it
//! asks every process of the devbox to terminate, waits briefly, and exits 0.
//! It reports the startup command's state (running, exited with a code, or
//! failed to start) in `command.json` of `/.devbox/run`, which the runtime
//! reads from the host.
//!
//! In shim mode (`devbox-agent shim ...`, see [`shim`]) the same binary runs
//! on the host: it starts the container with runc, stays its parent, keeps
//! its console log within a size, and records how its init ended. One
//! binary serves both because it is already static and installed by the
//! runtime.
//!
//! Init also starts the devbox's SSH server ([`ssh`]) in a process of its
//! own, and starts it again whenever it ends, so a fault in the SSH code
//! never takes PID 1 down; the SSH server runs the SFTP server ([`sftp`])
//! as a process of the login user.
//!
//! Usage: `devbox-agent [--status-dir DIR] [--user IDS] [--ssh-listen ADDR
//! --ssh-keys DIR] [-- COMMAND [ARG...]]`, `devbox-agent ssh OPTIONS`,
//! `devbox-agent sftp-server`, or `devbox-agent shim OPTIONS` (see [`args`]).

mod args;
mod console;
mod init;
mod oom;
mod record;
mod sftp;
mod shim;
mod ssh;
mod status;
mod sys;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mode = match args::parse(std::env::args_os().skip(1)) {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("devbox-agent: {e}");
            return ExitCode::from(2);
        }
    };
    match mode {
        args::Mode::Shim(args) => {
            ExitCode::from(u8::try_from(shim::run(&args).clamp(0, 255)).unwrap_or(u8::MAX))
        }
        args::Mode::Ssh(args) => match ssh::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("devbox-agent ssh: {e}");
                ExitCode::FAILURE
            }
        },
        args::Mode::SftpServer => match sftp::run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("devbox-agent sftp-server: {e}");
                ExitCode::FAILURE
            }
        },
        args::Mode::Init(args) => match init::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("devbox-agent: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod testing {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system's temporary directory; the test
    /// removes it.
    pub fn temp_dir(name: &str) -> PathBuf {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "devbox-agent-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
