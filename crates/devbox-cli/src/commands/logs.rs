//! `logs`: the output of a devbox's startup command, streamed as it arrives.

use anyhow::Context as _;
use clap::Args;
use devbox_model::DevboxName;
use futures::StreamExt;
use reqwest::Method;
use tokio::io::AsyncWriteExt;

use crate::client::Client;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// Keep printing new output as it is written; ends (with exit code 0)
    /// when the server ends the stream, which it does when the devbox stops.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

pub async fn run(client: &Client, args: LogsArgs) -> anyhow::Result<i32> {
    let mut url = client.api_url(&["devboxes", args.name.as_str(), "logs"]);
    {
        let mut q = url.query_pairs_mut();
        if args.follow {
            q.append_pair("follow", "true");
        }
        if let Some(n) = args.tail {
            q.append_pair("tail", &n.to_string());
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let resp = client.send(client.request(Method::GET, url)).await?;
    let mut body = resp.bytes_stream();
    let mut stdout = tokio::io::stdout();
    // The end of the body is the end of the log: the server closes a
    // followed stream when the devbox stops, and that is a success.
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the log stream from the server broke off")?;
        stdout.write_all(&chunk).await?;
        // Flushed at once: a follower wants each line when it is written.
        stdout.flush().await?;
    }
    Ok(0)
}
