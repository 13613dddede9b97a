//! `server`: runs the control plane in this process. This is the only
//! command that does not go through the API.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::client::token::DEFAULT_DATA_DIR;

/// What `devbox server --help` adds below the flags.
const SERVER_HELP: &str = "\
The server runs in the foreground until Ctrl-C or SIGTERM; devboxes keep
running when it stops, and the next start adopts them. Use the `devbox`
client from another terminal. It finds the admin token in the data directory:
for a server started with --data-dir DIR, run it with DEVBOX_DATA_DIR=DIR.

Two servers on one machine need their own --data-dir, --listen, --ssh-listen,
--bridge and --subnet.

Environment:
  DEVBOX_DATA_DIR   default of --data-dir
  RUST_LOG          log filter (default info)
  NO_COLOR          set to anything: no colours in logs (there are none
                    unless stderr is a terminal)";

#[derive(Debug, Args)]
#[command(after_long_help = SERVER_HELP)]
pub struct ServerArgs {
    /// Where the database, images, layers, devboxes and the admin token live.
    #[arg(
        long,
        env = "DEVBOX_DATA_DIR",
        hide_env_values = true,
        default_value = DEFAULT_DATA_DIR,
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, default_value = devbox_server::DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Subnet of the devbox network, NAT'd to the outside (default: 10.77.0.0/16).
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// Linux bridge the devboxes' network interfaces attach to, created when
    /// missing (default: devbox0); one per server on a machine.
    #[arg(long, value_name = "NAME")]
    pub bridge: Option<String>,
    /// The runc binary (default: found on PATH).
    #[arg(long, value_name = "PATH")]
    pub runc: Option<PathBuf>,
    /// Address of the SSH gateway (`ssh -p PORT NAME@host` logs in to devbox NAME).
    #[arg(long, default_value = devbox_server::DEFAULT_SSH_LISTEN, value_name = "ADDR")]
    pub ssh_listen: SocketAddr,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<i32> {
    devbox_server::run(devbox_server::ServerConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        subnet: args.subnet,
        runc: args.runc,
        bridge: args.bridge,
        ssh_listen: args.ssh_listen,
    })
    .await?;
    Ok(0)
}
