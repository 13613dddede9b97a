//! Progress reporting: throttling, and forwarding events out of blocking
//! workers.

use std::time::{Duration, Instant};

use devbox_model::api::ProgressEvent;
use tokio::sync::mpsc;

use crate::ImageError;

/// The callback import and pull report to.
pub(crate) type Progress<'a> = &'a (dyn Fn(ProgressEvent) + Send + Sync);

/// Sends events from a blocking worker to the caller's callback.
pub(crate) type ProgressSender = mpsc::UnboundedSender<ProgressEvent>;

/// Least time between two `Progress` events of one layer.
const INTERVAL: Duration = Duration::from_millis(100);

/// Lets a `Progress` event through at most once per interval.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
}

impl Throttle {
    /// Whether an event may be sent now; if so, the interval restarts.
    pub fn ready(&mut self) -> bool {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < INTERVAL => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

/// Runs blocking work on a worker thread, forwarding the events it sends to
/// `progress` as they come.
pub(crate) async fn run_blocking<T, F>(progress: Progress<'_>, work: F) -> Result<T, ImageError>
where
    T: Send + 'static,
    F: FnOnce(&ProgressSender) -> Result<T, ImageError> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::task::spawn_blocking(move || work(&tx));
    while let Some(event) = rx.recv().await {
        progress(event);
    }
    task.await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn throttle_lets_one_event_per_interval() {
        let mut t = Throttle::default();
        assert!(t.ready());
        assert!(!t.ready());
        std::thread::sleep(INTERVAL + Duration::from_millis(10));
        assert!(t.ready());
    }

    #[tokio::test]
    async fn blocking_work_reports_through_the_callback() {
        let seen = Mutex::new(Vec::new());
        let cb = |e: ProgressEvent| {
            if let ProgressEvent::Progress { current, .. } = e {
                seen.lock().unwrap().push(current);
            }
        };
        let out = run_blocking(&cb, |tx| {
            for i in 0..3 {
                tx.send(ProgressEvent::Progress {
                    digest: String::new(),
                    current: i,
                    total: 3,
                })
                .unwrap();
            }
            Ok(7)
        })
        .await
        .unwrap();
        assert_eq!(out, 7);
        assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2]);
    }
}
