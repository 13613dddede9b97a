//! `image pull`, `image ls`, `image show` and `image rm` (`image import` has
//! its own module).

use chrono::Utc;
use clap::{Args, Subcommand};
use devbox_model::ImageRef;
use devbox_model::api::{Image, PullRequest};
use reqwest::Method;
use tokio::io::AsyncReadExt;

use super::import::ImportArgs;
use crate::client::{Client, UsageError};
use crate::output;
use crate::progress::{self, LayerBars};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an image from a tar file or a directory.
    ///
    /// PATH is a tar file (an OCI layout, a `docker save` archive or a root
    /// filesystem; plain, gzip or zstd), sent as it is; an OCI layout
    /// directory (one holding `oci-layout`), archived as it is; or any other
    /// directory, archived as the root filesystem of a one-layer image.
    Import(ImportArgs),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Push a stored image to another registry (the server pushes).
    Push(super::push::PushArgs),
    /// List images.
    Ls(ListArgs),
    /// Show one image.
    Show(RefArgs),
    /// Remove an image.
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Reference to pull, e.g. localhost:5000/tools/busybox:1.
    pub reference: ImageRef,
    /// User name for the registry.
    #[arg(long)]
    pub username: Option<String>,
    /// Read the registry password from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Use plain HTTP (and accept any certificate) for this registry.
    #[arg(long)]
    pub insecure: bool,
    /// Print the server's progress events (NDJSON) instead of bars.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RefArgs {
    /// Image reference.
    pub reference: ImageRef,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Image reference.
    pub reference: ImageRef,
}

pub async fn run(client: &Client, cmd: ImageCommand) -> anyhow::Result<i32> {
    match cmd {
        ImageCommand::Import(args) => super::import::run(client, args).await,
        ImageCommand::Pull(args) => pull(client, args).await,
        ImageCommand::Push(args) => super::push::run(client, args).await,
        ImageCommand::Ls(args) => ls(client, args).await,
        ImageCommand::Show(args) => show(client, args).await,
        ImageCommand::Rm(args) => rm(client, args).await,
    }
}

async fn pull(client: &Client, args: PullArgs) -> anyhow::Result<i32> {
    let password = if args.password_stdin {
        Some(read_password().await?)
    } else {
        None
    };
    let body = PullRequest {
        reference: args.reference,
        username: args.username,
        password,
        insecure: args.insecure,
    };
    let url = client.api_url(&["images", "pull"]);
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

/// The password is everything on stdin but the final line break, so both
/// `echo pw |` and a file without a newline work.
pub(super) async fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    tokio::io::stdin().read_to_string(&mut text).await?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(UsageError("--password-stdin: standard input is empty".into()).into());
    }
    Ok(password.to_owned())
}

async fn ls(client: &Client, args: ListArgs) -> anyhow::Result<i32> {
    let list = client
        .get_json::<Vec<Image>>(client.api_url(&["images"]))
        .await?;
    if args.json {
        output::print_raw(&list.raw)?;
    } else {
        output::print(&output::image_table(&list.value, Utc::now()))?;
    }
    Ok(0)
}

async fn show(client: &Client, args: RefArgs) -> anyhow::Result<i32> {
    let reference = args.reference.to_string();
    let image = client
        .get_json::<Image>(client.api_url(&["images", &reference]))
        .await?;
    if args.json {
        output::print_raw(&image.raw)?;
    } else {
        output::print(&output::image_detail(&image.value, Utc::now()))?;
    }
    Ok(0)
}

async fn rm(client: &Client, args: RmArgs) -> anyhow::Result<i32> {
    let reference = args.reference.to_string();
    client
        .delete(client.api_url(&["images", &reference]))
        .await?;
    Ok(0)
}
