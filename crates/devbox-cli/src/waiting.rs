//! A notice on stderr while a request takes longer than a moment, so that a
//! stop waiting ten seconds for processes that ignore SIGTERM is never
//! silent.

use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long a request may take before the user is told what it waits for.
pub const QUIET: Duration = Duration::from_secs(1);

/// Awaits `work`. When it is not done after [`QUIET`], `message` goes to
/// stderr: as a spinner on a terminal, cleared once the work is done, else as
/// one plain line, which a log file keeps readable.
pub async fn with_notice<T>(message: String, work: impl Future<Output = T>) -> T {
    let mut work = std::pin::pin!(work);
    tokio::select! {
        // Biased, so that work finished just in time shows nothing.
        biased;
        out = &mut work => return out,
        () = tokio::time::sleep(QUIET) => {}
    }
    let spinner = notice(message);
    let out = work.await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    out
}

fn notice(message: String) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        eprintln!("{message}");
        return None;
    }
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .expect("a valid spinner template"),
    );
    spinner.set_message(message);
    spinner.enable_steady_tick(Duration::from_millis(120));
    Some(spinner)
}
