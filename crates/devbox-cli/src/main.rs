//! The `devbox` command: a thin client of the Devbox REST API (devboxes,
//! images, exec, logs), and `devbox server`, which runs the control plane.
//! Apart from `server`, nothing here touches a database or a container
//! runtime: every command is one or a few API requests.

mod client;
mod commands;
mod ndjson;
mod output;
mod progress;
mod terminal;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use client::{Client, DEFAULT_URL, error};
use commands::{devbox, exec, image, logs, server};
use devbox_model::Operation;

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    the server refused or failed the request, or a local error
  2    usage error (bad flags or arguments)
  3    not found: no such devbox or image
  4    conflict: the devbox is busy in another operation, or the name is taken
  exec: the remote command's exit code; 125 when the command could not be
       started (or the connection was lost); 126 and 127 as the server reports
       them (not executable, not found)

Environment:
  DEVBOX_URL        server URL (default http://127.0.0.1:7070)
  DEVBOX_TOKEN      API token
  DEVBOX_DATA_DIR   data directory of a local server; without a token the
                    admin token is read from DEVBOX_DATA_DIR/admin-token
                    (default /var/lib/devbox/admin-token)
  RUST_LOG          log filter, e.g. debug";

/// Cloud development environments on your own machines.
#[derive(Debug, Parser)]
#[command(name = "devbox", version, after_long_help = EXIT_CODES)]
struct Cli {
    /// URL of the devbox server.
    #[arg(
        long,
        global = true,
        env = "DEVBOX_URL",
        hide_env_values = true,
        default_value = DEFAULT_URL,
        display_order = 900
    )]
    url: String,
    /// API token; without one the admin token of a local server is used.
    #[arg(
        long,
        global = true,
        env = "DEVBOX_TOKEN",
        hide_env_values = true,
        display_order = 901
    )]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Devbox server (API, registry and runtime) on this machine.
    Server(server::ServerArgs),
    /// Manage images: import, pull, list, remove.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Create a devbox from an image (it starts stopped).
    Create(devbox::CreateArgs),
    /// Start a devbox.
    Start(devbox::NameArgs),
    /// Stop a devbox; its changes stay for the next start.
    Stop(devbox::NameArgs),
    /// Stop and start a devbox again.
    Restart(devbox::NameArgs),
    /// Delete a devbox (a running one is stopped first).
    Rm(devbox::RmArgs),
    /// List devboxes.
    Ls(devbox::LsArgs),
    /// Show one devbox.
    Show(devbox::NameArgs),
    /// Run a command in a running devbox.
    Exec(exec::ExecArgs),
    /// Print the output of a devbox's startup command.
    Logs(logs::LogsArgs),
}

fn main() {
    let cli = Cli::parse();
    init_tracing(matches!(cli.command, Command::Server(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(error::EXIT_FAILURE);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error::message(&e));
            error::exit_code(&e)
        }
    };
    // Exit without dropping the runtime: a read of stdin blocked in its
    // thread pool (exec -i) would make the drop wait for another line.
    std::process::exit(code)
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let client = || {
        let data_dir = std::env::var_os("DEVBOX_DATA_DIR").map(PathBuf::from);
        let token = client::token::discover(cli.token.clone(), data_dir.as_deref());
        Client::new(&cli.url, token)
    };
    match cli.command {
        Command::Server(args) => server::run(args).await,
        Command::Image(cmd) => image::run(&client()?, cmd).await,
        Command::Create(args) => devbox::create(&client()?, args).await,
        Command::Start(args) => devbox::lifecycle(&client()?, Operation::Start, args).await,
        Command::Stop(args) => devbox::lifecycle(&client()?, Operation::Stop, args).await,
        Command::Restart(args) => devbox::lifecycle(&client()?, Operation::Restart, args).await,
        Command::Rm(args) => devbox::rm(&client()?, args).await,
        Command::Ls(args) => devbox::ls(&client()?, args).await,
        Command::Show(args) => devbox::show(&client()?, args).await,
        Command::Exec(args) => exec::run(&client()?, args).await,
        Command::Logs(args) => logs::run(&client()?, args).await,
    }
}

/// Logs go to stderr; the client is quiet unless `RUST_LOG` asks, the
/// server reports at info level.
fn init_tracing(server: bool) {
    let default = if server { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("devbox").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["ls", "--url", "http://h:1", "--token", "t"]).unwrap();
        assert_eq!(cli.url, "http://h:1");
        assert_eq!(cli.token.as_deref(), Some("t"));
        let cli = parse(&["--url", "http://h:2", "ls", "--json"]).unwrap();
        assert_eq!(cli.url, "http://h:2");
        assert!(matches!(
            cli.command,
            Command::Ls(devbox::LsArgs { json: true })
        ));
    }

    #[test]
    fn create_parses_resources_env_and_command() {
        let cli = parse(&[
            "create",
            "web",
            "--image",
            "busybox:1",
            "--cpus",
            "0.5",
            "--memory",
            "512MiB",
            "--pids",
            "100",
            "--env",
            "A=1",
            "-e",
            "B=x=y",
            "--cmd",
            "sleep 1000",
        ])
        .unwrap();
        let Command::Create(a) = cli.command else {
            panic!("not create")
        };
        assert_eq!(a.name.as_str(), "web");
        assert_eq!(a.image.to_string(), "busybox:1");
        assert_eq!(a.cpus, Some(0.5));
        assert_eq!(a.memory, Some(devbox_model::ByteSize::mib(512)));
        assert_eq!(a.pids, Some(100));
        let env: Vec<String> = a.env.iter().map(ToString::to_string).collect();
        assert_eq!(env, ["A=1", "B=x=y"]);
        assert_eq!(a.cmd.as_deref(), Some("sleep 1000"));
    }

    #[test]
    fn invalid_values_are_usage_errors_with_clear_messages() {
        let cases: &[(&[&str], &str)] = &[
            (&["create", "Web", "--image", "b:1"], "invalid devbox name"),
            (
                &["create", "web", "--image", "B:1"],
                "invalid image reference",
            ),
            (
                &["create", "web", "--image", "b:1", "--memory", "lots"],
                "invalid size",
            ),
            (
                &["create", "web", "--image", "b:1", "--memory", "1MiB"],
                "at least 16MiB",
            ),
            (&["create", "web", "--image", "b:1", "--cpus", "0"], "cpus"),
            (
                &["create", "web", "--image", "b:1", "--cpus", "NaN"],
                "cpus",
            ),
            (&["create", "web", "--image", "b:1", "--pids", "2"], "pids"),
            (
                &["create", "web", "--image", "b:1", "-e", "1X=y"],
                "invalid environment variable",
            ),
            (&["create", "web"], "--image"),
            (&["start", "../etc"], "invalid devbox name"),
            (&["image", "rm", "Not/Valid"], "invalid image reference"),
            (&["logs", "web", "--tail", "lots"], "--tail"),
            (&["image", "pull", "b:1", "--password-stdin"], "--username"),
            (&["server", "--listen", "nowhere"], "--listen"),
        ];
        for (args, want) in cases {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            let text = e.to_string();
            assert!(text.contains(want), "{args:?}: {text}");
        }
    }

    #[test]
    fn exec_takes_the_command_after_the_flags() {
        let cli = parse(&[
            "exec", "-it", "-e", "A=1", "-w", "/tmp", "web", "--", "ls", "-la", "--color",
        ])
        .unwrap();
        let Command::Exec(a) = cli.command else {
            panic!("not exec")
        };
        assert!(a.interactive && a.tty);
        assert_eq!(a.workdir.as_deref(), Some("/tmp"));
        assert_eq!(a.name.as_str(), "web");
        assert_eq!(a.cmd, ["ls", "-la", "--color"]);
        let cli = parse(&["exec", "web", "sh", "-c", "exit 3"]).unwrap();
        let Command::Exec(a) = cli.command else {
            panic!("not exec")
        };
        assert_eq!(a.cmd, ["sh", "-c", "exit 3"]);
        assert!(!a.interactive && !a.tty);
        assert!(parse(&["exec", "web"]).is_err());
        let cli = parse(&["exec", "web", "-i", "--", "cat", "-n"]).unwrap();
        let Command::Exec(a) = cli.command else {
            panic!("not exec")
        };
        assert!(a.interactive);
        assert_eq!(a.cmd, ["cat", "-n"]);
    }

    #[test]
    fn image_commands_parse() {
        let cli = parse(&["image", "import", "./rootfs", "--name", "base:1"]).unwrap();
        let Command::Image(image::ImageCommand::Import(a)) = cli.command else {
            panic!("not import")
        };
        assert_eq!(a.path, PathBuf::from("./rootfs"));
        assert_eq!(a.name.to_string(), "base:1");
        assert!(parse(&["image", "import", "./rootfs"]).is_err());
        let cli = parse(&[
            "image",
            "pull",
            "localhost:5000/busybox:1",
            "--username",
            "u",
            "--password-stdin",
            "--insecure",
        ])
        .unwrap();
        let Command::Image(image::ImageCommand::Pull(a)) = cli.command else {
            panic!("not pull")
        };
        assert!(a.insecure && a.password_stdin);
        assert_eq!(a.username.as_deref(), Some("u"));
        assert!(parse(&["image", "ls", "--json"]).is_ok());
    }

    #[test]
    fn server_flags_have_defaults() {
        let cli = parse(&["server"]).unwrap();
        let Command::Server(a) = cli.command else {
            panic!("not server")
        };
        // DEVBOX_DATA_DIR may be set where the tests run; the flag wins over it.
        let cli = parse(&[
            "server",
            "--data-dir",
            "/srv/devbox",
            "--runc",
            "/usr/bin/runc",
        ])
        .unwrap();
        let Command::Server(b) = cli.command else {
            panic!("not server")
        };
        assert_eq!(a.listen.to_string(), "127.0.0.1:7070");
        assert_eq!(a.subnet, None);
        assert_eq!(b.data_dir, PathBuf::from("/srv/devbox"));
        assert_eq!(b.runc, Some(PathBuf::from("/usr/bin/runc")));
    }

    #[test]
    fn logs_flags_parse() {
        let cli = parse(&["logs", "web", "-f", "--tail", "20"]).unwrap();
        let Command::Logs(a) = cli.command else {
            panic!("not logs")
        };
        assert!(a.follow);
        assert_eq!(a.tail, Some(20));
    }

    #[test]
    fn long_help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("125"), "{help}");
        assert!(help.contains("DEVBOX_URL"), "{help}");
    }

    #[test]
    fn help_is_not_an_error_exit() {
        let e = parse(&["--help"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DisplayHelp);
        assert_eq!(e.exit_code(), 0);
    }
}
