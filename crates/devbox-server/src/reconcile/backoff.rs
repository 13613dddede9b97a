//! The reconciler's error policy: a devbox whose reconciliation failed is
//! tried again after a delay that doubles with every failure, up to a
//! limit, so one broken devbox neither spins nor is forgotten.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use devbox_model::DevboxId;

const FIRST: Duration = Duration::from_secs(2);
const LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failing: HashMap<DevboxId, (u32, Instant)>,
}

/// The delay after `failures` consecutive failures.
fn delay(failures: u32) -> Duration {
    FIRST
        .saturating_mul(
            1u32.checked_shl(failures.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(LIMIT)
}

impl Backoff {
    /// Whether the devbox may be reconciled now.
    pub fn is_due(&self, id: &DevboxId) -> bool {
        self.failing
            .get(id)
            .is_none_or(|(_, next)| Instant::now() >= *next)
    }

    /// Records a failure and returns how long until the next attempt.
    pub fn failed(&mut self, id: &DevboxId) -> Duration {
        let failures = self.failing.get(id).map_or(0, |(n, _)| *n) + 1;
        let wait = delay(failures);
        self.failing
            .insert(id.clone(), (failures, Instant::now() + wait));
        wait
    }

    pub fn succeeded(&mut self, id: &DevboxId) {
        self.failing.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_limit() {
        assert_eq!(delay(1), Duration::from_secs(2));
        assert_eq!(delay(2), Duration::from_secs(4));
        assert_eq!(delay(3), Duration::from_secs(8));
        assert_eq!(delay(20), LIMIT);
        assert_eq!(delay(200), LIMIT);
    }

    #[test]
    fn a_failing_devbox_waits_and_a_success_clears_it() {
        let mut b = Backoff::default();
        let id = DevboxId::from_random([1; 8]);
        assert!(b.is_due(&id));
        assert_eq!(b.failed(&id), Duration::from_secs(2));
        assert!(!b.is_due(&id));
        assert_eq!(b.failed(&id), Duration::from_secs(4));
        b.succeeded(&id);
        assert!(b.is_due(&id));
    }
}
