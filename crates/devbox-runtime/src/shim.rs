//! Starting a devbox's container through its shim, and what the shim leaves
//! behind.
//!
//! The shim is the agent binary in shim mode (`devbox-agent shim`, installed
//! under `<root>/bin`): a small host process that runs `runc run --detach`,
//! stays the parent of the container's init after the server is gone, owns
//! the console log (see [`crate::paths`] for its rotation), and writes the
//! exit record when the init ends. Containerd's shim and podman's conmon do
//! the same.
//!
//! Files of one devbox (`<root>/devboxes/<id>/`): `exit.json` (the exit
//! record, removed at every start), `shim.lock` (locked while the shim
//! lives), `init.pid` (the init's host PID, from runc), `runc.log`.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use devbox_model::DevboxId;
use rustix::fs::{FlockOperation, flock};
use serde::Deserialize;

use crate::cgroup;
use crate::cmd::{command, output};
use crate::error::RuntimeError;
use crate::paths::{DevboxPaths, Paths};
use crate::runc::{Runc, log_errors};

/// The largest exit record read; the shim writes about a hundred bytes.
const MAX_EXIT_FILE: u64 = 4096;

/// How long [`wait_gone`] waits for a shim whose container has ended before
/// killing it. The shim drains the output for at most two seconds after
/// the init exits.
const SHIM_WAIT: Duration = Duration::from_secs(10);

/// How long a killed shim may take to exit.
const KILLED_WAIT: Duration = Duration::from_secs(2);

/// How a devbox's init ended, as its shim recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitRecord {
    /// As a shell reports it: the exit status, or 128 + the signal.
    pub code: i32,
    /// The signal that killed the init, if one did.
    pub signal: Option<i32>,
    /// Whether the kernel killed the init for lack of memory (`false` when
    /// the shim could not tell).
    #[serde(deserialize_with = "unknown_is_false")]
    pub oom_killed: bool,
    pub finished_at: DateTime<Utc>,
}

fn unknown_is_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

impl ExitRecord {
    /// Reads an exit record; `None` when there is none or it is not one.
    pub fn read(path: &Path) -> Option<ExitRecord> {
        let f = fs::File::open(path).ok()?;
        let mut text = String::new();
        f.take(MAX_EXIT_FILE + 1).read_to_string(&mut text).ok()?;
        if text.len() as u64 > MAX_EXIT_FILE {
            return None;
        }
        serde_json::from_str(&text).ok()
    }
}

/// How the devbox's last run ended, when its init has ended and the shim
/// recorded it.
pub(crate) fn read_exit(paths: &DevboxPaths) -> Option<ExitRecord> {
    ExitRecord::read(&paths.exit_file())
}

fn remove_file(path: &Path) -> Result<(), RuntimeError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("remove", path)(e)),
    }
}

/// Starts the devbox's container (its bundle must be in place) under a new
/// shim, whose console log keeps at most `console_max` bytes. Returns once
/// runc has started the container; fails, with the errors runc logged, when
/// runc failed.
pub(crate) async fn run_detached(
    runc: &Runc,
    id: &DevboxId,
    paths: &Paths,
    console_max: u64,
) -> Result<(), RuntimeError> {
    let p = paths.devbox(id);
    // The record of the previous run must not be taken for this one's.
    remove_file(&p.exit_file())?;
    remove_file(&p.init_pid())?;
    let log = p.runc_log();
    fs::write(&log, b"").map_err(RuntimeError::io("create", &log))?;
    let max = console_max.to_string();
    let oom = cgroup::oom_events_file(id);
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("shim"),
        OsStr::new("--runc"),
        runc.bin.as_os_str(),
        OsStr::new("--root"),
        runc.root.as_os_str(),
        OsStr::new("--id"),
        OsStr::new(id.as_str()),
    ];
    let bundle = p.bundle();
    let pid_file = p.init_pid();
    let console = p.console_log();
    let exit_file = p.exit_file();
    let lock = p.shim_lock();
    for (flag, value) in [
        ("--bundle", bundle.as_os_str()),
        ("--runc-log", log.as_os_str()),
        ("--pid-file", pid_file.as_os_str()),
        ("--console", console.as_os_str()),
        ("--console-max", OsStr::new(&max)),
        ("--exit-file", exit_file.as_os_str()),
        ("--lock-file", lock.as_os_str()),
    ] {
        args.extend([OsStr::new(flag), value]);
    }
    if let Some(oom) = &oom {
        args.extend([OsStr::new("--oom-file"), oom.as_os_str()]);
    }
    let ran = spawn_retrying(|| output(command(&paths.agent(), &args))).await?;
    if ran.out.status.success() {
        return Ok(());
    }
    let logged = fs::read_to_string(&log).unwrap_or_default();
    let errors = log_errors(&logged);
    let stderr = String::from_utf8_lossy(&ran.out.stderr).trim().to_owned();
    let message = if !errors.is_empty() {
        errors.join("; ")
    } else if !stderr.is_empty() {
        stderr
    } else {
        format!("runc run {}", ran.out.status)
    };
    Err(RuntimeError::RuncStart {
        id: id.clone(),
        message,
    })
}

/// Runs `run` again, a few times, while it fails with "text file busy": a
/// process forked elsewhere in this program while the agent binary was
/// being installed may hold it open for writing until it executes.
async fn spawn_retrying<F, Fut>(run: F) -> Result<crate::cmd::Ran, RuntimeError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<crate::cmd::Ran, RuntimeError>>,
{
    let mut tries = 0;
    loop {
        match run().await {
            Err(RuntimeError::Spawn { source, .. })
                if source.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error())
                    && tries < 10 =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// Whether a shim holds the devbox's lock; `None` when none does, else the
/// PID it wrote there.
fn holder(paths: &DevboxPaths) -> Result<Option<Option<u32>>, RuntimeError> {
    let path = paths.shim_lock();
    let mut f = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RuntimeError::io("open", &path)(e)),
    };
    match flock(&f, FlockOperation::NonBlockingLockShared) {
        // Taken, so nobody holds it; closing the file releases it again.
        Ok(()) => Ok(None),
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut text = String::new();
            let _ = f.read_to_string(&mut text);
            Ok(Some(text.trim().parse().ok()))
        }
        Err(e) => Err(RuntimeError::io("lock", &path)(e.into())),
    }
}

/// Waits until the devbox's shim has exited, which it does shortly after
/// the container's init. Call it once the container is stopped, so no
/// shim of an old run writes into the next one; a shim still there after
/// [`SHIM_WAIT`] is killed.
pub(crate) async fn wait_gone(id: &DevboxId, paths: &DevboxPaths) -> Result<(), RuntimeError> {
    let mut deadline = Instant::now() + SHIM_WAIT;
    let mut killed = false;
    loop {
        let Some(pid) = holder(paths)? else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            if killed {
                return Err(RuntimeError::ShimStuck {
                    id: id.clone(),
                    pid: pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
                });
            }
            // The lock is held, so the PID inside is the shim's own: it
            // wrote it after taking the lock and keeps it until it exits.
            if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                tracing::warn!(devbox = %id, pid = pid.as_raw_nonzero().get(), "killing a shim that outlived its container");
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            killed = true;
            deadline = Instant::now() + KILLED_WAIT;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> Option<ExitRecord> {
        let p = dir.join("exit.json");
        fs::write(&p, text).unwrap();
        ExitRecord::read(&p)
    }

    #[test]
    fn exit_records_parse_as_the_shim_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let r = write(
            dir.path(),
            r#"{"code":137,"signal":9,"oom_killed":true,"finished_at":"2024-05-01T12:00:00.000000005Z"}"#,
        )
        .unwrap();
        assert_eq!((r.code, r.signal, r.oom_killed), (137, Some(9), true));
        assert_eq!(r.finished_at.timestamp(), 1_714_564_800);
        assert_eq!(r.finished_at.timestamp_subsec_nanos(), 5);
        let r = write(
            dir.path(),
            r#"{"code":3,"signal":null,"oom_killed":null,"finished_at":"1970-01-01T00:00:00.000000000Z"}"#,
        )
        .unwrap();
        assert_eq!((r.code, r.signal, r.oom_killed), (3, None, false));
    }

    #[test]
    fn anything_else_is_no_record() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ExitRecord::read(&dir.path().join("missing")), None);
        for bad in [
            "",
            "{",
            r#"{"code":3}"#,
            r#"{"code":3,"signal":null,"oom_killed":false,"finished_at":"yesterday"}"#,
            r#"{"code":3,"signal":null,"oom_killed":false,"finished_at":"1970-01-01T00:00:00Z","extra":1}"#,
        ] {
            assert_eq!(write(dir.path(), bad), None, "{bad}");
        }
        let huge = format!(
            r#"{{"code":3,"signal":null,"oom_killed":false,"finished_at":"1970-01-01T00:00:00Z"{}}}"#,
            " ".repeat(MAX_EXIT_FILE as usize)
        );
        assert_eq!(write(dir.path(), &huge), None);
    }

    #[tokio::test]
    async fn a_free_or_missing_lock_means_no_shim() {
        let dir = tempfile::tempdir().unwrap();
        let p = DevboxPaths {
            dir: dir.path().to_owned(),
        };
        let id: DevboxId = "0123456789abcdef".parse().unwrap();
        assert_eq!(holder(&p).unwrap(), None);
        wait_gone(&id, &p).await.unwrap();
        fs::write(p.shim_lock(), "4242\n").unwrap();
        assert_eq!(holder(&p).unwrap(), None);
        // Held by another open file, as a live shim holds it.
        let held = fs::File::open(p.shim_lock()).unwrap();
        flock(&held, FlockOperation::NonBlockingLockExclusive).unwrap();
        assert_eq!(holder(&p).unwrap(), Some(Some(4242)));
        drop(held);
        assert_eq!(holder(&p).unwrap(), None);
    }
}
