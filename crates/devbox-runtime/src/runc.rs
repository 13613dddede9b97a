//! The `runc` command line, with its state under the runtime's own root
//! (`runc --root`), so the runtime's containers never mix with others'.
//! Containers are started by their shim (`crate::shim::run_detached`), which
//! runs `runc run` itself.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use devbox_model::{DevboxId, Resources};
use serde::Deserialize;
use tokio::process::Command;

use crate::cmd::{display, output, run};
use crate::error::RuntimeError;

#[derive(Debug, Clone)]
pub(crate) struct Runc {
    pub bin: PathBuf,
    pub root: PathBuf,
}

/// A container's status as `runc state` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Created,
    Running(u32),
    Paused(u32),
    Stopped,
}

#[derive(Deserialize)]
struct StateJson {
    status: String,
    #[serde(default)]
    pid: i64,
}

#[derive(Deserialize)]
struct ListEntry {
    id: String,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct LogLine {
    #[serde(default)]
    level: String,
    #[serde(default)]
    msg: String,
}

/// Where runc's own messages about an exec go, beside its pid file.
pub(crate) fn exec_log_path(pid_file: &Path) -> PathBuf {
    pid_file.with_extension("log")
}

/// The shell-style exit code for an exec that runc could not start, from
/// runc's log: 127 when the program does not exist, 126 when it cannot be
/// run. `None` when runc logged no error (the program itself exited).
pub(crate) fn exec_failure_code(log: &str) -> Option<(i32, String)> {
    let errors = log_errors(log);
    let message = errors.last()?.clone();
    let code = if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else {
        126
    };
    Some((code, message))
}

/// The messages runc logged at error level (its log is JSON lines).
pub(crate) fn log_errors(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<LogLine>(l).ok())
        .filter(|l| l.level == "error" || l.level == "fatal")
        .map(|l| l.msg)
        .collect()
}

fn parse_state(json: &str) -> Result<Status, String> {
    let s: StateJson = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let pid = u32::try_from(s.pid).unwrap_or(0);
    match s.status.as_str() {
        "created" => Ok(Status::Created),
        "running" => Ok(Status::Running(pid)),
        "paused" => Ok(Status::Paused(pid)),
        "stopped" => Ok(Status::Stopped),
        other => Err(format!("unknown status {other:?}")),
    }
}

impl Runc {
    fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn exists(&self, id: &DevboxId) -> bool {
        self.root.join(id.as_str()).exists()
    }

    /// The container's status, or `None` when runc has no such container.
    pub async fn state(&self, id: &DevboxId) -> Result<Option<Status>, RuntimeError> {
        if !self.exists(id) {
            return Ok(None);
        }
        let ran = output(self.cmd(["state", id.as_str()])).await?;
        if !ran.out.status.success() {
            // Deleted between the check and the call.
            if !self.exists(id) {
                return Ok(None);
            }
            return Err(ran.failed());
        }
        parse_state(&String::from_utf8_lossy(&ran.out.stdout))
            .map(Some)
            .map_err(|reason| RuntimeError::CommandOutput {
                command: ran.command,
                reason,
            })
    }

    /// Sends `signal` (a name such as `TERM`) to the container's init.
    pub async fn kill(&self, id: &DevboxId, signal: &str) -> Result<(), RuntimeError> {
        run(self.cmd(["kill", id.as_str(), signal])).await.map(drop)
    }

    /// Deletes the container whatever its state. Idempotent.
    pub async fn delete(&self, id: &DevboxId) -> Result<(), RuntimeError> {
        if !self.exists(id) {
            return Ok(());
        }
        let ran = output(self.cmd(["delete", "--force", id.as_str()])).await?;
        if ran.out.status.success() || !self.exists(id) {
            return Ok(());
        }
        Err(ran.failed())
    }

    /// IDs of every container under this root.
    pub async fn list(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(self
            .list_entries()
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect())
    }

    /// IDs of the containers under this root that run (or are paused).
    pub async fn running(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(self
            .list_entries()
            .await?
            .into_iter()
            .filter(|e| e.status == "running" || e.status == "paused")
            .map(|e| e.id)
            .collect())
    }

    /// Freezes every process of the container (the cgroup freezer).
    pub async fn pause(&self, id: &DevboxId) -> Result<(), RuntimeError> {
        run(self.cmd(["pause", id.as_str()])).await.map(drop)
    }

    /// Thaws a paused container.
    pub async fn resume(&self, id: &DevboxId) -> Result<(), RuntimeError> {
        run(self.cmd(["resume", id.as_str()])).await.map(drop)
    }

    async fn list_entries(&self) -> Result<Vec<ListEntry>, RuntimeError> {
        let ran = output(self.cmd(["list", "--format", "json"])).await?;
        if !ran.out.status.success() {
            return Err(ran.failed());
        }
        let text = String::from_utf8_lossy(&ran.out.stdout);
        // runc prints `null` when there are no containers.
        let entries: Option<Vec<ListEntry>> =
            serde_json::from_str(text.trim()).map_err(|e| RuntimeError::CommandOutput {
                command: ran.command.clone(),
                reason: e.to_string(),
            })?;
        Ok(entries.unwrap_or_default())
    }

    /// `runc exec` of the process described in `process`; runc writes the
    /// process's host PID to `pid_file`.
    pub fn exec(&self, id: &DevboxId, process: &Path, pid_file: &Path) -> Command {
        let log = exec_log_path(pid_file);
        let mut cmd = self.cmd([OsStr::new("--log"), log.as_os_str()]);
        cmd.args(["--log-format", "json"])
            .arg("exec")
            .arg("--process")
            .arg(process)
            .arg("--pid-file")
            .arg(pid_file)
            .arg(id.as_str());
        cmd
    }

    /// Applies new cgroup limits to a running container.
    pub async fn update(&self, id: &DevboxId, r: &Resources) -> Result<(), RuntimeError> {
        let limits = crate::bundle::resources(r).map_err(|source| RuntimeError::Bundle {
            id: id.clone(),
            source,
        })?;
        let json = serde_json::to_string(&limits).expect("resources serialize");
        let mut cmd = self.cmd(["update", "--resources", "-", id.as_str()]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = display(&cmd);
        let spawn_err = |source| RuntimeError::Spawn {
            command: command.clone(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            stdin.write_all(json.as_bytes()).await.map_err(spawn_err)?;
        }
        let out = child.wait_with_output().await.map_err(spawn_err)?;
        if out.status.success() {
            return Ok(());
        }
        Err(RuntimeError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_execs_map_to_shell_exit_codes() {
        let missing = r#"{"level":"error","msg":"exec failed: unable to start container process: exec: \"nosuchcmd\": executable file not found in $PATH","time":"x"}"#;
        assert_eq!(exec_failure_code(missing).map(|(c, _)| c), Some(127));
        let denied = r#"{"level":"error","msg":"exec failed: unable to start container process: exec: \"/etc/passwd\": permission denied","time":"x"}"#;
        assert_eq!(exec_failure_code(denied).map(|(c, _)| c), Some(126));
        assert_eq!(exec_failure_code(""), None);
        assert_eq!(
            exec_failure_code(r#"{"level":"info","msg":"ok","time":"x"}"#),
            None
        );
    }

    #[test]
    fn states_parse() {
        assert_eq!(
            parse_state(r#"{"ociVersion":"1.0.2","id":"x","pid":42,"status":"running"}"#),
            Ok(Status::Running(42))
        );
        assert_eq!(
            parse_state(r#"{"pid":0,"status":"stopped"}"#),
            Ok(Status::Stopped)
        );
        assert_eq!(
            parse_state(r#"{"pid":7,"status":"created"}"#),
            Ok(Status::Created)
        );
        assert!(parse_state(r#"{"status":"dancing"}"#).is_err());
        assert!(parse_state("not json").is_err());
    }

    #[test]
    fn errors_are_picked_from_the_json_log() {
        let log = concat!(
            r#"{"level":"info","msg":"starting","time":"t"}"#,
            "\n",
            r#"{"level":"error","msg":"container_linux.go: starting container process caused: exec: \"/x\": no such file","time":"t"}"#,
            "\n",
            "garbage\n"
        );
        let errs = log_errors(log);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("no such file"), "{errs:?}");
    }
}
