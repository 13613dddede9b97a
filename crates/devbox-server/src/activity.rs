//! What a devbox is doing, for `last_activity` and idle auto-stop: its open
//! sessions (execs and terminals, upgraded ingress connections such as
//! WebSockets, and whatever else holds a [`SessionGuard`]), the time of its
//! last request or session, and what its agent reports of SSH sessions and
//! forwarded connections (read by the reconciler). Kept in memory: after a
//! restart the agents' reports, which live with the devboxes, bring it
//! back. The CPU side of idleness is the runtime's to report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use devbox_model::DevboxId;

/// Activity of every devbox since the server started; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    inner: Arc<Mutex<HashMap<DevboxId, Entry>>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    last: DateTime<Utc>,
    sessions: u32,
}

/// Holds a session of a devbox open; dropping it ends the session.
#[derive(Debug)]
pub struct SessionGuard {
    activity: Activity,
    id: DevboxId,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut map = self.activity.lock();
        if let Some(e) = map.get_mut(&self.id) {
            e.sessions = e.sessions.saturating_sub(1);
            e.last = Utc::now();
        }
    }
}

/// What is known of a devbox's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The last request, or the end of the last session.
    pub last: Option<DateTime<Utc>>,
    /// Sessions open now.
    pub sessions: u32,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DevboxId, Entry>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a request to the devbox now.
    pub fn touch(&self, id: &DevboxId) {
        let now = Utc::now();
        self.lock()
            .entry(id.clone())
            .and_modify(|e| e.last = now)
            .or_insert(Entry {
                last: now,
                sessions: 0,
            });
    }

    /// Notes activity at `at` (an agent's report); a time earlier than the
    /// one known changes nothing.
    pub fn note(&self, id: &DevboxId, at: DateTime<Utc>) {
        let mut map = self.lock();
        let e = map.entry(id.clone()).or_insert(Entry {
            last: at,
            sessions: 0,
        });
        if at > e.last {
            e.last = at;
        }
    }

    /// Opens a session of the devbox until the guard is dropped.
    pub fn session(&self, id: &DevboxId) -> SessionGuard {
        let now = Utc::now();
        let mut map = self.lock();
        let e = map.entry(id.clone()).or_insert(Entry {
            last: now,
            sessions: 0,
        });
        e.sessions += 1;
        e.last = now;
        SessionGuard {
            activity: self.clone(),
            id: id.clone(),
        }
    }

    /// The devbox's activity as known now.
    pub fn seen(&self, id: &DevboxId) -> Seen {
        match self.lock().get(id) {
            Some(e) => Seen {
                last: Some(e.last),
                sessions: e.sessions,
            },
            None => Seen {
                last: None,
                sessions: 0,
            },
        }
    }

    /// Forgets a devbox that is gone.
    pub fn forget(&self, id: &DevboxId) {
        let mut map = self.lock();
        if map.get(id).is_some_and(|e| e.sessions == 0) {
            map.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_counts_until_its_guard_drops() {
        let a = Activity::default();
        let id = DevboxId::from_random([1; 8]);
        assert_eq!(a.seen(&id).last, None);
        let g1 = a.session(&id);
        let g2 = a.session(&id);
        assert_eq!(a.seen(&id).sessions, 2);
        drop(g1);
        assert_eq!(a.seen(&id).sessions, 1);
        a.forget(&id);
        assert_eq!(a.seen(&id).sessions, 1, "an open session is not forgotten");
        drop(g2);
        let seen = a.seen(&id);
        assert_eq!(seen.sessions, 0);
        assert!(seen.last.is_some());
        a.touch(&id);
        a.forget(&id);
        assert_eq!(a.seen(&id).last, None);
    }

    #[test]
    fn the_latest_activity_wins() {
        let a = Activity::default();
        let id = DevboxId::from_random([2; 8]);
        assert_eq!(a.seen(&id).last, None);
        let t = Utc::now();
        a.note(&id, t);
        a.note(&id, t - chrono::Duration::minutes(5));
        assert_eq!(a.seen(&id).last, Some(t));
        a.touch(&id);
        assert!(a.seen(&id).last.unwrap() >= t);
        a.forget(&id);
        assert_eq!(a.seen(&id).last, None);
    }
}
