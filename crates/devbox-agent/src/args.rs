//! Command-line parsing for the agent's two modes.
//!
//! - init (the default): `devbox-agent [--status-dir DIR] [--user UID:GID[:GID,...]]
//!   [--ssh-listen ADDR --ssh-keys DIR] [-- COMMAND [ARG...]]`, where
//!   everything after `--` is the startup command;
//! - ssh: `devbox-agent ssh --listen ADDR --keys DIR [--status-dir DIR]`, the SSH server that
//!   init starts (and restarts) in a process of its own;
//! - sftp-server: `devbox-agent sftp-server`, one SFTP session on standard
//!   input and output, run as the login user by the SSH server;
//! - shim: `devbox-agent shim --runc BIN --root DIR --id ID --bundle DIR
//!   --runc-log FILE --pid-file FILE --console FILE --console-max BYTES
//!   --exit-file FILE --lock-file FILE [--oom-file FILE]`.
//!
//! Parsing is strict: an unknown, repeated or missing option is refused, so
//! a runtime and an agent of different versions fail loudly instead of
//! half-working.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the agent reports its startup command unless told otherwise: the
/// directory the runtime bind-mounts read-write into every devbox.
pub const STATUS_DIR: &str = "/.devbox/run";

const INIT_USAGE: &str = "devbox-agent [--status-dir DIR] [--user UID:GID[:GID,...]] \
     [--ssh-listen ADDR --ssh-keys DIR] [-- COMMAND [ARG...]]";
const SSH_USAGE: &str = "devbox-agent ssh --listen ADDR --keys DIR [--status-dir DIR]";
const SHIM_USAGE: &str = "devbox-agent shim --runc BIN --root DIR --id ID --bundle DIR \
     --runc-log FILE --pid-file FILE --console FILE --console-max BYTES --exit-file FILE \
     --lock-file FILE [--oom-file FILE]";

/// The arguments did not match either usage.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError {
    problem: String,
    usage: &'static str,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; usage: {}", self.problem, self.usage)
    }
}

/// What the agent was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    /// Run as the devbox's init.
    Init(InitArgs),
    /// Supervise a container from the host.
    Shim(ShimArgs),
    /// Serve SSH inside the devbox.
    Ssh(SshArgs),
    /// Serve one SFTP session on standard input and output.
    SftpServer,
}

/// The user a process runs as, in numbers: the runtime resolves names
/// against the image's `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Ids {
    pub const ROOT: Ids = Ids {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
    };

    /// Parses `UID:GID` or `UID:GID:GID,GID,...`.
    pub fn parse(s: &str) -> Option<Ids> {
        let mut parts = s.splitn(3, ':');
        let uid = parts.next()?.parse().ok()?;
        let gid = parts.next()?.parse().ok()?;
        let groups = match parts.next() {
            None | Some("") => Vec::new(),
            Some(g) => g
                .split(',')
                .map(|g| g.parse().ok())
                .collect::<Option<Vec<u32>>>()?,
        };
        Some(Ids { uid, gid, groups })
    }
}

/// Where the SSH server listens and finds its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshArgs {
    pub listen: SocketAddr,
    /// Holds `host_key` (the server's OpenSSH private key) and
    /// `authorized_keys` (the one client key it accepts).
    pub keys: PathBuf,
    /// Where the server reports its activity, if anywhere.
    pub status_dir: Option<PathBuf>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct InitArgs {
    /// Where `command.json` is written.
    pub status_dir: PathBuf,
    /// The startup command, or `None` when the agent should only wait.
    pub command: Option<Vec<OsString>>,
    /// Who the startup command runs as (the agent itself stays who it
    /// is); `None`: as the agent.
    pub user: Option<Ids>,
    /// The SSH server to start and keep running, if any.
    pub ssh: Option<SshArgs>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ShimArgs {
    pub runc: PathBuf,
    /// runc's state directory (`runc --root`).
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    /// runc's own log (JSON lines), read by the runtime when a start fails.
    pub runc_log: PathBuf,
    /// Where runc writes the host PID of the container's init.
    pub pid_file: PathBuf,
    pub console: PathBuf,
    /// The most bytes `console` and its rotated predecessor hold together.
    pub console_max: u64,
    pub exit_file: PathBuf,
    /// Held locked by the shim while it lives, with its PID inside.
    pub lock_file: PathBuf,
    /// The cgroup file with the devbox's `oom_kill` counter, when known.
    pub oom_file: Option<PathBuf>,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Mode, UsageError> {
    let mut args = args.into_iter().peekable();
    if args.peek().is_some_and(|a| a == "shim") {
        args.next();
        return parse_shim(args).map(Mode::Shim);
    }
    if args.peek().is_some_and(|a| a == "ssh") {
        args.next();
        return parse_ssh(args).map(Mode::Ssh);
    }
    if args.peek().is_some_and(|a| a == "sftp-server") {
        args.next();
        if let Some(a) = args.next() {
            return Err(UsageError {
                problem: format!("unexpected argument {a:?}"),
                usage: "devbox-agent sftp-server",
            });
        }
        return Ok(Mode::SftpServer);
    }
    parse_init(args).map(Mode::Init)
}

fn init_err(problem: String) -> UsageError {
    UsageError {
        problem,
        usage: INIT_USAGE,
    }
}

fn shim_err(problem: String) -> UsageError {
    UsageError {
        problem,
        usage: SHIM_USAGE,
    }
}

fn parse_init(mut args: impl Iterator<Item = OsString>) -> Result<InitArgs, UsageError> {
    let mut status_dir: Option<PathBuf> = None;
    let mut user: Option<Ids> = None;
    let mut listen: Option<SocketAddr> = None;
    let mut keys: Option<PathBuf> = None;
    let mut command = None;
    while let Some(arg) = args.next() {
        if arg == "--" {
            let rest: Vec<OsString> = args.by_ref().collect();
            command = (!rest.is_empty()).then_some(rest);
            break;
        }
        let mut value = |name: &str| {
            args.next()
                .filter(|d| !d.is_empty())
                .ok_or_else(|| init_err(format!("{name} needs a value")))
        };
        if arg == "--status-dir" && status_dir.is_none() {
            status_dir = Some(value("--status-dir")?.into());
        } else if arg == "--user" && user.is_none() {
            let v = value("--user")?;
            user = Some(
                v.to_str()
                    .and_then(Ids::parse)
                    .ok_or_else(|| init_err(format!("--user {v:?} is not UID:GID[:GID,...]")))?,
            );
        } else if arg == "--ssh-listen" && listen.is_none() {
            let v = value("--ssh-listen")?;
            listen = Some(
                v.to_str()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| init_err(format!("--ssh-listen {v:?} is not ADDRESS:PORT")))?,
            );
        } else if arg == "--ssh-keys" && keys.is_none() {
            keys = Some(value("--ssh-keys")?.into());
        } else {
            return Err(init_err(format!("unexpected argument {arg:?}")));
        }
    }
    let ssh = match (listen, keys) {
        (Some(listen), Some(keys)) => Some(SshArgs {
            listen,
            keys,
            status_dir: None,
        }),
        (None, None) => None,
        _ => {
            return Err(init_err(
                "--ssh-listen and --ssh-keys go together".to_owned(),
            ));
        }
    };
    Ok(InitArgs {
        status_dir: status_dir.unwrap_or_else(|| STATUS_DIR.into()),
        command,
        user,
        ssh,
    })
}

fn parse_ssh(mut args: impl Iterator<Item = OsString>) -> Result<SshArgs, UsageError> {
    let err = |problem: String| UsageError {
        problem,
        usage: SSH_USAGE,
    };
    let mut listen: Option<SocketAddr> = None;
    let mut keys: Option<PathBuf> = None;
    let mut status_dir: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| err(format!("{arg:?} needs a value")))?;
        if arg == "--listen" && listen.is_none() {
            listen = Some(
                value
                    .to_str()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| err(format!("--listen {value:?} is not ADDRESS:PORT")))?,
            );
        } else if arg == "--keys" && keys.is_none() {
            keys = Some(value.into());
        } else if arg == "--status-dir" && status_dir.is_none() {
            status_dir = Some(value.into());
        } else {
            return Err(err(format!("unexpected argument {arg:?}")));
        }
    }
    match (listen, keys) {
        (Some(listen), Some(keys)) => Ok(SshArgs {
            listen,
            keys,
            status_dir,
        }),
        _ => Err(err("--listen and --keys are both needed".to_owned())),
    }
}

/// The options of shim mode, in the order of [`SHIM_USAGE`].
const SHIM_OPTIONS: [&str; 11] = [
    "--runc",
    "--root",
    "--id",
    "--bundle",
    "--runc-log",
    "--pid-file",
    "--console",
    "--console-max",
    "--exit-file",
    "--lock-file",
    "--oom-file",
];

fn parse_shim(mut args: impl Iterator<Item = OsString>) -> Result<ShimArgs, UsageError> {
    let mut values: [Option<OsString>; SHIM_OPTIONS.len()] = Default::default();
    while let Some(arg) = args.next() {
        let Some(i) = SHIM_OPTIONS.iter().position(|o| arg == OsStr::new(o)) else {
            return Err(shim_err(format!("unexpected argument {arg:?}")));
        };
        let name = SHIM_OPTIONS[i];
        if values[i].is_some() {
            return Err(shim_err(format!("{name} is given twice")));
        }
        let value = args
            .next()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| shim_err(format!("{name} needs a value")))?;
        values[i] = Some(value);
    }
    let mut take = |name: &str| -> Result<OsString, UsageError> {
        let i = SHIM_OPTIONS.iter().position(|o| *o == name).expect("known");
        values[i]
            .take()
            .ok_or_else(|| shim_err(format!("{name} is missing")))
    };
    let runc = take("--runc")?.into();
    let root = take("--root")?.into();
    let id = take("--id")?
        .into_string()
        .map_err(|id| shim_err(format!("--id {id:?} is not UTF-8")))?;
    let bundle = take("--bundle")?.into();
    let runc_log = take("--runc-log")?.into();
    let pid_file = take("--pid-file")?.into();
    let console = take("--console")?.into();
    let max = take("--console-max")?;
    let console_max = max
        .to_str()
        .and_then(|m| m.parse::<u64>().ok())
        .filter(|m| *m >= 2)
        .ok_or_else(|| {
            shim_err(format!(
                "--console-max {max:?} is not a number of bytes of at least 2"
            ))
        })?;
    let exit_file = take("--exit-file")?.into();
    let lock_file = take("--lock-file")?.into();
    let oom_file = take("--oom-file").ok().map(PathBuf::from);
    Ok(ShimArgs {
        runc,
        root,
        id,
        bundle,
        runc_log,
        pid_file,
        console,
        console_max,
        exit_file,
        lock_file,
        oom_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn init(v: &[&str]) -> Result<InitArgs, UsageError> {
        match parse(os(v))? {
            Mode::Init(a) => Ok(a),
            other => panic!("not init: {other:?}"),
        }
    }

    #[test]
    fn the_command_follows_the_separator() {
        assert_eq!(init(&[]).unwrap().command, None);
        assert_eq!(init(&["--"]).unwrap().command, None);
        let a = init(&["--", "sh", "-c", "echo --"]).unwrap();
        assert_eq!(a.command, Some(os(&["sh", "-c", "echo --"])));
        assert_eq!(a.status_dir, PathBuf::from(STATUS_DIR));
    }

    #[test]
    fn the_status_directory_may_be_moved() {
        let a = init(&["--status-dir", "/tmp/s", "--", "true"]).unwrap();
        assert_eq!(a.status_dir, PathBuf::from("/tmp/s"));
        assert_eq!(a.command, Some(os(&["true"])));
        assert!(init(&["--status-dir"]).is_err());
        assert!(init(&["--status-dir", ""]).is_err());
        assert!(init(&["--status-dir", "/a", "--status-dir", "/b"]).is_err());
    }

    #[test]
    fn the_user_and_the_ssh_server_are_read() {
        let a = init(&[
            "--user",
            "1000:100:10,999",
            "--ssh-listen",
            "127.0.0.1:22022",
            "--ssh-keys",
            "/.devbox/keys",
            "--",
            "sleep",
            "1",
        ])
        .unwrap();
        assert_eq!(
            a.user,
            Some(Ids {
                uid: 1000,
                gid: 100,
                groups: vec![10, 999]
            })
        );
        let ssh = a.ssh.unwrap();
        assert_eq!(ssh.listen.port(), 22022);
        assert_eq!(ssh.keys, PathBuf::from("/.devbox/keys"));
        assert_eq!(init(&[]).unwrap().user, None);
        assert!(init(&["--user", "dev"]).is_err());
        assert!(init(&["--ssh-listen", "127.0.0.1:1"]).is_err());
        assert!(init(&["--ssh-listen", "nowhere", "--ssh-keys", "/k"]).is_err());
    }

    #[test]
    fn ssh_and_sftp_modes_are_strict() {
        let Mode::Ssh(a) = parse(os(&["ssh", "--listen", "127.0.0.1:2", "--keys", "/k"])).unwrap()
        else {
            panic!("not ssh")
        };
        assert_eq!(a.keys, PathBuf::from("/k"));
        assert!(parse(os(&["ssh", "--listen", "127.0.0.1:2"])).is_err());
        assert!(parse(os(&["ssh", "--keys", "/k", "--keys", "/j"])).is_err());
        assert_eq!(parse(os(&["sftp-server"])).unwrap(), Mode::SftpServer);
        assert!(parse(os(&["sftp-server", "-e"])).is_err());
    }

    #[test]
    fn anything_else_is_refused() {
        let e = init(&["sh"]).unwrap_err();
        assert!(e.to_string().contains("\"sh\""), "{e}");
        assert!(e.to_string().contains("usage: devbox-agent ["), "{e}");
    }

    const FULL: &[&str] = &[
        "shim",
        "--runc",
        "/usr/sbin/runc",
        "--root",
        "/r/runc",
        "--id",
        "abc",
        "--bundle",
        "/r/b",
        "--runc-log",
        "/r/runc.log",
        "--pid-file",
        "/r/init.pid",
        "--console",
        "/r/console.log",
        "--console-max",
        "1024",
        "--exit-file",
        "/r/exit.json",
        "--lock-file",
        "/r/shim.lock",
    ];

    #[test]
    fn shim_options_are_all_read() {
        let Mode::Shim(a) = parse(os(FULL)).unwrap() else {
            panic!("not a shim")
        };
        assert_eq!(a.runc, PathBuf::from("/usr/sbin/runc"));
        assert_eq!(a.id, "abc");
        assert_eq!(a.console_max, 1024);
        assert_eq!(a.lock_file, PathBuf::from("/r/shim.lock"));
        assert_eq!(a.oom_file, None);
        let mut with_oom = os(FULL);
        with_oom.extend(os(&["--oom-file", "/cg/memory.events"]));
        let Mode::Shim(a) = parse(with_oom).unwrap() else {
            panic!("not a shim")
        };
        assert_eq!(a.oom_file, Some(PathBuf::from("/cg/memory.events")));
    }

    #[test]
    fn shim_options_are_strict() {
        let refused = |args: Vec<OsString>, why: &str| {
            let e = parse(args).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains("usage: devbox-agent shim"),
                "{e}"
            );
        };
        // Every required option, left out in turn.
        for name in SHIM_OPTIONS.iter().filter(|o| **o != "--oom-file") {
            let i = FULL.iter().position(|a| a == name).unwrap();
            let mut args = os(FULL);
            args.drain(i..i + 2);
            refused(args, &format!("{name} is missing"));
        }
        let mut twice = os(FULL);
        twice.extend(os(&["--id", "def"]));
        refused(twice, "--id is given twice");
        let mut unknown = os(FULL);
        unknown.push("--verbose".into());
        refused(unknown, "unexpected argument \"--verbose\"");
        let mut dangling = os(FULL);
        dangling.push("--oom-file".into());
        refused(dangling, "--oom-file needs a value");
        for bad in ["0", "1", "-5", "8M", ""] {
            let mut args = os(FULL);
            let i = args.iter().position(|a| a == "--console-max").unwrap();
            args[i + 1] = bad.into();
            let e = parse(args).unwrap_err().to_string();
            assert!(e.contains("--console-max"), "{bad}: {e}");
        }
    }
}
