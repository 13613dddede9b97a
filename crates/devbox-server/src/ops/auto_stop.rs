//! The stop of a devbox that was idle for its whole auto-stop window. It
//! commits like every stop, and records why it happened as the devbox's
//! reason (`idle for 30m`), which `devbox show` and the web page show.

use std::time::Duration;

use devbox_model::{DevboxName, State};
use devbox_store::{DevboxRecord, Transition};

use super::read::find;
use super::task::detached;
use super::{OpResult, run};
use crate::auth::Caller;
use crate::state::AppState;

/// `30m`, `1h30m`, `45s`: how the reason names the window.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

/// Stops the devbox because it was idle for `window`, unless it stopped
/// already or became busy since the decision (a session opened, a request
/// came). Returns the record as it is after.
pub(crate) async fn stop_idle(
    state: &AppState,
    name: &DevboxName,
    window: Duration,
) -> OpResult<DevboxRecord> {
    let caller = Caller {
        token_name: "auto-stop".into(),
    };
    tracing::info!(devbox = %name, window = %human(window), "stopping an idle devbox");
    let (state, name) = (state.clone(), name.clone());
    detached(
        state.events.clone(),
        &caller,
        "auto-stop",
        &name.clone(),
        async move {
            let _guard = state.locks.try_lock_background(&name)?;
            let devbox = find(&state, &name).await?;
            let seen = state.activity.seen(&devbox.id);
            let recent = seen
                .last
                .is_some_and(|t| (chrono::Utc::now() - t).to_std().unwrap_or_default() < window);
            if devbox.state != State::Running || seen.sessions > 0 || recent {
                return Ok(devbox);
            }
            let stopping = super::transition::transition(
                &state,
                &devbox.id,
                State::Running,
                State::Stopping,
                &Transition::plain(),
            )
            .await?;
            let note = Transition::because(format!("idle for {}", human(window)));
            run::settle_stop(&state, &stopping, run::STOP_GRACE, note).await
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(1800)), "30m");
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(3601)), "1h1s");
        assert_eq!(human(Duration::ZERO), "0s");
    }
}
