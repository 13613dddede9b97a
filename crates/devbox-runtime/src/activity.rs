//! What the agent's SSH server reports of its use (`activity.json` in the
//! status directory): open sessions and forwarded connections, and when one
//! last began or ended. The file comes from inside the devbox and is read
//! as untrusted input: a missing, oversized or malformed one reads as none.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;

const FILE: &str = "activity.json";

/// The largest record read.
const MAX_FILE: u64 = 4096;

/// A devbox's SSH activity as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentActivity {
    /// Shells, execs and SFTP sessions open now.
    pub sessions: u64,
    /// Forwarded connections (local, remote, agent) open now.
    pub connections: u64,
    /// When a session or connection last began or ended; while any is
    /// open, the agent moves it forward every minute.
    pub last_activity: DateTime<Utc>,
}

impl AgentActivity {
    /// Whether anything is open now.
    pub fn busy(&self) -> bool {
        self.sessions + self.connections > 0
    }
}

/// Reads the record in the status directory `dir`.
pub(crate) fn read(dir: &Path) -> Option<AgentActivity> {
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
    f.take(MAX_FILE).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_record_reads_and_anything_else_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        fs::write(
            dir.path().join(FILE),
            r#"{"sessions":2,"connections":0,"last_activity":"2026-01-02T03:04:05.000000000Z"}"#,
        )
        .unwrap();
        let a = read(dir.path()).unwrap();
        assert!(a.busy());
        assert_eq!(a.last_activity.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        fs::write(dir.path().join(FILE), "x".repeat(10_000)).unwrap();
        assert_eq!(read(dir.path()), None);
        fs::remove_file(dir.path().join(FILE)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join(FILE)).unwrap();
        assert_eq!(read(dir.path()), None);
    }
}
