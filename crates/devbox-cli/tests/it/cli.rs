//! Running the `devbox` binary as a user would, against a server URL.

use std::io::Write;
use std::process::{Command, Stdio};

/// The binary under test, set up for one server.
pub struct Cli {
    url: String,
    token: Option<String>,
    /// An empty data directory, so no admin token of this machine leaks in.
    data_dir: tempfile::TempDir,
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Cli {
    /// For the server at `url` (as `DEVBOX_URL`), with `token` (as `DEVBOX_TOKEN`).
    pub fn new(url: &str, token: Option<&str>) -> Self {
        Self {
            url: url.to_owned(),
            token: token.map(str::to_owned),
            data_dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The directory given as `DEVBOX_DATA_DIR`.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_devbox"));
        c.args(args)
            .env("DEVBOX_URL", &self.url)
            .env("DEVBOX_DATA_DIR", self.data_dir.path())
            .env_remove("DEVBOX_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        if let Some(t) = &self.token {
            c.env("DEVBOX_TOKEN", t);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        finish(self.command(args).output().unwrap())
    }

    /// Runs with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        finish(child.wait_with_output().unwrap())
    }
}

pub fn finish(out: std::process::Output) -> Run {
    Run {
        code: out
            .status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {:?}", out.status)),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

impl Run {
    /// Asserts the exit code, showing the output when it differs.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}
