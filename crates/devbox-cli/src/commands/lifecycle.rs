//! `start`, `stop` and `restart`: one request each, which the API answers
//! when the operation is done. A wait longer than a moment is announced, and
//! a startup command that failed at once is reported.

use clap::Args;
use devbox_model::api::Devbox;
use devbox_model::{DevboxName, Operation};

use super::devbox::NameArgs;
use crate::client::error::EXIT_STARTUP_COMMAND_FAILED;
use crate::client::{Client, Json};
use crate::{output, waiting};

/// Seconds between SIGTERM and SIGKILL when `--timeout` is not given; the
/// API's documented default, repeated here only to say how long a stop waits.
pub const DEFAULT_STOP_TIMEOUT: u64 = 10;

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// Seconds its processes get to exit after SIGTERM before they are
    /// killed; default 10.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn start(client: &Client, args: NameArgs) -> anyhow::Result<i32> {
    let url = client.api_url(&["devboxes", args.name.as_str(), "start"]);
    let notice = format!("starting {}: waiting for the server", args.name);
    let d = waiting::with_notice(notice, client.post_empty::<Devbox>(url)).await?;
    report(&d, args.json, true)
}

/// `stop`, and `restart`, which stops the same way before it starts again.
pub async fn stop(client: &Client, op: Operation, args: StopArgs) -> anyhow::Result<i32> {
    let mut url = client.api_url(&["devboxes", args.name.as_str(), &op.to_string()]);
    if let Some(t) = args.timeout {
        url.query_pairs_mut().append_pair("timeout", &t.to_string());
    }
    let d = waiting::with_notice(
        stop_notice(op, &args.name, args.timeout),
        client.post_empty::<Devbox>(url),
    )
    .await?;
    report(&d, args.json, op == Operation::Restart)
}

/// What a slow stop or restart waits for.
fn stop_notice(op: Operation, name: &DevboxName, timeout: Option<u64>) -> String {
    let secs = timeout.unwrap_or(DEFAULT_STOP_TIMEOUT);
    let wait = format!("waiting up to {secs}s for its processes to exit");
    match op {
        Operation::Restart => format!("restarting {name}: {wait}, then starting it"),
        _ => format!("stopping {name}: {wait}"),
    }
}

/// Prints the new state (or the API's JSON). After a start, a startup
/// command that already failed is a warning and exit code 5, so neither a
/// person nor a script takes the devbox for healthy.
fn report(d: &Json<Devbox>, json: bool, started: bool) -> anyhow::Result<i32> {
    let devbox = &d.value;
    if json {
        output::print_raw(&d.raw)?;
    } else {
        output::print(&format!("{}: {}\n", devbox.name, output::state(devbox)))?;
    }
    match &devbox.command_status {
        Some(status) if started && output::command_failed(Some(status)) => {
            eprintln!(
                "warning: the startup command of {} {status}; see: devbox logs {}",
                devbox.name, devbox.name
            );
            Ok(EXIT_STARTUP_COMMAND_FAILED)
        }
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_stop_says_how_long_it_may_wait() {
        let web: DevboxName = "web".parse().unwrap();
        assert_eq!(
            stop_notice(Operation::Stop, &web, None),
            "stopping web: waiting up to 10s for its processes to exit"
        );
        assert_eq!(
            stop_notice(Operation::Stop, &web, Some(3)),
            "stopping web: waiting up to 3s for its processes to exit"
        );
        assert_eq!(
            stop_notice(Operation::Restart, &web, Some(0)),
            "restarting web: waiting up to 0s for its processes to exit, then starting it"
        );
    }
}
