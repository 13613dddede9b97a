//! One operation at a time per devbox.
//!
//! The persisted state already refuses an operation that conflicts with one
//! under way (see `devbox_model::state::plan`); this lock covers the short
//! read-plan-write window in which two requests could both see a settled
//! state. A request that finds the lock held by another request gets 409 at
//! once instead of queueing behind an operation it never saw. The server's
//! own passes (the reconciler, maintenance, idle auto-stop) take the lock
//! too, briefly and on their own schedule; a request that meets one of them
//! waits for it (up to [`BACKGROUND_WAIT`]) rather than failing on work the
//! user never asked for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devbox_model::DevboxName;
use tokio::sync::OwnedMutexGuard;

use crate::ops::OpError;

/// How long a request waits for a background pass that holds its devbox.
pub const BACKGROUND_WAIT: Duration = Duration::from_secs(5);

/// How often a waiting request looks again.
const POLL: Duration = Duration::from_millis(10);

/// Per-devbox locks, keyed by name (a create holds the name before any ID exists).
#[derive(Debug, Clone, Default)]
pub struct DevboxLocks {
    inner: Arc<Mutex<HashMap<DevboxName, Slot>>>,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    mutex: Arc<tokio::sync::Mutex<()>>,
    /// Set while a background pass holds the lock.
    background: Arc<AtomicBool>,
}

/// Held for the whole operation; dropping it releases the devbox.
#[derive(Debug)]
pub struct DevboxGuard {
    _guard: OwnedMutexGuard<()>,
    background: Option<Arc<AtomicBool>>,
}

impl Drop for DevboxGuard {
    fn drop(&mut self) {
        // Cleared before the mutex is released (fields drop after this).
        if let Some(flag) = &self.background {
            flag.store(false, Ordering::SeqCst);
        }
    }
}

/// Why a lock was not taken: who holds it.
enum Held {
    ByRequest,
    ByBackground,
}

impl DevboxLocks {
    /// Takes the lock of `name` for a request: fails with [`OpError::Busy`]
    /// at once when another request holds it, and after waiting up to
    /// [`BACKGROUND_WAIT`] when a background pass does.
    pub async fn lock(&self, name: &DevboxName) -> Result<DevboxGuard, OpError> {
        let began = Instant::now();
        loop {
            match self.take(name, false) {
                Ok(g) => return Ok(g),
                Err(Held::ByBackground) if began.elapsed() < BACKGROUND_WAIT => {
                    tokio::time::sleep(POLL).await;
                }
                Err(_) => return Err(OpError::Busy { name: name.clone() }),
            }
        }
    }

    /// Takes the lock of `name` for a background pass, or fails with
    /// [`OpError::Busy`] when anything holds it (the pass leaves the devbox
    /// to it).
    pub fn try_lock_background(&self, name: &DevboxName) -> Result<DevboxGuard, OpError> {
        self.take(name, true)
            .map_err(|_| OpError::Busy { name: name.clone() })
    }

    fn take(&self, name: &DevboxName, background: bool) -> Result<DevboxGuard, Held> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Forget locks nobody holds, so the map does not grow with every name ever used.
        map.retain(|_, s| Arc::strong_count(&s.mutex) > 1 || s.mutex.try_lock().is_err());
        let slot = map.entry(name.clone()).or_default().clone();
        match slot.mutex.clone().try_lock_owned() {
            Ok(guard) => {
                slot.background.store(background, Ordering::SeqCst);
                Ok(DevboxGuard {
                    _guard: guard,
                    background: background.then_some(slot.background),
                })
            }
            Err(_) if slot.background.load(Ordering::SeqCst) => Err(Held::ByBackground),
            Err(_) => Err(Held::ByRequest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_operation_conflicts_until_the_first_ends() {
        let locks = DevboxLocks::default();
        let web: DevboxName = "web".parse().unwrap();
        let db: DevboxName = "db".parse().unwrap();
        let g = locks.lock(&web).await.unwrap();
        let began = Instant::now();
        let e = locks.lock(&web).await.unwrap_err();
        assert!(
            began.elapsed() < BACKGROUND_WAIT,
            "a request never waits for a request"
        );
        assert!(matches!(e, OpError::Busy { .. }), "{e}");
        assert!(e.to_string().contains("devbox web is busy"), "{e}");
        assert!(locks.try_lock_background(&web).is_err());
        assert!(locks.lock(&db).await.is_ok());
        drop(g);
        assert!(locks.lock(&web).await.is_ok());
    }

    #[tokio::test]
    async fn a_request_waits_for_a_background_pass() {
        let locks = DevboxLocks::default();
        let web: DevboxName = "web".parse().unwrap();
        let pass = locks.try_lock_background(&web).unwrap();
        let waiting = tokio::spawn({
            let locks = locks.clone();
            let web = web.clone();
            async move { locks.lock(&web).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the request waits");
        drop(pass);
        waiting.await.unwrap().expect("the request gets the lock");
        // Once released, the flag is gone: a request that meets a request fails.
        let g = locks.lock(&web).await.unwrap();
        assert!(locks.lock(&web).await.is_err());
        drop(g);
    }
}
