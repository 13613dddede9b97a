//! `open NAME --ide vscode|jetbrains`: prints the link that opens the
//! devbox in the IDE, and opens it when this machine has a desktop.

use clap::{Args, ValueEnum};
use devbox_model::DevboxName;
use devbox_model::api::{Ide, IdeLink};

use crate::client::Client;
use crate::output;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum IdeArg {
    /// VS Code with Remote-SSH (through the Host entries of `devbox ssh-config`).
    Vscode,
    /// JetBrains Gateway (through the SSH gateway).
    Jetbrains,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// Which IDE the link opens.
    #[arg(long, value_enum)]
    pub ide: IdeArg,
    /// Only print the link, even on a desktop.
    #[arg(long)]
    pub print: bool,
}

pub async fn run(client: &Client, args: OpenArgs) -> anyhow::Result<i32> {
    let ide = match args.ide {
        IdeArg::Vscode => "vscode",
        IdeArg::Jetbrains => "jetbrains",
    };
    let mut url = client.api_url(&["devboxes", args.name.as_str(), "open"]);
    url.query_pairs_mut().append_pair("ide", ide);
    let link = client.get_json::<IdeLink>(url).await?.value;
    output::print(&format!("{}\n", link.url))?;
    let desktop =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !args.print && desktop {
        // A desktop without a handler for the link is not an error: the
        // link is printed.
        let _ = std::process::Command::new("xdg-open")
            .arg(&link.url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    if link.ide == Ide::Vscode {
        eprintln!(
            "(VS Code connects to {} through the Host entry `devbox ssh-config` writes)",
            link.host
        );
    }
    Ok(0)
}
