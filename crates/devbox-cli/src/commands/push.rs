//! `image push`: the server copies a stored image to another registry,
//! showing a progress bar per blob.

use chrono::Utc;
use clap::Args;
use devbox_model::ImageRef;
use devbox_model::api::PushRequest;
use reqwest::Method;

use super::image::read_password;
use crate::client::Client;
use crate::output;
use crate::progress::{self, LayerBars};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The stored image, as `devbox image ls` names it, e.g. base:1.
    pub reference: ImageRef,
    /// Where it goes, e.g. registry.example.com/team/base:1.
    pub destination: ImageRef,
    /// User name for the destination registry.
    #[arg(long)]
    pub username: Option<String>,
    /// Read the registry password from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Use plain HTTP (and accept any certificate) for the destination.
    #[arg(long)]
    pub insecure: bool,
    /// Print the server's progress events (NDJSON) instead of bars.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(client: &Client, args: PushArgs) -> anyhow::Result<i32> {
    let password = if args.password_stdin {
        Some(read_password().await?)
    } else {
        None
    };
    let body = PushRequest {
        reference: args.reference,
        destination: args.destination,
        username: args.username,
        password,
        insecure: args.insecure,
    };
    let url = client.api_url(&["images", "push"]);
    let resp = client
        .send(client.request(Method::POST, url).json(&body))
        .await?;
    let mut bars = LayerBars::new(progress::multi(progress::bars_visible(args.json)));
    let image = progress::follow(resp, &mut bars, args.json).await?;
    if !args.json {
        output::print(&output::image_detail(&image, Utc::now()))?;
    }
    Ok(0)
}
