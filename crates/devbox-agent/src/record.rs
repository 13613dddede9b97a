//! The JSON records the agent leaves for the runtime: the startup command's
//! status (`command.json`, written from inside the devbox) and the exit
//! record of a container (written by the shim on the host).
//!
//! The agent depends on no serialization library (it must stay small and
//! static), so the few shapes it writes are built by hand here; the runtime
//! tests that its own types parse them. Every record is written to a
//! temporary file and renamed into place, so a reader sees the previous
//! record or the new one, never half of one.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest failure message kept in `command.json`, in bytes: the runtime
/// refuses oversized files, and one line says enough.
const MAX_MESSAGE: usize = 1024;

/// How the startup command is doing, as `devbox_model::api::CommandStatus`
/// spells it on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandStatus {
    Running,
    Exited { code: i32 },
    Failed { message: String },
}

impl CommandStatus {
    pub fn to_json(&self) -> String {
        match self {
            CommandStatus::Running => r#"{"state":"running"}"#.to_owned(),
            CommandStatus::Exited { code } => format!(r#"{{"state":"exited","code":{code}}}"#),
            CommandStatus::Failed { message } => format!(
                r#"{{"state":"failed","message":{}}}"#,
                string(truncate(message, MAX_MESSAGE))
            ),
        }
    }
}

/// How a container's init ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitRecord {
    /// The shell-style code: the exit status, or 128 + the signal.
    pub code: i32,
    pub signal: Option<i32>,
    /// `None` when the devbox's OOM counter could not be read.
    pub oom_killed: Option<bool>,
    pub finished_at: SystemTime,
}

impl ExitRecord {
    pub fn to_json(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "null".to_owned());
        format!(
            r#"{{"code":{},"signal":{},"oom_killed":{},"finished_at":"{}"}}"#,
            self.code,
            opt(self.signal.map(|s| s.to_string())),
            opt(self.oom_killed.map(|b| b.to_string())),
            rfc3339(self.finished_at)
        )
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character
/// boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A UTC time as RFC 3339 with nanoseconds, e.g. `2024-05-01T12:00:00.000000000Z`.
/// Times before 1970 (a clock gone wrong) are written as the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// The proleptic Gregorian date of a day number counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `content` to `path` through a temporary file and a rename. The
/// temporary file is never followed if something put a symlink in its place.
pub fn write_atomic(path: &Path, content: &str) -> io::Result<()> {
    let tmp = temp_path(path);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn command_statuses_have_the_models_shape() {
        assert_eq!(CommandStatus::Running.to_json(), r#"{"state":"running"}"#);
        assert_eq!(
            CommandStatus::Exited { code: 3 }.to_json(),
            r#"{"state":"exited","code":3}"#
        );
        assert_eq!(
            CommandStatus::Failed {
                message: "cannot run \"x\"\n".into()
            }
            .to_json(),
            r#"{"state":"failed","message":"cannot run \"x\"\n"}"#
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE);
        let json = CommandStatus::Failed { message: long }.to_json();
        let inner = json
            .strip_prefix(r#"{"state":"failed","message":""#)
            .and_then(|s| s.strip_suffix(r#""}"#))
            .unwrap();
        assert_eq!(inner.len(), MAX_MESSAGE);
        assert!(inner.chars().all(|c| c == 'é'));
    }

    #[test]
    fn strings_escape_quotes_and_control_characters() {
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("\u{1}\u{7f}\t"), r#""\u0001\u007f\t""#);
        assert_eq!(string("ünï"), "\"ünï\"");
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(951_825_600, 5);
        // 2000 was a leap year: the day after 28 February is the 29th.
        assert_eq!(rfc3339(t), "2000-02-29T12:00:00.000000005Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599);
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59.000000000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(10)),
            "1970-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn exit_records_carry_code_signal_and_oom() {
        let r = ExitRecord {
            code: 137,
            signal: Some(9),
            oom_killed: Some(true),
            finished_at: UNIX_EPOCH,
        };
        assert_eq!(
            r.to_json(),
            r#"{"code":137,"signal":9,"oom_killed":true,"finished_at":"1970-01-01T00:00:00.000000000Z"}"#
        );
        let r = ExitRecord {
            code: 0,
            signal: None,
            oom_killed: None,
            finished_at: UNIX_EPOCH,
        };
        assert!(
            r.to_json()
                .starts_with(r#"{"code":0,"signal":null,"oom_killed":null,"#)
        );
    }

    #[test]
    fn atomic_writes_replace_the_file_and_leave_no_temporary() {
        let dir = crate::testing::temp_dir("record");
        let path = dir.join("command.json");
        write_atomic(&path, "one").unwrap();
        write_atomic(&path, "two").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        assert!(!temp_path(&path).exists());
        // A symlink planted as the temporary file is replaced, not followed.
        let target = dir.join("elsewhere");
        std::os::unix::fs::symlink(&target, temp_path(&path)).unwrap();
        write_atomic(&path, "three").unwrap();
        assert!(!target.exists());
        assert_eq!(fs::read_to_string(&path).unwrap(), "three");
        fs::remove_dir_all(&dir).unwrap();
    }
}
