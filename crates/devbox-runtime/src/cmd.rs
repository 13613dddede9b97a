//! Running the host tools the runtime drives (`runc`, `ip`, `iptables`):
//! finding them, and turning a failure into an error that shows the command
//! line and what it printed on stderr.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use tokio::process::Command;

use crate::error::RuntimeError;

/// Directories searched after `PATH`: root's tools live in `sbin`, which a
/// service's `PATH` does not always include.
const SBIN: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Finds a program: a path containing `/` is taken as is, a bare name is
/// looked up on `PATH` and then in the `sbin` directories.
pub(crate) fn find_program(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The command line, for messages.
pub(crate) fn display(cmd: &Command) -> String {
    let std = cmd.as_std();
    let mut s = std.get_program().to_string_lossy().into_owned();
    for a in std.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// A command with `args`, with no standard input.
pub(crate) fn command<I, S>(program: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// A command that ran, with its output, whatever its status.
#[derive(Debug)]
pub(crate) struct Ran {
    pub command: String,
    pub out: Output,
}

impl Ran {
    /// The error for a command that ran and failed.
    pub fn failed(&self) -> RuntimeError {
        RuntimeError::Command {
            command: self.command.clone(),
            status: self.out.status.to_string(),
            stderr: String::from_utf8_lossy(&self.out.stderr).trim().to_owned(),
        }
    }
}

/// Runs `cmd` to completion, capturing its output, whatever its status.
pub(crate) async fn output(mut cmd: Command) -> Result<Ran, RuntimeError> {
    let command = display(&cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    match cmd.output().await {
        Ok(out) => Ok(Ran { command, out }),
        Err(source) => Err(RuntimeError::Spawn { command, source }),
    }
}

/// Runs `cmd` and returns its standard output; a non-zero exit is an error.
pub(crate) async fn run(cmd: Command) -> Result<String, RuntimeError> {
    let ran = output(cmd).await?;
    if !ran.out.status.success() {
        return Err(ran.failed());
    }
    Ok(String::from_utf8_lossy(&ran.out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_show_the_command_and_its_stderr() {
        let sh = find_program(Path::new("sh")).expect("sh on PATH");
        let e = run(command(&sh, ["-c", "echo oops >&2; exit 3"]))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("sh -c echo oops >&2; exit 3"), "{e}");
        assert!(e.contains("exit status: 3") && e.contains("oops"), "{e}");
        let out = run(command(&sh, ["-c", "echo fine"])).await.unwrap();
        assert_eq!(out, "fine\n");
    }

    #[test]
    fn programs_are_found_on_path_and_in_sbin() {
        assert!(find_program(Path::new("sh")).is_some());
        assert!(find_program(Path::new("/nonexistent/runc")).is_none());
        assert!(find_program(Path::new("no-such-program-anywhere")).is_none());
    }
}
