//! The startup command's state, as the agent reports it in `command.json`
//! of the devbox's status directory (`<devbox>/run/`, mounted read-write at
//! `/.devbox/run`).
//!
//! Any process of the devbox can write that directory, so the file is
//! untrusted: it is opened without following symlinks and without blocking
//! (a FIFO cannot hang the runtime), must be a small regular file, and must
//! hold exactly one of the three shapes the agent writes.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use devbox_model::api::CommandStatus;
use serde::Deserialize;

use crate::error::RuntimeError;

/// The file's name in the status directory.
pub const FILE: &str = "command.json";

/// The largest file read. The agent caps its message at 1 KiB, which JSON
/// escaping can make at most six times longer.
const MAX_FILE: u64 = 8 * 1024;

/// The longest message passed on, in characters.
const MAX_MESSAGE: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    state: String,
    #[serde(default)]
    code: Option<i32>,
    #[serde(default)]
    message: Option<String>,
}

fn parse(text: &str) -> Option<CommandStatus> {
    let raw: Raw = serde_json::from_str(text).ok()?;
    match (raw.state.as_str(), raw.code, raw.message) {
        ("running", None, None) => Some(CommandStatus::Running),
        ("exited", Some(code), None) => Some(CommandStatus::Exited { code }),
        ("failed", None, Some(message)) => {
            // Shown to users: no terminal control characters, bounded.
            let message: String = message
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_MESSAGE)
                .collect();
            Some(CommandStatus::Failed { message })
        }
        _ => None,
    }
}

/// The startup command's state in the status directory `dir`; `None` when
/// there is no report, or it is not one the agent would write.
pub fn read(dir: &Path) -> Option<CommandStatus> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(
            rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32,
        )
        .open(dir.join(FILE))
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    let mut text = String::new();
    f.take(MAX_FILE + 1).read_to_string(&mut text).ok()?;
    if text.len() as u64 > MAX_FILE {
        return None;
    }
    parse(&text)
}

/// Prepares the status directory for a new run: creates it, owned by the
/// user the agent runs as (so it can write there), and removes the report
/// of the previous run.
pub(crate) fn reset(dir: &Path, uid: u32, gid: u32) -> Result<(), RuntimeError> {
    match fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(RuntimeError::io("create", dir)(e)),
    }
    // A symlink planted in its place from a devbox cannot be, since the
    // directory itself is the mount's root; chown does not follow one anyway.
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).map_err(RuntimeError::io("chown", dir))?;
    // Whatever a devbox left there, a directory included, goes; removing a
    // tree never follows the symlinks in it.
    let file = dir.join(FILE);
    let removed = match fs::symlink_metadata(&file) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&file),
        Ok(_) => fs::remove_file(&file),
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("remove", &file)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn write(dir: &Path, text: &str) -> Option<CommandStatus> {
        fs::write(dir.join(FILE), text).unwrap();
        read(dir)
    }

    #[test]
    fn the_three_reports_parse() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        assert_eq!(
            write(dir.path(), r#"{"state":"running"}"#),
            Some(CommandStatus::Running)
        );
        assert_eq!(
            write(dir.path(), r#"{"state":"exited","code":137}"#),
            Some(CommandStatus::Exited { code: 137 })
        );
        assert_eq!(
            write(
                dir.path(),
                r#"{"state":"failed","message":"cannot run \"x\": no\u001b[31m such file"}"#
            ),
            Some(CommandStatus::Failed {
                message: "cannot run \"x\": no[31m such file".into()
            })
        );
    }

    #[test]
    fn garbage_is_no_report() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "",
            "null",
            "[]",
            r#"{"state":"running","code":1}"#,
            r#"{"state":"exited"}"#,
            r#"{"state":"exited","code":"3"}"#,
            r#"{"state":"failed"}"#,
            r#"{"state":"dancing"}"#,
            r#"{"state":"running","extra":true}"#,
            r#"{"state":"running"} trailing"#,
        ] {
            assert_eq!(write(dir.path(), bad), None, "{bad}");
        }
        let huge = format!(
            r#"{{"state":"failed","message":"{}"}}"#,
            "x".repeat(MAX_FILE as usize)
        );
        assert_eq!(write(dir.path(), &huge), None);
    }

    #[test]
    fn a_symlink_or_a_fifo_is_never_followed_or_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        fs::write(&secret, r#"{"state":"failed","message":"host secret"}"#).unwrap();
        let run = dir.path().join("run");
        fs::create_dir(&run).unwrap();
        std::os::unix::fs::symlink(&secret, run.join(FILE)).unwrap();
        assert_eq!(read(&run), None);
        fs::remove_file(run.join(FILE)).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            run.join(FILE),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert_eq!(read(&run), None);
    }

    #[test]
    fn reset_removes_the_last_report_and_keeps_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let (uid, gid) = (
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        );
        reset(&run, uid, gid).unwrap();
        fs::write(run.join(FILE), r#"{"state":"running"}"#).unwrap();
        reset(&run, uid, gid).unwrap();
        assert!(run.is_dir());
        assert_eq!(read(&run), None);
        // A directory in the report's place, as a devbox may leave one.
        fs::create_dir_all(run.join(FILE).join("deep")).unwrap();
        std::os::unix::fs::symlink(dir.path(), run.join(FILE).join("up")).unwrap();
        reset(&run, uid, gid).unwrap();
        assert!(!run.join(FILE).exists());
        assert!(dir.path().is_dir(), "a symlink was followed");
    }

    /// Runs the embedded agent (not as PID 1) with a startup command and
    /// returns what it wrote once `done` holds.
    fn agent_report(command: &[&str], done: impl Fn(&str) -> bool) -> String {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("devbox-agent");
        crate::agent::install(&bin).unwrap();
        let status = dir.path().join("run");
        fs::create_dir(&status).unwrap();
        let spawn = || {
            Command::new(&bin)
                .arg("--status-dir")
                .arg(&status)
                .arg("--")
                .args(command)
                .stderr(std::process::Stdio::null())
                .spawn()
        };
        // Another test thread forking while the binary was being written
        // may still hold it open for writing for an instant.
        let mut child = loop {
            match spawn() {
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error()) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other.unwrap(),
            }
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let text = loop {
            let text = fs::read_to_string(status.join(FILE)).unwrap_or_default();
            if done(&text) {
                break text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the agent never wrote a final report: {text:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        child.wait().unwrap();
        text
    }

    #[test]
    fn the_agents_reports_parse_as_the_models_command_status() {
        let exited = agent_report(&["sh", "-c", "exit 3"], |t| t.contains("exited"));
        let model: CommandStatus = serde_json::from_str(&exited).unwrap();
        assert_eq!(model, CommandStatus::Exited { code: 3 });
        assert_eq!(parse(&exited), Some(model));

        let failed = agent_report(&["/nonexistent/program"], |t| !t.is_empty());
        let model: CommandStatus = serde_json::from_str(&failed).unwrap();
        let CommandStatus::Failed { message } = &model else {
            panic!("not a failure: {failed}");
        };
        assert!(message.contains("/nonexistent/program"), "{message}");
        assert_eq!(parse(&failed), Some(model));

        let running = agent_report(&["sleep", "30"], |t| !t.is_empty());
        assert_eq!(
            serde_json::from_str::<CommandStatus>(&running).unwrap(),
            CommandStatus::Running
        );
        assert_eq!(parse(&running), Some(CommandStatus::Running));
    }
}
