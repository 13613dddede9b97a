//! Session channels: what a client asked for before its shell, exec or
//! subsystem (a terminal, variables, agent forwarding), the process that
//! serves it, and the copying between the two until the process ends.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg, Sig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::activity::Activity;
use super::agent_forward::AgentSocket;
use super::exact::Exact;
use super::login::{self, Login};
use super::process::{self, Control, Spec, Started, Streams};

/// How long the output of a terminal is still copied after its process
/// ended: background processes may keep the terminal open forever, and a
/// login on a terminal ends with its shell.
const PTY_DRAIN: Duration = Duration::from_millis(200);

/// Longest value kept for one variable a client sends.
const MAX_ENV_VALUE: usize = 64 * 1024;

/// Most variables kept for one session.
const MAX_ENV: usize = 256;

/// A terminal a client asked for.
#[derive(Debug, Clone)]
pub struct PtyRequest {
    pub term: String,
    pub rows: u16,
    pub cols: u16,
}

/// What a session runs.
#[derive(Debug)]
pub enum Kind {
    /// The login shell.
    Shell,
    /// A command for the login shell's `-c`.
    Command(OsString),
    /// The SFTP server.
    Sftp,
    /// An exact exec from the runtime.
    Exact(Exact),
}

/// One session channel of a connection.
#[derive(Debug, Default)]
pub struct Session {
    /// The channel, until its process starts.
    pub channel: Option<Channel<Msg>>,
    pub pty: Option<PtyRequest>,
    pub env: Vec<(String, String)>,
    pub agent: Option<AgentSocket>,
    /// The running process, for signals and resizes.
    pub control: Option<Arc<Control>>,
}

impl Session {
    pub fn new(channel: Channel<Msg>) -> Self {
        Session {
            channel: Some(channel),
            ..Default::default()
        }
    }

    /// Keeps a variable the client sent, within bounds.
    pub fn set_env(&mut self, name: &str, value: &str) -> bool {
        let valid = !name.is_empty()
            && !name.contains(['=', '\0'])
            && !value.contains('\0')
            && value.len() <= MAX_ENV_VALUE;
        if !valid || self.env.len() >= MAX_ENV {
            return false;
        }
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.to_owned()));
        true
    }
}

/// The variables every login's process starts with: the agent's own (the
/// devbox's environment from its image and settings), then the login's
/// identity, the terminal and forwarded agent, then what the client sent.
fn environment(
    login: &Login,
    shell: &str,
    session: &Session,
    agent_env: &[(OsString, OsString)],
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = agent_env.to_vec();
    let mut set = |k: &str, v: &str| {
        env.retain(|(key, _)| key != k);
        env.push((k.into(), v.into()));
    };
    set("HOME", &login.home);
    set("USER", &login.name);
    set("LOGNAME", &login.name);
    set("SHELL", shell);
    if let Some(pty) = &session.pty {
        set("TERM", &pty.term);
    }
    if let Some(agent) = &session.agent {
        set("SSH_AUTH_SOCK", &agent.path().to_string_lossy());
    }
    for (k, v) in &session.env {
        set(k, v);
    }
    env
}

/// The login's home when it is a directory, else `/`.
fn home_dir(login: &Login) -> PathBuf {
    let home = PathBuf::from(&login.home);
    if home.is_dir() {
        home
    } else {
        PathBuf::from("/")
    }
}

/// What runs for `kind`.
pub fn spec(
    kind: Kind,
    login: &Login,
    session: &Session,
    agent_env: &[(OsString, OsString)],
) -> Spec {
    let pty = session.pty.as_ref().map(|p| (p.rows, p.cols));
    let shell = login::shell(login);
    let env = environment(login, &shell, session, agent_env);
    let base = |program: OsString, arg0, args| Spec {
        program,
        arg0,
        args,
        env: env.clone(),
        cwd: home_dir(login),
        ids: login.ids.clone(),
        pty,
    };
    match kind {
        Kind::Shell => {
            let name = shell.rsplit('/').next().unwrap_or("sh");
            base(
                shell.clone().into(),
                Some(format!("-{name}").into()),
                Vec::new(),
            )
        }
        Kind::Command(cmd) => base(shell.into(), None, vec!["-c".into(), cmd]),
        Kind::Sftp => base(
            "/proc/self/exe".into(),
            Some("devbox-agent".into()),
            vec!["sftp-server".into()],
        ),
        Kind::Exact(e) => {
            let mut args = e.args;
            let program = args.remove(0);
            Spec {
                program: program.clone(),
                arg0: None,
                args,
                env: e.env,
                cwd: e.cwd,
                ids: e.ids,
                pty,
            }
        }
    }
}

/// Starts the session's process on its channel and copies between them in
/// a task of its own. A process that cannot be started still gets the
/// channel an exit status (127 or 126, as a shell reports it) and the reason
/// on its standard error.
pub fn start(session: &mut Session, spec: Spec, handle: Handle, activity: Arc<Activity>) {
    let Some(channel) = session.channel.take() else {
        return;
    };
    match process::start(&spec) {
        Ok(started) => {
            session.control = Some(started.control.clone());
            tokio::spawn(async move {
                let _busy = activity.session();
                serve(channel, started, handle).await;
            });
        }
        Err(e) => {
            let code = process::spawn_failure_code(&e);
            let message = format!(
                "devbox-agent: cannot run {}: {e}\r\n",
                spec.program.to_string_lossy()
            );
            tokio::spawn(async move {
                let (_, w) = channel.split();
                let _ = w.extended_data_bytes(1, message.into_bytes()).await;
                let _ = w.exit_status(code).await;
                let _ = w.eof().await;
                let _ = w.close().await;
            });
        }
    }
}

/// Copies a process's output to the channel until its end.
async fn copy_out(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Serves one started process on its channel.
async fn serve(channel: Channel<Msg>, started: Started, handle: Handle) {
    let (mut input, output) = channel.split();
    let id = output.id();
    let Started {
        mut child, streams, ..
    } = started;
    let status = match streams {
        Streams::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            // The channel is read by one task and the process's input
            // written by another, with a queue between them: a process that
            // is slow to read its input (because its output waits for the
            // client) must never stop the reading of the channel, or the
            // connection's loop, which also takes the client's window
            // adjustments, stalls and both directions wait for each other.
            // The queue is the devbox's memory, within its limit.
            let (queue, mut queued) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
            let writer = tokio::spawn(async move {
                let mut stdin = stdin;
                while let Some(data) = queued.recv().await {
                    if stdin.write_all(&data).await.is_err() {
                        break;
                    }
                }
                // The queue's end (the client's EOF) closes the input.
            });
            let feed = tokio::spawn(async move {
                let mut queue = Some(queue);
                while let Some(msg) = input.wait().await {
                    match msg {
                        ChannelMsg::Data { data } => {
                            if let Some(q) = &queue
                                && q.send(data.to_vec()).is_err()
                            {
                                queue = None;
                            }
                        }
                        // The client's EOF closes the process's input.
                        ChannelMsg::Eof => queue = None,
                        ChannelMsg::Close => break,
                        _ => {}
                    }
                }
            });
            let out = copy_out(stdout, output.make_writer());
            let err = copy_out(stderr, output.make_writer_ext(Some(1)));
            let (status, (), ()) = tokio::join!(child.wait(), out, err);
            feed.abort();
            writer.abort();
            status
        }
        Streams::Pty(terminal) => {
            let mut writer = terminal.clone();
            let feed = tokio::spawn(async move {
                while let Some(msg) = input.wait().await {
                    match msg {
                        ChannelMsg::Data { data } if writer.write_all(&data).await.is_err() => {
                            break;
                        }
                        ChannelMsg::Close => break,
                        _ => {}
                    }
                }
            });
            let out = copy_out(terminal, output.make_writer());
            tokio::pin!(out);
            let status = tokio::select! {
                status = child.wait() => {
                    let _ = tokio::time::timeout(PTY_DRAIN, &mut out).await;
                    status
                }
                () = &mut out => child.wait().await,
            };
            feed.abort();
            status
        }
    };
    let _ = output.eof().await;
    match status {
        Ok(s) if s.code().is_some() => {
            let _ = output.exit_status(s.code().unwrap_or(0) as u32).await;
        }
        Ok(s) => {
            let sig = s.signal().unwrap_or(libc::SIGKILL);
            let name = match process::signal_name(sig) {
                Some(n) => sig_of(n),
                None => Sig::Custom(sig.to_string()),
            };
            let _ = handle
                .exit_signal_request(id, name, s.core_dumped(), String::new(), String::new())
                .await;
        }
        Err(_) => {
            let _ = output.exit_status(255).await;
        }
    }
    let _ = output.close().await;
}

/// russh's name for a signal.
fn sig_of(name: &str) -> Sig {
    match name {
        "ABRT" => Sig::ABRT,
        "ALRM" => Sig::ALRM,
        "FPE" => Sig::FPE,
        "HUP" => Sig::HUP,
        "ILL" => Sig::ILL,
        "INT" => Sig::INT,
        "KILL" => Sig::KILL,
        "PIPE" => Sig::PIPE,
        "QUIT" => Sig::QUIT,
        "SEGV" => Sig::SEGV,
        "TERM" => Sig::TERM,
        "USR1" => Sig::USR1,
        other => Sig::Custom(other.to_owned()),
    }
}

/// The name of a signal russh delivered.
pub fn sig_name(sig: &Sig) -> String {
    match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(c) => c,
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Ids;

    fn login() -> Login {
        Login {
            name: "dev".into(),
            ids: Ids {
                uid: 1000,
                gid: 1000,
                groups: vec![],
            },
            home: "/nonexistent-home".into(),
            shell: "/nonexistent/zsh".into(),
        }
    }

    fn get<'a>(env: &'a [(OsString, OsString)], k: &str) -> Option<&'a OsString> {
        env.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }

    #[test]
    fn the_environment_layers_devbox_login_terminal_and_client() {
        let mut s = Session {
            pty: Some(PtyRequest {
                term: "xterm".into(),
                rows: 24,
                cols: 80,
            }),
            ..Default::default()
        };
        assert!(s.set_env("LANG", "C.UTF-8"));
        assert!(s.set_env("HOME", "/client"));
        assert!(!s.set_env("A=B", "x"));
        assert!(!s.set_env("", "x"));
        let base = vec![
            (OsString::from("PATH"), OsString::from("/bin")),
            (OsString::from("HOME"), OsString::from("/root")),
        ];
        let spec = spec(Kind::Shell, &login(), &s, &base);
        assert_eq!(get(&spec.env, "PATH").unwrap(), "/bin");
        assert_eq!(get(&spec.env, "USER").unwrap(), "dev");
        assert_eq!(get(&spec.env, "TERM").unwrap(), "xterm");
        assert_eq!(get(&spec.env, "LANG").unwrap(), "C.UTF-8");
        // What the client sends comes last, as sshd's AcceptEnv would.
        assert_eq!(get(&spec.env, "HOME").unwrap(), "/client");
        // A shell the image lacks falls back to /bin/sh; a missing home to /.
        assert_eq!(spec.program, "/bin/sh");
        assert_eq!(spec.arg0.as_deref(), Some("-sh".as_ref()));
        assert_eq!(spec.cwd, PathBuf::from("/"));
        assert_eq!(spec.pty, Some((24, 80)));
    }

    #[test]
    fn commands_go_to_the_shell_and_exact_execs_run_as_given() {
        let s = Session::default();
        let c = spec(Kind::Command("make test".into()), &login(), &s, &[]);
        assert_eq!(c.args, ["-c", "make test"].map(OsString::from));
        let e = spec(
            Kind::Exact(Exact {
                ids: Ids::ROOT,
                cwd: "/src".into(),
                args: vec!["ls".into(), "-l".into()],
                env: vec![("A".into(), "1".into())],
            }),
            &login(),
            &s,
            &[],
        );
        assert_eq!((e.program.as_os_str(), e.args.len()), ("ls".as_ref(), 1));
        assert_eq!(e.env.len(), 1);
        assert_eq!(e.ids, Ids::ROOT);
    }

    #[test]
    fn signal_names_match_russh() {
        for n in ["TERM", "KILL", "USR1", "WINCH"] {
            assert_eq!(sig_name(&sig_of(n)), n);
        }
    }
}
