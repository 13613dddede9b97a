//! When each devbox was last used: its agent's report of SSH sessions and
//! forwarded connections (read by the reconciler), and the logins and
//! execs the control plane itself starts. Kept in memory: after a restart
//! the agents' reports, which live with the devboxes, bring it back.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use devbox_model::DevboxId;

/// The last activity of every devbox seen since the server started.
#[derive(Debug, Default)]
pub struct ActivityLog {
    last: Mutex<HashMap<DevboxId, DateTime<Utc>>>,
}

impl ActivityLog {
    /// Notes activity at `at`; an earlier time than the one known changes
    /// nothing.
    pub fn note(&self, id: &DevboxId, at: DateTime<Utc>) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let e = last.entry(id.clone()).or_insert(at);
        if at > *e {
            *e = at;
        }
    }

    /// Notes activity now.
    pub fn touch(&self, id: &DevboxId) {
        self.note(id, Utc::now());
    }

    /// When the devbox was last used, if it was since it was known.
    pub fn last(&self, id: &DevboxId) -> Option<DateTime<Utc>> {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied()
    }

    /// Forgets a devbox that was deleted.
    pub fn forget(&self, id: &DevboxId) {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn the_latest_activity_wins() {
        let log = ActivityLog::default();
        let id: DevboxId = "0123456789abcdef".parse().unwrap();
        assert_eq!(log.last(&id), None);
        let t = Utc::now();
        log.note(&id, t);
        log.note(&id, t - Duration::minutes(5));
        assert_eq!(log.last(&id), Some(t));
        log.touch(&id);
        assert!(log.last(&id).unwrap() >= t);
        log.forget(&id);
        assert_eq!(log.last(&id), None);
    }
}
