//! SSH mode: the devbox's SSH server, in a process of its own that init
//! starts and restarts, so a fault here never takes PID 1 (and with it the
//! devbox) down.
//!
//! It listens inside the devbox's network namespace, where only the node
//! can reach it from outside, and accepts exactly one client key: the
//! control plane's credential for this devbox, which the runtime puts in
//! the read-only keys directory beside the server's host key. A process of
//! the devbox that reaches the port still cannot log in.
//!
//! It serves what OpenSSH's `sshd` does for IDEs and terminals: sessions
//! with or without a terminal (shell, exec, the `sftp` subsystem, variables,
//! signals, window changes, exit status and signal), local forwarding to
//! any address the devbox reaches, remote forwarding from a port inside the
//! devbox, and agent forwarding. Every login runs as the SSH user name's
//! entry in the image's `/etc/passwd`.

mod activity;
mod agent_forward;
pub mod exact;
mod forward;
pub mod login;
mod process;
mod session;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Config, Handle, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet, Sig};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::args::SshArgs;
use activity::Activity;
use login::Login;
use session::{Kind, PtyRequest};

/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 512;

/// Session channels one connection may have open.
const MAX_SESSIONS: usize = 64;

/// Forwarded connections one connection may have open.
const MAX_FORWARDED: usize = 1024;

/// Remote forwardings one connection may hold.
const MAX_LISTENERS: usize = 32;

/// How long a client may take from connecting to logging in.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The name of the activity record in the status directory.
pub const ACTIVITY_FILE: &str = "activity.json";

/// What every connection shares.
#[derive(Debug)]
struct Shared {
    authorized: PublicKey,
    /// The agent's own environment: the devbox's, from its image and
    /// settings, which every login starts from.
    env: Vec<(OsString, OsString)>,
    activity: Arc<Activity>,
}

/// Reads the host key and the one authorized client key from `dir`.
fn read_keys(dir: &Path) -> Result<(PrivateKey, PublicKey), String> {
    let host_path = dir.join("host_key");
    let host = std::fs::read_to_string(&host_path)
        .map_err(|e| format!("cannot read {}: {e}", host_path.display()))?;
    let host = PrivateKey::from_openssh(host.trim())
        .map_err(|e| format!("{} is not an OpenSSH private key: {e}", host_path.display()))?;
    let auth_path = dir.join("authorized_keys");
    let text = std::fs::read_to_string(&auth_path)
        .map_err(|e| format!("cannot read {}: {e}", auth_path.display()))?;
    let authorized = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|l| PublicKey::from_openssh(l).ok())
        .ok_or_else(|| format!("{} holds no public key", auth_path.display()))?;
    Ok((host, authorized))
}

/// The server's settings: public keys only, no timeout on idle sessions
/// (the control plane keeps connections alive), and AES-GCM first, which
/// the hardware accelerates on the machines devboxes run on.
fn config(host: PrivateKey) -> Config {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    let preferred = russh::Preferred {
        cipher: std::borrow::Cow::Borrowed(&[
            russh::cipher::AES_256_GCM,
            russh::cipher::CHACHA20_POLY1305,
            russh::cipher::AES_256_CTR,
        ]),
        ..Default::default()
    };
    Config {
        server_id: russh::SshId::Standard("SSH-2.0-devbox-agent".into()),
        methods,
        auth_rejection_time: Duration::from_millis(10),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host],
        inactivity_timeout: None,
        nodelay: true,
        preferred,
        ..Default::default()
    }
}

/// Serves SSH until the process is killed. Errors are for the console.
pub fn run(args: &SshArgs) -> Result<(), String> {
    let (host, authorized) = read_keys(&args.keys)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let activity = Arc::new(Activity::new(
            args.status_dir.as_ref().map(|d| d.join(ACTIVITY_FILE)),
        ));
        let shared = Arc::new(Shared {
            authorized,
            env: std::env::vars_os().collect(),
            activity: activity.clone(),
        });
        let writer = activity.clone();
        tokio::spawn(async move { writer.run_writer().await });
        serve(listener, Arc::new(config(host)), shared).await;
        Ok(())
    })
}

async fn serve(listener: TcpListener, config: Arc<Config>, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(e) => {
                eprintln!("devbox-agent ssh: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let (config, shared) = (config.clone(), shared.clone());
        tokio::spawn(async move {
            let logged_in = Arc::new(AtomicBool::new(false));
            let conn = Conn::new(shared, logged_in.clone());
            let Ok(Ok(running)) = tokio::time::timeout(
                LOGIN_TIMEOUT,
                russh::server::run_stream(config, socket, conn),
            )
            .await
            else {
                return;
            };
            let handle = running.handle();
            let watchdog = tokio::spawn(async move {
                tokio::time::sleep(LOGIN_TIMEOUT).await;
                if !logged_in.load(Ordering::Relaxed) {
                    let _ = handle
                        .disconnect(
                            russh::Disconnect::ByApplication,
                            "login timed out".into(),
                            String::new(),
                        )
                        .await;
                }
            });
            let _ = running.await;
            watchdog.abort();
            drop(permit);
        });
    }
}

/// One client connection.
struct Conn {
    shared: Arc<Shared>,
    logged_in: Arc<AtomicBool>,
    login: Option<Login>,
    handle: Option<Handle>,
    sessions: HashMap<ChannelId, session::Session>,
    listeners: HashMap<(String, u32), tokio::task::JoinHandle<()>>,
    forwarded: Arc<Semaphore>,
}

impl Conn {
    fn new(shared: Arc<Shared>, logged_in: Arc<AtomicBool>) -> Self {
        Conn {
            shared,
            logged_in,
            login: None,
            handle: None,
            sessions: HashMap::new(),
            listeners: HashMap::new(),
            forwarded: Arc::new(Semaphore::new(MAX_FORWARDED)),
        }
    }

    /// Starts what `kind` asks for on the session `channel`.
    fn start(&mut self, channel: ChannelId, kind: Kind, session: &mut Session) {
        let (Some(login), Some(handle)) = (&self.login, &self.handle) else {
            let _ = session.channel_failure(channel);
            return;
        };
        let Some(s) = self.sessions.get_mut(&channel) else {
            let _ = session.channel_failure(channel);
            return;
        };
        if s.channel.is_none() {
            // A second shell or exec on one channel.
            let _ = session.channel_failure(channel);
            return;
        }
        let spec = session::spec(kind, login, s, &self.shared.env);
        session::start(s, spec, handle.clone(), self.shared.activity.clone());
        let _ = session.channel_success(channel);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        for (_, task) in self.listeners.drain() {
            task.abort();
        }
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if offer.public_key.key_data() == self.shared.authorized.key_data() {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if key.public_key.key_data() != self.shared.authorized.key_data() {
            return Ok(Auth::reject());
        }
        match login::resolve_here(user) {
            Ok(login) => {
                self.login = Some(login);
                Ok(Auth::Accept)
            }
            Err(e) => {
                eprintln!("devbox-agent ssh: refused a login as {user:?}: {e}");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.logged_in.store(true, Ordering::Relaxed);
        self.handle = Some(session.handle());
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.sessions.len() >= MAX_SESSIONS {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        self.sessions
            .insert(channel.id(), session::Session::new(channel));
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.sessions.remove(&channel);
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.sessions.get_mut(&channel) {
            Some(s) if s.channel.is_some() => {
                s.pty = Some(PtyRequest {
                    term: if term.is_empty() {
                        "xterm".into()
                    } else {
                        term.into()
                    },
                    rows: u16::try_from(row_height).unwrap_or(u16::MAX).max(1),
                    cols: u16::try_from(col_width).unwrap_or(u16::MAX).max(1),
                });
                let _ = session.channel_success(channel);
            }
            _ => {
                let _ = session.channel_failure(channel);
            }
        }
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let ok = self
            .sessions
            .get_mut(&channel)
            .is_some_and(|s| s.set_env(name, value));
        let _ = if ok {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        };
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Kind::Shell, session);
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let kind = if exact::is_exact(data) {
            let root = self.login.as_ref().is_some_and(Login::is_root);
            match exact::decode(data) {
                Ok(e) if root => Kind::Exact(e),
                Ok(_) => {
                    eprintln!(
                        "devbox-agent ssh: refused an exact exec of a login that is not root"
                    );
                    let _ = session.channel_failure(channel);
                    return Ok(());
                }
                Err(e) => {
                    eprintln!("devbox-agent ssh: refused an exact exec: {e}");
                    let _ = session.channel_failure(channel);
                    return Ok(());
                }
            }
        } else {
            use std::os::unix::ffi::OsStringExt;
            Kind::Command(OsString::from_vec(data.to_vec()))
        };
        self.start(channel, kind, session);
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            self.start(channel, Kind::Sftp, session);
        } else {
            let _ = session.channel_failure(channel);
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(control) = self.sessions.get(&channel).and_then(|s| s.control.as_ref()) {
            control.resize(
                u16::try_from(row_height).unwrap_or(u16::MAX),
                u16::try_from(col_width).unwrap_or(u16::MAX),
            );
        } else if let Some(pty) = self.sessions.get_mut(&channel).and_then(|s| s.pty.as_mut()) {
            pty.rows = u16::try_from(row_height).unwrap_or(u16::MAX);
            pty.cols = u16::try_from(col_width).unwrap_or(u16::MAX);
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let control = self.sessions.get(&channel).and_then(|s| s.control.as_ref());
        if let (Some(control), Some(sig)) =
            (control, process::signal_of(&session::sig_name(&signal)))
        {
            control.signal(sig);
        }
        Ok(())
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let (Some(login), Some(handle)) = (&self.login, &self.handle) else {
            return Ok(false);
        };
        let Some(s) = self.sessions.get_mut(&channel) else {
            return Ok(false);
        };
        if s.agent.is_some() {
            return Ok(true);
        }
        match agent_forward::create(login, handle.clone(), self.shared.activity.clone()) {
            Ok(socket) => {
                s.agent = Some(socket);
                Ok(true)
            }
            Err(e) => {
                eprintln!("devbox-agent ssh: cannot set up agent forwarding: {e}");
                Ok(false)
            }
        }
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        forward::direct(
            channel,
            host_to_connect.to_owned(),
            port_to_connect,
            reply,
            self.forwarded.clone(),
            self.shared.activity.clone(),
        );
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let Some(handle) = &self.handle else {
            return Ok(false);
        };
        if self.listeners.len() >= MAX_LISTENERS {
            return Ok(false);
        }
        let Some(addr) = forward::bind_address(address, *port) else {
            return Ok(false);
        };
        match forward::listen(
            address.to_owned(),
            addr,
            handle.clone(),
            self.forwarded.clone(),
            self.shared.activity.clone(),
        )
        .await
        {
            Ok((bound, task)) => {
                if let Some(old) = self
                    .listeners
                    .insert((address.to_owned(), u32::from(bound)), task)
                {
                    old.abort();
                }
                if *port == 0 {
                    *port = u32::from(bound);
                }
                Ok(true)
            }
            Err(e) => {
                eprintln!("devbox-agent ssh: cannot listen on {addr}: {e}");
                Ok(false)
            }
        }
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        match self.listeners.remove(&(address.to_owned(), port)) {
            Some(task) => {
                task.abort();
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
