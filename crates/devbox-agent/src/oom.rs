//! Whether the kernel's OOM killer ended a container's init, told from the
//! `oom_kill` counter of the devbox's memory cgroup (`memory.events` in
//! cgroup v2, `memory.oom_control` in v1; both have an `oom_kill N` line).
//!
//! The counter says how many processes of the cgroup were killed, not which.
//! The shim samples it about once a second; an init that died of SIGKILL
//! while the counter rose within [`WINDOW`] is taken as OOM-killed. A SIGKILL
//! from elsewhere within seconds of an unrelated OOM kill would be misread,
//! which is the price of not needing kernel events.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How recent a rise of the counter must be to explain a SIGKILL.
const WINDOW: Duration = Duration::from_secs(3);

/// How often the counter is read while the container runs.
const EVERY: Duration = Duration::from_secs(1);

/// The `oom_kill` value of a cgroup memory file.
pub fn parse_count(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

#[derive(Debug)]
pub struct OomWatch {
    file: Option<PathBuf>,
    last: Option<u64>,
    last_read: Option<Instant>,
    last_rise: Option<Instant>,
}

impl OomWatch {
    /// Watches `file`; `None` when the runtime could not say where it is.
    pub fn new(file: Option<PathBuf>, now: Instant) -> Self {
        let mut w = OomWatch {
            file,
            last: None,
            last_read: None,
            last_rise: None,
        };
        w.read(now);
        w
    }

    /// Reads the counter if the last read is older than [`EVERY`].
    pub fn sample(&mut self, now: Instant) {
        if self
            .last_read
            .is_none_or(|t| now.saturating_duration_since(t) >= EVERY)
        {
            self.read(now);
        }
    }

    fn read(&mut self, now: Instant) {
        let value = self
            .file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| parse_count(&t));
        self.observe(value, now);
    }

    /// Records one reading of the counter (`None`: unreadable).
    fn observe(&mut self, value: Option<u64>, now: Instant) {
        self.last_read = Some(now);
        let Some(v) = value else { return };
        if self.last.is_some_and(|l| v > l) {
            self.last_rise = Some(now);
        }
        self.last = Some(v);
    }

    /// Whether an init that ended with `signal` at `now` was OOM-killed;
    /// `None` when the counter could never be read.
    pub fn killed(&mut self, signal: Option<i32>, now: Instant) -> Option<bool> {
        self.read(now);
        self.verdict(signal, now)
    }

    fn verdict(&self, signal: Option<i32>, now: Instant) -> Option<bool> {
        self.last?;
        let recent = self
            .last_rise
            .is_some_and(|t| now.saturating_duration_since(t) <= WINDOW);
        Some(signal == Some(libc::SIGKILL) && recent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_cgroup_versions_name_the_counter_alike() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        let v2 = "low 0\nhigh 0\nmax 5\noom 3\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_count(v1), Some(2));
        assert_eq!(parse_count(v2), Some(1));
        assert_eq!(parse_count("oom_kill_disable 0\n"), None);
        assert_eq!(parse_count(""), None);
    }

    fn watch(start: u64, t0: Instant) -> OomWatch {
        let mut w = OomWatch::new(None, t0);
        w.observe(Some(start), t0);
        w
    }

    #[test]
    fn a_sigkill_right_after_a_rise_is_an_oom_kill() {
        let t0 = Instant::now();
        let mut w = watch(0, t0);
        w.observe(Some(1), t0 + Duration::from_secs(10));
        let death = t0 + Duration::from_secs(11);
        assert_eq!(w.verdict(Some(libc::SIGKILL), death), Some(true));
        // Another ending is not, whatever the counter did.
        assert_eq!(w.verdict(Some(libc::SIGTERM), death), Some(false));
        assert_eq!(w.verdict(None, death), Some(false));
    }

    #[test]
    fn an_old_rise_or_none_does_not_explain_a_sigkill() {
        let t0 = Instant::now();
        let mut w = watch(4, t0);
        // A count above zero from the start is not a rise.
        assert_eq!(
            w.verdict(Some(libc::SIGKILL), t0 + Duration::from_secs(1)),
            Some(false)
        );
        w.observe(Some(5), t0 + Duration::from_secs(2));
        assert_eq!(
            w.verdict(Some(libc::SIGKILL), t0 + Duration::from_secs(60)),
            Some(false)
        );
    }

    #[test]
    fn an_unreadable_counter_is_unknown() {
        let t0 = Instant::now();
        let w = OomWatch::new(Some("/nonexistent/memory.events".into()), t0);
        assert_eq!(w.verdict(Some(libc::SIGKILL), t0), None);
    }
}
