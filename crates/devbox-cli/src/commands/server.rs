//! `server`: runs the control plane in this process. This is the only
//! command that does not go through the API.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::client::token::DEFAULT_DATA_DIR;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where the database, images, layers and devboxes live.
    #[arg(long, env = "DEVBOX_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, default_value = devbox_server::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Subnet of the devbox network, e.g. 10.77.0.0/16.
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// The runc binary (default: found on PATH).
    #[arg(long, value_name = "PATH")]
    pub runc: Option<PathBuf>,
    /// Name of the devbox bridge (default: devbox0).
    #[arg(long, value_name = "NAME")]
    pub bridge: Option<String>,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<i32> {
    devbox_server::run(devbox_server::ServerConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        subnet: args.subnet,
        runc: args.runc,
        bridge: args.bridge,
    })
    .await?;
    Ok(0)
}
