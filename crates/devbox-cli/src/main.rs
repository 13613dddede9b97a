//! The `devbox` command: a thin client of the Devbox REST API (devboxes,
//! images, exec, logs), and `devbox server`, which runs the control plane.
//! Apart from `server`, nothing here touches a database or a container
//! runtime: every command is one or a few API requests.

mod client;
mod commands;
mod connection;
mod ndjson;
mod output;
mod progress;
mod terminal;
mod waiting;

mod commit_ref;
mod duration;

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use client::{Client, error};
use commands::{
    commit, devbox, diff, events, exec, gc, image, key, lifecycle, logs, open, port, release,
    server, ssh, update,
};
use connection::{Connection, On, RootConnection};
use devbox_model::Operation;

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    the server refused or failed the request, or a local error
  2    usage error (bad flags or arguments)
  3    not found: no such devbox, image or commit
  4    conflict: the devbox is busy in another operation, the name is taken,
       a commit of a devbox that is not running, a commit whose image
       retention reclaimed, a release version taken, or a release of a
       devbox with no commit
  5    start, restart: the devbox runs, but its startup command exited with a
       non-zero code or could not be started (see: devbox logs NAME)
  exec: the remote command's exit code; 125 when the command could not be
       started (or the connection was lost); 126 and 127 as the server reports
       them (not executable, not found); 130 when a second Ctrl-C gave up
       waiting for a server that did not answer

Environment:
  DEVBOX_URL        server URL (default http://127.0.0.1:7070)
  DEVBOX_TOKEN      API token
  DEVBOX_DATA_DIR   data directory of a local server; without a token the
                    admin token is read from DEVBOX_DATA_DIR/admin-token
                    (default /var/lib/devbox/admin-token), so a server started
                    with --data-dir DIR needs DEVBOX_DATA_DIR=DIR here
  RUST_LOG          log filter, e.g. debug
  NO_COLOR          set to anything: no colours in logs";

/// Cloud development environments on your own machines.
#[derive(Debug, Parser)]
#[command(name = "devbox", version, after_long_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    conn: RootConnection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Devbox server (API, registry and runtime) on this machine, in the foreground.
    Server(server::ServerArgs),
    /// Manage images: import, pull, list, remove.
    Image(ImageArgs),
    /// Create a devbox from an image, or fork one from another's commit (it starts stopped).
    Create(On<devbox::CreateArgs>),
    /// Start a devbox; exits 5 when its startup command failed at once.
    Start(On<devbox::NameArgs>),
    /// Stop a devbox; its changes stay for the next start.
    Stop(On<lifecycle::StopArgs>),
    /// Stop and start a devbox again; exits 5 when its startup command failed at once.
    Restart(On<lifecycle::StopArgs>),
    /// Change a devbox's limits (at once), environment or startup command (at its next start), or commit settings.
    Update(On<update::UpdateArgs>),
    /// Delete a devbox (a running one is stopped first).
    Rm(On<devbox::RmArgs>),
    /// List devboxes.
    Ls(On<devbox::LsArgs>),
    /// Show one devbox.
    Show(On<devbox::NameArgs>),
    /// Run a command in a running devbox.
    Exec(On<exec::ExecArgs>),
    /// Print the output of a devbox's startup command.
    Logs(On<logs::LogsArgs>),
    /// Commit a running devbox's changes now, as an image layer; it keeps running.
    Commit(On<commit::CommitArgs>),
    /// List a devbox's commits, newest first; `*` marks the one its next start runs from.
    History(On<commit::HistoryArgs>),
    /// Make a devbox's next start run from one of its commits; a running devbox restarts.
    Rollback(On<commit::RollbackArgs>),
    /// Show what a devbox's next commit would hold, and what it would leave out.
    Diff(On<diff::DiffArgs>),
    /// Reclaim the storage of expired commits and of what nothing uses.
    Gc(On<gc::GcArgs>),
    /// Manage the SSH public keys that log in to your devboxes: add, ls, rm.
    Key(KeyArgs),
    /// Log in to a devbox with OpenSSH through the HTTPS API (no SSH port needed).
    Ssh(On<ssh::SshArgs>),
    /// Print OpenSSH Host entries for your devboxes and write the gateway's host key.
    SshConfig(On<ssh::SshConfigArgs>),
    /// Print (and open where possible) the link that opens a devbox in an IDE.
    Open(On<open::OpenArgs>),
    /// Devbox ports through the ingress: list them, set their access, share signed links.
    Port(PortArgs),
    /// Print the server's live stream of state changes and operations until interrupted.
    Events(On<events::EventsArgs>),
    /// Publish a devbox's latest commit (a running one commits first) as a version,
    /// admin/NAME:VERSION in the server's registry; `release rm NAME VERSION` removes one.
    Release(release::ReleaseArgs),
    /// List a devbox's releases, newest first.
    Releases(On<release::ListArgs>),
}

/// `key` and its subcommands, with the connection flags at this level.
#[derive(Debug, Args)]
struct KeyArgs {
    #[command(subcommand)]
    command: key::KeyCommand,
    #[command(flatten)]
    conn: Connection,
}

/// `port` and its subcommands, with the connection flags at this level.
#[derive(Debug, Args)]
struct PortArgs {
    #[command(subcommand)]
    command: port::PortCommand,
    #[command(flatten)]
    conn: Connection,
}

/// `image` and its subcommands, with the connection flags at this level so
/// that they are accepted after any of them.
#[derive(Debug, Args)]
struct ImageArgs {
    #[command(subcommand)]
    command: image::ImageCommand,
    #[command(flatten)]
    conn: Connection,
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
    let root = cli.conn;
    let client = |conn: &Connection| {
        let (url, token) = connection::resolve(&root, conn);
        let data_dir = std::env::var_os("DEVBOX_DATA_DIR").map(PathBuf::from);
        let token = client::token::discover(token, data_dir.as_deref());
        Client::new(&url, token)
    };
    match cli.command {
        Command::Server(args) => server::run(args).await,
        Command::Image(a) => image::run(&client(&a.conn)?, a.command).await,
        Command::Create(a) => devbox::create(&client(&a.conn)?, a.args).await,
        Command::Start(a) => lifecycle::start(&client(&a.conn)?, a.args).await,
        Command::Stop(a) => lifecycle::stop(&client(&a.conn)?, Operation::Stop, a.args).await,
        Command::Restart(a) => lifecycle::stop(&client(&a.conn)?, Operation::Restart, a.args).await,
        Command::Update(a) => update::run(&client(&a.conn)?, a.args).await,
        Command::Rm(a) => devbox::rm(&client(&a.conn)?, a.args).await,
        Command::Ls(a) => devbox::ls(&client(&a.conn)?, a.args).await,
        Command::Show(a) => devbox::show(&client(&a.conn)?, a.args).await,
        Command::Exec(a) => exec::run(&client(&a.conn)?, a.args).await,
        Command::Logs(a) => logs::run(&client(&a.conn)?, a.args).await,
        Command::Commit(a) => commit::commit(&client(&a.conn)?, a.args).await,
        Command::History(a) => commit::history(&client(&a.conn)?, a.args).await,
        Command::Rollback(a) => commit::rollback(&client(&a.conn)?, a.args).await,
        Command::Diff(a) => diff::run(&client(&a.conn)?, a.args).await,
        Command::Gc(a) => gc::run(&client(&a.conn)?, a.args).await,
        Command::Key(a) => key::run(&client(&a.conn)?, a.command).await,
        Command::Ssh(a) => ssh::run(&client(&a.conn)?, a.args).await,
        Command::SshConfig(a) => ssh::config(&client(&a.conn)?, a.args).await,
        Command::Open(a) => open::run(&client(&a.conn)?, a.args).await,
        Command::Port(a) => port::run(&client(&a.conn)?, a.command).await,
        Command::Events(a) => events::run(&client(&a.conn)?, a.args).await,
        Command::Release(a) => release::run(&client(&a.conn)?, a).await,
        Command::Releases(a) => release::list(&client(&a.conn)?, a.args).await,
    }
}

/// Logs go to stderr; the client is quiet unless `RUST_LOG` asks, the
/// server reports at info level.
fn init_tracing(server: bool) {
    let default = if server { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// Colour codes are for a person at a terminal: a log file or journal would
/// keep them as noise. `NO_COLOR` set to anything but the empty string turns
/// them off there too, as <https://no-color.org> asks.
fn colour(terminal: bool, no_color: Option<&OsStr>) -> bool {
    terminal && no_color.is_none_or(OsStr::is_empty)
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

    /// The URL and token a parsed client command would use.
    fn connection_of(cli: &Cli) -> (String, Option<String>) {
        let conn = match &cli.command {
            Command::Ls(a) => &a.conn,
            Command::Image(a) => &a.conn,
            Command::Exec(a) => &a.conn,
            other => panic!("not a command of this test: {other:?}"),
        };
        connection::resolve(&cli.conn, conn)
    }

    #[test]
    fn connection_flags_go_before_or_after_the_subcommand() {
        let cli = parse(&["ls", "--url", "http://h:1", "--token", "t"]).unwrap();
        assert_eq!(connection_of(&cli), ("http://h:1".into(), Some("t".into())));
        let cli = parse(&["--url", "http://h:2", "ls", "--json"]).unwrap();
        assert_eq!(connection_of(&cli).0, "http://h:2");
        assert!(matches!(
            cli.command,
            Command::Ls(On {
                args: devbox::LsArgs { json: true },
                ..
            })
        ));
        let cli = parse(&["--url", "http://h:3", "ls", "--url", "http://h:4"]).unwrap();
        assert_eq!(connection_of(&cli).0, "http://h:4");
        let cli = parse(&["image", "ls", "--url", "http://h:5", "--json"]).unwrap();
        assert_eq!(connection_of(&cli).0, "http://h:5");
        let cli = parse(&["exec", "--token", "x", "web", "--", "ls", "--url", "y"]).unwrap();
        assert_eq!(connection_of(&cli).1.as_deref(), Some("x"));
        let Command::Exec(a) = cli.command else {
            panic!("not exec")
        };
        assert_eq!(a.args.cmd, ["ls", "--url", "y"]);
    }

    #[test]
    fn the_server_takes_no_client_flags() {
        let help = Cli::command()
            .find_subcommand_mut("server")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!help.contains("--url"), "{help}");
        assert!(!help.contains("--token"), "{help}");
        assert!(help.contains("--bridge"), "{help}");
        assert!(help.contains("--subnet"), "{help}");
        let e = parse(&["server", "--url", "http://h:1"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = parse(&["server", "--token", "t"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn client_help_shows_the_connection_flags() {
        for cmd in ["ls", "exec", "stop", "update"] {
            let help = Cli::command()
                .find_subcommand_mut(cmd)
                .unwrap()
                .render_long_help()
                .to_string();
            assert!(
                help.contains("--url") && help.contains("DEVBOX_URL"),
                "{help}"
            );
            assert!(
                help.contains("--token") && help.contains("DEVBOX_TOKEN"),
                "{help}"
            );
        }
    }

    #[test]
    fn colour_is_for_terminals_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new(""))));
    }

    #[test]
    fn stop_and_restart_take_a_timeout() {
        let cli = parse(&["stop", "web", "--timeout", "3"]).unwrap();
        let Command::Stop(a) = cli.command else {
            panic!("not stop")
        };
        assert_eq!(a.args.timeout, Some(3));
        let cli = parse(&["restart", "web"]).unwrap();
        let Command::Restart(a) = cli.command else {
            panic!("not restart")
        };
        assert_eq!(a.args.timeout, None);
        assert_eq!(
            parse(&["stop", "web", "--timeout", "-1"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert!(parse(&["start", "web", "--timeout", "1"]).is_err());
    }

    #[test]
    fn update_parses_every_setting() {
        let cli = parse(&[
            "update",
            "web",
            "--cpus",
            "2",
            "--memory",
            "64m",
            "--pids",
            "99",
            "-e",
            "A=1",
            "--env",
            "B=2",
            "--unset-env",
            "C",
            "--unset-env",
            "D",
            "--cmd",
            "make run",
        ])
        .unwrap();
        let Command::Update(On { args: a, .. }) = cli.command else {
            panic!("not update")
        };
        assert_eq!(a.name.as_str(), "web");
        assert_eq!(a.cpus, Some(2.0));
        assert_eq!(a.memory, Some(devbox_model::ByteSize::mib(64)));
        assert_eq!(a.pids, Some(99));
        assert_eq!(a.env.len(), 2);
        assert_eq!(a.unset_env, ["C", "D"]);
        assert_eq!(a.cmd.as_deref(), Some("make run"));
        assert!(!a.no_cmd);
        let cli = parse(&["update", "web", "--no-cmd"]).unwrap();
        let Command::Update(On { args: a, .. }) = cli.command else {
            panic!("not update")
        };
        assert!(a.no_cmd && a.cmd.is_none());
    }

    #[test]
    fn update_refuses_nothing_to_do_and_contradictions() {
        let cases: &[(&[&str], &str)] = &[
            (&["update", "web"], "--cpus"),
            (&["update", "web", "--json"], "--cpus"),
            (&["update", "web", "--cmd", "x", "--no-cmd"], "--no-cmd"),
            (&["update", "web", "--cmd", ""], "--no-cmd"),
            (&["update", "web", "--memory", "64"], "at least 16MiB"),
            (
                &["update", "web", "--unset-env", "1X"],
                "invalid environment variable name",
            ),
            (&["update", "web", "--cpus", "0"], "cpus"),
        ];
        for (args, want) in cases {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            let text = e.to_string();
            assert!(text.contains(want), "{args:?}: {text}");
        }
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
        let Command::Create(On { args: a, .. }) = cli.command else {
            panic!("not create")
        };
        assert_eq!(a.name.as_str(), "web");
        assert_eq!(a.image.unwrap().to_string(), "busybox:1");
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
            (&["create", "web", "--image", "b:1", "--cmd", " "], "empty"),
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
        let Command::Exec(On { args: a, .. }) = cli.command else {
            panic!("not exec")
        };
        assert!(a.interactive && a.tty);
        assert_eq!(a.workdir.as_deref(), Some("/tmp"));
        assert_eq!(a.name.as_str(), "web");
        assert_eq!(a.cmd, ["ls", "-la", "--color"]);
        let cli = parse(&["exec", "web", "sh", "-c", "exit 3"]).unwrap();
        let Command::Exec(On { args: a, .. }) = cli.command else {
            panic!("not exec")
        };
        assert_eq!(a.cmd, ["sh", "-c", "exit 3"]);
        assert!(!a.interactive && !a.tty);
        assert!(parse(&["exec", "web"]).is_err());
        let cli = parse(&["exec", "web", "-i", "--", "cat", "-n"]).unwrap();
        let Command::Exec(On { args: a, .. }) = cli.command else {
            panic!("not exec")
        };
        assert!(a.interactive);
        assert_eq!(a.cmd, ["cat", "-n"]);
    }

    #[test]
    fn image_commands_parse() {
        let cli = parse(&["image", "import", "./rootfs", "--name", "base:1"]).unwrap();
        let Command::Image(ImageArgs {
            command: image::ImageCommand::Import(a),
            ..
        }) = cli.command
        else {
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
        let Command::Image(ImageArgs {
            command: image::ImageCommand::Pull(a),
            ..
        }) = cli.command
        else {
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
        assert_eq!(a.gc_grace, 600);
        let cli = parse(&["server", "--gc-grace", "0s"]).unwrap();
        let Command::Server(c) = cli.command else {
            panic!("not server")
        };
        assert_eq!(c.gc_grace, 0);
        assert_eq!(
            parse(&["server", "--gc-grace", "10"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn logs_flags_parse() {
        let cli = parse(&["logs", "web", "-f", "--tail", "20"]).unwrap();
        let Command::Logs(On { args: a, .. }) = cli.command else {
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
        assert!(help.contains("  5    start, restart"), "{help}");
        assert!(help.contains("130"), "{help}");
        assert!(help.contains("DEVBOX_URL"), "{help}");
    }

    #[test]
    fn help_is_not_an_error_exit() {
        let e = parse(&["--help"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DisplayHelp);
        assert_eq!(e.exit_code(), 0);
    }
    #[test]
    fn create_takes_an_image_or_a_fork_with_commit_settings() {
        let cli = parse(&[
            "create",
            "dev",
            "--image",
            "base:1",
            "--auto-commit",
            "10m",
            "--commit-exclude",
            "/tmp,/root/.cache/**",
            "--commit-exclude",
            "/srv",
        ])
        .unwrap();
        let Command::Create(On { args: a, .. }) = cli.command else {
            panic!("not create")
        };
        assert_eq!(a.auto_commit, Some(600));
        assert_eq!(a.commit_exclude, ["/tmp", "/root/.cache/**", "/srv"]);
        let cli = parse(&["create", "dev2", "--from", "dev@0123456789abcdef"]).unwrap();
        let Command::Create(On { args: a, .. }) = cli.command else {
            panic!("not create")
        };
        assert!(a.image.is_none());
        assert_eq!(a.from.unwrap().to_string(), "dev@0123456789abcdef");
    }

    #[test]
    fn commit_flags_refuse_what_the_server_would() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["create", "d", "--image", "b:1", "--from", "dev"],
                "--from",
            ),
            (&["create", "d"], "--from"),
            (&["create", "d", "--from", "Dev"], "invalid devbox name"),
            (&["create", "d", "--from", "dev@xyz"], "invalid commit id"),
            (
                &["create", "d", "--image", "b:1", "--auto-commit", "10"],
                "90s, 10m, 1h or 1h30m",
            ),
            (
                &["create", "d", "--image", "b:1", "--auto-commit", "0s"],
                "is zero",
            ),
            (
                &["create", "d", "--image", "b:1", "--commit-exclude", "/a/[b"],
                "does not parse",
            ),
            (
                &["update", "d", "--auto-commit", "often"],
                "expected off or",
            ),
            (
                &[
                    "update",
                    "d",
                    "--commit-exclude",
                    "/a",
                    "--no-commit-exclude",
                ],
                "--no-commit-exclude",
            ),
        ];
        for (args, want) in cases {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            let text = e.to_string();
            assert!(text.contains(want), "{args:?}: {text}");
        }
    }

    #[test]
    fn release_takes_a_version_or_removes_one() {
        let cli = parse(&[
            "release",
            "web",
            "v1.0",
            "--notes",
            "first",
            "--commit",
            "0123456789ABCDEF",
            "--url",
            "http://h:1",
        ])
        .unwrap();
        let Command::Release(a) = cli.command else {
            panic!("not release")
        };
        assert!(a.command.is_none());
        assert_eq!(a.name.as_ref().unwrap().as_str(), "web");
        assert_eq!(a.version.as_deref(), Some("v1.0"));
        assert_eq!(a.conn.url.as_deref(), Some("http://h:1"));
        assert_eq!(
            serde_json::to_value(release::request("v1.0", &a)).unwrap(),
            serde_json::json!({"version": "v1.0", "notes": "first", "commit": "0123456789abcdef"})
        );
        let cli = parse(&["release", "rm", "web", "v1.0", "--token", "t"]).unwrap();
        let Command::Release(a) = cli.command else {
            panic!("not release")
        };
        let Some(release::ReleaseCommand::Rm(rm)) = a.command else {
            panic!("not release rm")
        };
        assert_eq!((rm.name.as_str(), rm.version.as_str()), ("web", "v1.0"));
        assert_eq!(a.conn.token.as_deref(), Some("t"));
        // A devbox named like the subcommand is released after `--`.
        let cli = parse(&["release", "--", "rm", "v1"]).unwrap();
        let Command::Release(a) = cli.command else {
            panic!("not release")
        };
        assert!(a.command.is_none());
        assert_eq!(a.name.as_ref().unwrap().as_str(), "rm");
        let cli = parse(&["releases", "web", "--json"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Releases(On {
                args: release::ListArgs { json: true, .. },
                ..
            })
        ));
        for bad in [
            &["release", "web"][..],
            &["release", "rm", "web"],
            &["release", "web", "v1", "--commit", "xyz"],
            &["releases"],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn update_takes_commit_settings_alone() {
        let cli = parse(&["update", "dev", "--auto-commit", "off"]).unwrap();
        let Command::Update(On { args: a, .. }) = cli.command else {
            panic!("not update")
        };
        assert_eq!(a.auto_commit, Some(0));
        let cli = parse(&["update", "dev", "--commit-exclude", "/srv/**"]).unwrap();
        let Command::Update(On { args: a, .. }) = cli.command else {
            panic!("not update")
        };
        assert_eq!(a.commit_exclude, ["/srv/**"]);
        assert!(parse(&["update", "dev", "--no-commit-exclude"]).is_ok());
    }
}
