//! Idle auto-stop: a running devbox with an auto-stop window is stopped
//! once, for the whole window, it had no open session (exec, terminal,
//! upgraded ingress connection), no ingress request, and its processes
//! used less CPU than the threshold on average. So a long build or a
//! training job running in the background keeps it alive, where a devbox
//! nobody uses stops (and commits, as every stop does).
//!
//! CPU use comes from the runtime (the devbox's cgroup), sampled every
//! [`TICK`]; a devbox is never judged on less than a whole window of
//! samples, so after a server restart the window starts over.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::Utc;
use devbox_model::{DevboxId, State};

use crate::ops;
use crate::state::AppState;

/// How often devboxes are looked at.
pub const TICK: Duration = Duration::from_secs(2);

/// CPU samples of one devbox: when, and its total CPU time then.
type Samples = VecDeque<(Instant, Duration)>;

/// Whether the samples cover `window` and show less than `threshold`
/// cores used on average over it. `now` is the newest sample.
pub fn cpu_idle(samples: &Samples, window: Duration, threshold: f64) -> bool {
    let (Some(&(t_new, u_new)), Some(&(t_old, u_old))) = (samples.back(), samples.front()) else {
        return false;
    };
    let span = t_new.saturating_duration_since(t_old);
    if span < window || span.is_zero() {
        return false;
    }
    let used = u_new.saturating_sub(u_old).as_secs_f64();
    used / span.as_secs_f64() < threshold
}

/// Adds a sample, keeping only the newest one at least `window` old and
/// those after it.
fn record(samples: &mut Samples, at: Instant, usage: Duration, window: Duration) {
    samples.push_back((at, usage));
    while samples.len() > 1 && at.saturating_duration_since(samples[1].0) >= window {
        samples.pop_front();
    }
}

/// Runs the idle checks until the server stops. `threshold` is in cores
/// (0.05: 5% of one core).
pub fn spawn(state: AppState, threshold: f64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut samples: HashMap<DevboxId, Samples> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = round(&state, &mut samples, threshold).await {
                tracing::warn!("idle check failed: {e}");
            }
        }
    })
}

async fn round(
    state: &AppState,
    samples: &mut HashMap<DevboxId, Samples>,
    threshold: f64,
) -> ops::OpResult<()> {
    let devboxes = state.store.list_devboxes().await?;
    samples.retain(|id, _| {
        devboxes
            .iter()
            .any(|d| &d.id == id && d.state == State::Running)
    });
    for devbox in devboxes {
        if devbox.state != State::Running {
            continue;
        }
        let Some(window) = state.store.auto_stop(&devbox.id).await? else {
            samples.remove(&devbox.id);
            continue;
        };
        let Ok(Some(usage)) = state.runtime.cpu_usage(&devbox.id).await else {
            // Without CPU figures nothing says the devbox is idle.
            samples.remove(&devbox.id);
            continue;
        };
        let s = samples.entry(devbox.id.clone()).or_default();
        record(s, Instant::now(), usage, window);
        let seen = state.activity.seen(&devbox.id);
        let Some(last) = seen.last else {
            // First seen running (adopted after a restart): its window starts now.
            state.activity.touch(&devbox.id);
            continue;
        };
        let quiet = (Utc::now() - last).to_std().unwrap_or_default() >= window;
        if seen.sessions > 0 || !quiet || !cpu_idle(s, window, threshold) {
            continue;
        }
        samples.remove(&devbox.id);
        match ops::auto_stop::stop_idle(state, &devbox.name, window).await {
            Ok(_) | Err(ops::OpError::Busy { .. }) => {}
            Err(e) => tracing::warn!(devbox = %devbox.name, "stopping an idle devbox failed: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(points: &[(u64, u64)]) -> (Samples, Instant) {
        let t0 = Instant::now();
        let mut s = Samples::new();
        for &(t, cpu_ms) in points {
            record(
                &mut s,
                t0 + Duration::from_secs(t),
                Duration::from_millis(cpu_ms),
                Duration::from_secs(10),
            );
        }
        (s, t0)
    }

    #[test]
    fn a_quiet_window_is_idle_and_a_busy_one_is_not() {
        let w = Duration::from_secs(10);
        // 100 ms of CPU over 12 s: 0.8% of a core.
        let (s, _) = samples(&[(0, 0), (4, 50), (8, 80), (12, 100)]);
        assert!(cpu_idle(&s, w, 0.05));
        // A busy loop: a core's worth.
        let (s, _) = samples(&[(0, 0), (6, 6000), (12, 12000)]);
        assert!(!cpu_idle(&s, w, 0.05));
    }

    #[test]
    fn less_than_a_window_of_samples_is_never_idle() {
        let w = Duration::from_secs(10);
        let (s, _) = samples(&[(0, 0), (5, 0)]);
        assert!(!cpu_idle(&s, w, 0.05));
        assert!(!cpu_idle(&Samples::new(), w, 0.05));
    }

    #[test]
    fn old_samples_are_dropped_but_one_covers_the_window() {
        let (s, t0) = samples(&[(0, 0), (5, 0), (11, 0), (16, 0), (22, 0)]);
        assert_eq!(s.front().unwrap().0, t0 + Duration::from_secs(11));
        assert!(s.len() >= 2);
    }
}
