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
    /// Compression of commit layers: gzip (every registry client reads it)
    /// or zstd (smaller and faster).
    #[arg(long, value_enum, default_value_t = CommitCompression::Gzip, value_name = "ALGORITHM")]
    pub commit_compression: CommitCompression,
    /// Merge a stopped devbox's own layers into one once it has more than
    /// this many.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub squash_after: usize,
    /// Keep the images of each devbox's last N commits (pinned commits and
    /// the one it runs from are kept too); older commits stay in its
    /// history with their images reclaimed.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub keep_commits: usize,
    /// Garbage collection leaves blobs younger than this alone, e.g. 10m or
    /// 1h: they may belong to a commit or upload still under way. 0s
    /// collects everything unreferenced (only safe while nothing is being
    /// committed or uploaded).
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = crate::duration::parse)]
    pub gc_grace: u64,
    /// Largest blob the registry accepts in an upload, e.g. 64g.
    #[arg(long, default_value = "64g", value_name = "SIZE")]
    pub registry_max_blob_size: devbox_model::ByteSize,
    /// Seconds after which the registry removes an upload nobody continued.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub registry_upload_timeout: u64,
    /// Where image blobs are kept: `local` (under the data directory) or
    /// s3://BUCKET[/PREFIX] on an S3-compatible service, with credentials
    /// from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[arg(long, default_value = "local", value_name = "LOCATION")]
    pub blob_store: devbox_server::BlobLocation,
    /// URL of the S3-compatible service (default: AWS); http:// allows plain HTTP.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Region of the S3 bucket (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Address of the SSH gateway (`ssh -p PORT NAME@host` logs in to devbox NAME).
    #[arg(long, default_value = devbox_server::DEFAULT_SSH_LISTEN, value_name = "ADDR")]
    pub ssh_listen: SocketAddr,
    /// Devbox ports are reached at http://<port>-<devbox>.<domain>:<listen port>/
    /// (and always at /proxy/<devbox>/<port>/); names under localhost resolve
    /// to this machine without any DNS set up.
    #[arg(long, default_value = devbox_server::DEFAULT_INGRESS_DOMAIN, value_name = "DOMAIN")]
    pub ingress_domain: String,
    /// How long a request to a port of a stopped devbox waits for it to
    /// start and listen, e.g. 30s or 2m (browsers get a page that reloads).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = crate::duration::parse)]
    pub wake_timeout: u64,
    /// A devbox with an auto-stop window counts as idle while its processes
    /// use less than this share of one CPU core on average over the window.
    #[arg(long, default_value = "5%", value_name = "PERCENT", value_parser = parse_percent)]
    pub idle_cpu: f64,
}

/// `5%` or `5`: a share of one core, as a fraction.
fn parse_percent(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("invalid percentage {s:?}: expected a number like 5%"))?;
    if !(0.0..=100.0).contains(&n) {
        return Err(format!("{s} is not between 0% and 100%"));
    }
    Ok(n / 100.0)
}

/// Compression of commit layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CommitCompression {
    Gzip,
    Zstd,
}

/// The blob store the flags name.
fn blob_store(args: &ServerArgs) -> anyhow::Result<devbox_server::BlobLocation> {
    use devbox_server::BlobLocation;
    match args.blob_store.clone() {
        BlobLocation::S3(mut s) => {
            s.endpoint = args.s3_endpoint.clone();
            s.region = args.s3_region.clone();
            Ok(BlobLocation::S3(s))
        }
        BlobLocation::Local if args.s3_endpoint.is_some() || args.s3_region.is_some() => {
            anyhow::bail!("--s3-endpoint and --s3-region need --blob-store s3://BUCKET")
        }
        BlobLocation::Local => Ok(BlobLocation::Local),
    }
}

pub async fn run(args: ServerArgs) -> anyhow::Result<i32> {
    let blob_store = blob_store(&args)?;
    devbox_server::run(devbox_server::ServerConfig {
        blob_store,
        data_dir: args.data_dir,
        listen: args.listen,
        subnet: args.subnet,
        runc: args.runc,
        bridge: args.bridge,
        commits: devbox_server::CommitPolicy {
            compression: match args.commit_compression {
                CommitCompression::Gzip => devbox_layer::compression::Compression::Gzip,
                CommitCompression::Zstd => devbox_layer::compression::Compression::Zstd,
            },
            squash_after: args.squash_after.max(1),
            keep: args.keep_commits.max(1),
            gc_grace: std::time::Duration::from_secs(args.gc_grace),
            ..devbox_server::CommitPolicy::default()
        },
        registry: devbox_server::RegistryConfig {
            max_blob_size: args.registry_max_blob_size.0,
            upload_timeout: std::time::Duration::from_secs(args.registry_upload_timeout.max(1)),
        },
        ssh_listen: args.ssh_listen,
        ingress_domain: args.ingress_domain,
        wake_timeout: std::time::Duration::from_secs(args.wake_timeout.max(1)),
        idle_cpu: args.idle_cpu,
    })
    .await?;
    Ok(0)
}
