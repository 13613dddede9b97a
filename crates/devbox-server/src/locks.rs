//! One operation at a time per devbox.
//!
//! The persisted state already refuses an operation that conflicts with one
//! under way (see `devbox_model::state::plan`); this lock covers the short
//! read-plan-write window in which two requests could both see a settled
//! state. A request that finds the lock taken gets 409 at once instead of
//! queueing behind an operation it never saw.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use devbox_model::DevboxName;
use tokio::sync::OwnedMutexGuard;

use crate::ops::OpError;

/// Per-devbox locks, keyed by name (a create holds the name before any ID exists).
#[derive(Debug, Clone, Default)]
pub struct DevboxLocks {
    inner: Arc<Mutex<HashMap<DevboxName, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Held for the whole operation; dropping it releases the devbox.
#[derive(Debug)]
pub struct DevboxGuard {
    _guard: OwnedMutexGuard<()>,
}

impl DevboxLocks {
    /// Takes the lock of `name`, or fails with [`OpError::Busy`] when an
    /// operation holds it.
    pub fn try_lock(&self, name: &DevboxName) -> Result<DevboxGuard, OpError> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Forget locks nobody holds, so the map does not grow with every name ever used.
        map.retain(|_, m| Arc::strong_count(m) > 1 || m.try_lock().is_err());
        let m = map.entry(name.clone()).or_default().clone();
        let guard = m
            .try_lock_owned()
            .map_err(|_| OpError::Busy { name: name.clone() })?;
        Ok(DevboxGuard { _guard: guard })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_operation_conflicts_until_the_first_ends() {
        let locks = DevboxLocks::default();
        let web: DevboxName = "web".parse().unwrap();
        let db: DevboxName = "db".parse().unwrap();
        let g = locks.try_lock(&web).unwrap();
        let e = locks.try_lock(&web).unwrap_err();
        assert!(matches!(e, OpError::Busy { .. }), "{e}");
        assert!(e.to_string().contains("devbox web is busy"), "{e}");
        assert!(locks.try_lock(&db).is_ok());
        drop(g);
        assert!(locks.try_lock(&web).is_ok());
    }
}
