//! `devbox-agent`: the init process (PID 1) of every devbox.
//!
//! The runtime bind-mounts this binary read-only at `/.devbox/agent` and
//! starts it as the container's first process. It is statically linked, so it
//! runs in any image, even one without a C library. It owns three duties:
//! reaping every process that ends up as its child (orphans are re-parented to
//! PID 1), running the devbox's startup command with the devbox's standard
//! output, error and environment, and stopping cleanly: on SIGTERM or SIGINT it
//! asks every process of the devbox to terminate, waits briefly, and exits 0.
//!
//! Usage: `devbox-agent [-- COMMAND [ARG...]]`.

mod args;
mod init;
mod status;
mod sys;

use std::process::ExitCode;

fn main() -> ExitCode {
    let command = match args::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("devbox-agent: {e}");
            return ExitCode::from(2);
        }
    };
    match init::run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devbox-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
