//! `gc`: reclaims what no retained commit or image needs (expired commits'
//! images, unreferenced blobs, unused layer directories), or with
//! `--dry-run` says what that would be.

use clap::Args;
use devbox_model::api::{GcReport, GcRequest};

use crate::client::Client;
use crate::{output, waiting};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Say what would be reclaimed, and reclaim nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(client: &Client, args: GcArgs) -> anyhow::Result<i32> {
    let url = client.api_url(&["gc"]);
    let body = GcRequest {
        dry_run: args.dry_run,
    };
    let notice = "collecting garbage: waiting for the server".to_owned();
    let report = waiting::with_notice(notice, client.post_json::<GcReport>(url, &body)).await?;
    if args.json {
        output::print_raw(&report.raw)?;
    } else {
        output::print(&render(&report.value))?;
    }
    Ok(0)
}

/// `12 (1.5GiB)`.
fn count_and_bytes(n: u64, bytes: u64) -> String {
    format!("{n} ({})", output::size(bytes))
}

/// The report in human units; a dry run says so first.
pub fn render(r: &GcReport) -> String {
    let total = output::size(r.blob_bytes.saturating_add(r.layer_bytes));
    let (head, total) = if r.dry_run {
        (
            "dry run: nothing was removed; a gc now would reclaim this\n",
            ("Would reclaim", total),
        )
    } else {
        ("", ("Reclaimed", total))
    };
    let fields = [
        total,
        (
            "Commits expired",
            format!("{} (they stay in the history)", r.commits_expired),
        ),
        ("Manifests", r.manifests_removed.to_string()),
        ("Blobs", count_and_bytes(r.blobs_removed, r.blob_bytes)),
        (
            "Layer directories",
            count_and_bytes(r.layer_dirs_removed, r.layer_bytes),
        ),
    ];
    format!("{head}{}", output::fields_list(&fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(dry_run: bool) -> GcReport {
        GcReport {
            dry_run,
            commits_expired: 2,
            manifests_removed: 2,
            blobs_removed: 5,
            blob_bytes: 300 << 20,
            layer_dirs_removed: 3,
            layer_bytes: 1 << 30,
        }
    }

    #[test]
    fn a_report_is_in_human_units_with_the_total_first() {
        assert_eq!(
            render(&report(false)),
            "Reclaimed:          1.3GiB\n\
             Commits expired:    2 (they stay in the history)\n\
             Manifests:          2\n\
             Blobs:              5 (300MiB)\n\
             Layer directories:  3 (1GiB)\n"
        );
    }

    #[test]
    fn a_dry_run_says_nothing_was_removed() {
        let out = render(&report(true));
        assert!(
            out.starts_with("dry run: nothing was removed; a gc now would reclaim this\n"),
            "{out}"
        );
        assert!(out.contains("Would reclaim:      1.3GiB\n"), "{out}");
    }
}
