//! What the SSH server reports of its use: how many sessions and forwarded
//! connections are open, and when one last began or ended. The runtime
//! reads it from `activity.json` in the status directory (as untrusted
//! input) and the control plane keeps a devbox's last activity from it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::record::{rfc3339, write_atomic};

/// How often the record is rewritten while something changed.
const WRITE_EVERY: Duration = Duration::from_secs(1);

/// Open sessions and connections, and the time of the last change.
#[derive(Debug)]
pub struct Activity {
    sessions: AtomicU64,
    connections: AtomicU64,
    /// Bumped at every change; the writer compares it with what it wrote.
    generation: AtomicU64,
    last: Mutex<SystemTime>,
    file: Option<PathBuf>,
}

/// Counts one open session or connection while it lives.
#[derive(Debug)]
pub struct Busy {
    activity: Arc<Activity>,
    session: bool,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.activity
            .counter(self.session)
            .fetch_sub(1, Ordering::Relaxed);
        self.activity.touch();
    }
}

impl Activity {
    /// Activity that is written to `file` (when given) by [`Activity::run_writer`].
    pub fn new(file: Option<PathBuf>) -> Self {
        Activity {
            sessions: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            last: Mutex::new(SystemTime::now()),
            file,
        }
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = SystemTime::now();
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    fn counter(&self, session: bool) -> &AtomicU64 {
        if session {
            &self.sessions
        } else {
            &self.connections
        }
    }

    fn busy(self: &Arc<Self>, session: bool) -> Busy {
        self.counter(session).fetch_add(1, Ordering::Relaxed);
        self.touch();
        Busy {
            activity: self.clone(),
            session,
        }
    }

    /// A session (shell, exec, subsystem) begins.
    pub fn session(self: &Arc<Self>) -> Busy {
        self.busy(true)
    }

    /// A forwarded connection (either direction, or an agent's) begins.
    pub fn connection(self: &Arc<Self>) -> Busy {
        self.busy(false)
    }

    /// The record as JSON.
    pub fn to_json(&self) -> String {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        format!(
            r#"{{"sessions":{},"connections":{},"last_activity":"{}"}}"#,
            self.sessions.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
            rfc3339(last)
        )
    }

    /// Rewrites the record whenever something changed, for as long as the
    /// server runs. Sessions that stay open count as activity too: the
    /// record is rewritten every minute while any is open.
    pub async fn run_writer(&self) {
        let Some(file) = &self.file else { return };
        let mut written = u64::MAX;
        let mut since = Duration::ZERO;
        loop {
            let now = self.generation.load(Ordering::Relaxed);
            let open =
                self.sessions.load(Ordering::Relaxed) + self.connections.load(Ordering::Relaxed);
            if open > 0 && since >= Duration::from_secs(60) {
                self.touch();
                since = Duration::ZERO;
                continue;
            }
            if now != written {
                // The devbox works without its activity record.
                let _ = write_atomic(file, &self.to_json());
                written = now;
            }
            tokio::time::sleep(WRITE_EVERY).await;
            since += WRITE_EVERY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sessions_and_connections_are_counted_while_they_live() {
        let a = Arc::new(Activity::new(None));
        let s = a.session();
        let c1 = a.connection();
        let c2 = a.connection();
        assert!(
            a.to_json().starts_with(r#"{"sessions":1,"connections":2,"#),
            "{}",
            a.to_json()
        );
        drop((s, c1));
        assert!(a.to_json().starts_with(r#"{"sessions":0,"connections":1,"#));
        drop(c2);
        assert!(
            a.to_json().contains(r#""last_activity":"20"#),
            "{}",
            a.to_json()
        );
    }
}
