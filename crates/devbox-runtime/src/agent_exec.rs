//! Execs through the agent: the process is started by the devbox's own
//! init over its SSH server, so it is born inside the devbox with its
//! namespaces, cgroup, capabilities, limits and seccomp filter, without a
//! `runc exec` (and its container set-up) per command.
//!
//! One SSH connection per devbox, logged in as root with the devbox's
//! credential, is kept and shared; each exec is a channel on it carrying an
//! exact exec (see `exact_exec`), with a terminal when asked.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use devbox_model::{DevboxId, Signal};
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelWriteHalf, Sig};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::agent_keys::{self, AgentKeys};
use crate::error::RuntimeError;
use crate::runtime::{ExecControl, ExecReader, ExecSession, ExecWriter};

/// How long a login to the agent may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the agent may take to open a channel and answer a request.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Buffer between the channel and an exec's output readers.
const PIPE: usize = 256 * 1024;

/// Checks that the server is the devbox's agent.
#[derive(Debug)]
pub(crate) struct AgentHost(PublicKey);

impl client::Handler for AgentHost {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(matches!(key, PublicKeyOrCertificate::PublicKey { key, .. }
            if key.key_data() == self.0.key_data()))
    }
}

/// A logged-in connection to an agent.
pub(crate) type Link = Handle<AgentHost>;

/// Most idle connections kept per devbox.
const MAX_IDLE: usize = 4;

/// The idle connections of one run of a devbox.
struct Pool {
    /// Tells this run's pool from the one of an earlier or later run.
    generation: u64,
    idle: Vec<Link>,
}

/// Logged-in connections to the agents, kept between execs.
///
/// A connection carries one exec at a time: russh hands a channel's data
/// to its reader through a bounded queue and widens the peer's window as
/// soon as data arrives, so a reader that stops reading stops the whole
/// connection. One exec per connection confines that to the exec whose
/// reader stopped, as with pipes. A connection goes back to its devbox's
/// pool when its exec ended, unless the devbox stopped or restarted since
/// it was taken out: then it leads to an agent that is gone.
#[derive(Default)]
pub(crate) struct Links {
    pools: Mutex<HashMap<DevboxId, Pool>>,
    next_generation: AtomicU64,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.pools.lock().map(|l| l.len()).unwrap_or(0);
        write!(f, "Links({n} devboxes)")
    }
}

/// A connection taken out of its devbox's pool (or made for it), which
/// goes back there once its exec ended.
pub(crate) struct Lease {
    link: Link,
    /// Whether it was kept from an earlier exec, rather than made now.
    pub kept: bool,
    id: DevboxId,
    generation: u64,
    links: Arc<Links>,
}

impl Lease {
    /// Returns the connection to its pool.
    fn give_back(self) {
        if self.link.is_closed() {
            return;
        }
        let mut pools = self.links.lock();
        if let Some(pool) = pools.get_mut(&self.id)
            && pool.generation == self.generation
            && pool.idle.len() < MAX_IDLE
        {
            pool.idle.push(self.link);
        }
    }
}

fn exec_err<'a>(id: &'a DevboxId, op: &'static str) -> impl FnOnce(io::Error) -> RuntimeError + 'a {
    move |source| RuntimeError::Exec {
        id: id.clone(),
        op,
        source,
    }
}

impl Links {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DevboxId, Pool>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the connections of a devbox that stops, restarts or goes:
    /// they lead to an agent that is gone, and ones in use are not taken
    /// back.
    pub fn forget(&self, id: &DevboxId) {
        self.lock().remove(id);
    }

    /// A kept connection of the devbox that is still open, if any and
    /// wanted, and the generation of its pool (made now when there is none).
    fn take_kept(&self, id: &DevboxId, wanted: bool) -> (Option<Link>, u64) {
        let mut pools = self.lock();
        let pool = pools.entry(id.clone()).or_insert_with(|| Pool {
            generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
            idle: Vec::new(),
        });
        while wanted && let Some(link) = pool.idle.pop() {
            if !link.is_closed() {
                return (Some(link), pool.generation);
            }
        }
        (None, pool.generation)
    }

    /// A connection for one exec: a kept one unless `fresh`, else a new
    /// login. `None` when the devbox was started without a credential (its
    /// agent serves no SSH).
    pub async fn take(
        self: &Arc<Self>,
        id: &DevboxId,
        credential: &Path,
        netns: std::path::PathBuf,
        fresh: bool,
    ) -> Result<Option<Lease>, RuntimeError> {
        let (kept, generation) = self.take_kept(id, !fresh);
        let lease = |link, kept| Lease {
            link,
            kept,
            id: id.clone(),
            generation,
            links: self.clone(),
        };
        if let Some(link) = kept {
            return Ok(Some(lease(link, true)));
        }
        let Some(keys) = agent_keys::read(credential) else {
            return Ok(None);
        };
        let stream = crate::connect::connect(id, netns, crate::bundle::AGENT_SSH_PORT).await?;
        let link = tokio::time::timeout(LOGIN_TIMEOUT, login(stream, &keys))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))
            .and_then(|r| r)
            .map_err(exec_err(id, "log in to the agent"))?;
        Ok(Some(lease(link, false)))
    }
}

async fn login(stream: tokio::net::TcpStream, keys: &AgentKeys) -> io::Result<Handle<AgentHost>> {
    let config = Arc::new(client::Config {
        nodelay: true,
        ..Default::default()
    });
    let mut handle = client::connect_stream(config, stream, AgentHost(keys.host_public_key()))
        .await
        .map_err(io::Error::other)?;
    let key = PrivateKeyWithHashAlg::new(Arc::new(keys.client_key()), None);
    let auth = handle
        .authenticate_publickey("root", key)
        .await
        .map_err(io::Error::other)?;
    if !auth.success() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the agent refused the devbox's credential",
        ));
    }
    Ok(handle)
}

/// What an exec asks of the agent.
#[derive(Debug)]
pub(crate) struct Request {
    pub command: Vec<u8>,
    /// `(rows, cols, TERM)` for a terminal.
    pub tty: Option<(u16, u16, String)>,
}

/// A process started through the agent.
pub(crate) struct AgentExec {
    id: DevboxId,
    stdin: Option<ExecWriter>,
    stdout: Option<ExecReader>,
    stderr: Option<ExecReader>,
    control: Arc<AgentControl>,
    code: watch::Receiver<Option<i32>>,
}

impl std::fmt::Debug for AgentExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentExec")
            .field("id", &self.id)
            .field("code", &*self.code.borrow())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct AgentControl {
    channel: Arc<ChannelWriteHalf<client::Msg>>,
    ended: watch::Receiver<Option<i32>>,
}

/// The SSH name of a signal.
fn sig(s: Signal) -> Sig {
    match s {
        Signal::Hup => Sig::HUP,
        Signal::Int => Sig::INT,
        Signal::Quit => Sig::QUIT,
        Signal::Kill => Sig::KILL,
        Signal::Usr1 => Sig::USR1,
        Signal::Usr2 => Sig::Custom("USR2".into()),
        Signal::Term => Sig::TERM,
        Signal::Winch => Sig::Custom("WINCH".into()),
    }
}

/// The shell-style code of a signal's SSH name.
fn signal_code(name: &Sig) -> i32 {
    let n = match name {
        Sig::ABRT => 6,
        Sig::ALRM => 14,
        Sig::FPE => 8,
        Sig::HUP => 1,
        Sig::ILL => 4,
        Sig::INT => 2,
        Sig::KILL => 9,
        Sig::PIPE => 13,
        Sig::QUIT => 3,
        Sig::SEGV => 11,
        Sig::TERM => 15,
        Sig::USR1 => 10,
        Sig::Custom(c) => match c.as_str() {
            "USR2" => 12,
            "WINCH" => 28,
            other => other.parse().unwrap_or(0),
        },
    };
    128 + n
}

/// Why an exec did not start through the agent.
#[derive(Debug)]
pub(crate) enum StartError {
    /// Nothing ran: the exec may be started another way.
    NotStarted(RuntimeError),
    /// The agent was asked to start the process and did not answer: it may
    /// run, so starting it again would run it twice.
    Unanswered(RuntimeError),
}

/// Waits for the answer to the last request sent on `channel`.
async fn answer(channel: &mut russh::Channel<client::Msg>) -> Option<bool> {
    loop {
        match channel.wait().await? {
            ChannelMsg::Success => return Some(true),
            ChannelMsg::Failure => return Some(false),
            _ => {}
        }
    }
}

/// Starts `req` on the leased connection, which goes back to its pool
/// once the process ended.
pub(crate) async fn start(
    id: &DevboxId,
    lease: Lease,
    req: Request,
) -> Result<AgentExec, StartError> {
    let failed = |what: &'static str, e: io::Error| exec_err(id, what)(e);
    let timed_out = || io::Error::from(io::ErrorKind::TimedOut);
    let mut channel = tokio::time::timeout(START_TIMEOUT, lease.link.channel_open_session())
        .await
        .map_err(|_| timed_out())
        .and_then(|r| r.map_err(io::Error::other))
        .map_err(|e| StartError::NotStarted(failed("open a channel to the agent", e)))?;
    if let Some((rows, cols, term)) = &req.tty {
        // The exec waits for the terminal's answer: sent at once, it would
        // run without a terminal when the agent refused one.
        let asked = async {
            channel
                .request_pty(true, term, u32::from(*cols), u32::from(*rows), 0, 0, &[])
                .await
                .map_err(io::Error::other)?;
            match answer(&mut channel).await {
                Some(true) => Ok(()),
                _ => Err(io::Error::other("the agent refused a terminal")),
            }
        };
        tokio::time::timeout(START_TIMEOUT, asked)
            .await
            .map_err(|_| timed_out())
            .and_then(|r| r)
            .map_err(|e| StartError::NotStarted(failed("ask the agent for a terminal", e)))?;
    }
    channel.exec(true, req.command).await.map_err(|e| {
        StartError::NotStarted(failed(
            "ask the agent to start the process",
            io::Error::other(e),
        ))
    })?;
    match tokio::time::timeout(START_TIMEOUT, answer(&mut channel)).await {
        Ok(Some(true)) => {}
        // The agent refuses a request it does not run.
        Ok(Some(false)) => {
            return Err(StartError::NotStarted(failed(
                "start the process through the agent",
                io::Error::other("the agent refused the request"),
            )));
        }
        Ok(None) | Err(_) => {
            return Err(StartError::Unanswered(failed(
                "start the process through the agent",
                io::Error::other("the agent did not answer"),
            )));
        }
    }
    let (mut rx, tx) = channel.split();
    let tx = Arc::new(tx);
    let (out_w, out_r) = tokio::io::duplex(PIPE);
    let (err_w, err_r) = tokio::io::duplex(PIPE);
    let (code_tx, code) = watch::channel(None);
    tokio::spawn(async move {
        let (mut out_w, mut err_w) = (Some(out_w), Some(err_w));
        let mut code = None;
        let mut closed = false;
        while let Some(msg) = rx.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    if let Some(w) = out_w.as_mut()
                        && w.write_all(&data).await.is_err()
                    {
                        out_w = None;
                    }
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    if let Some(w) = err_w.as_mut()
                        && w.write_all(&data).await.is_err()
                    {
                        err_w = None;
                    }
                }
                ChannelMsg::Eof => {
                    out_w = None;
                    err_w = None;
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    code = Some(i32::try_from(exit_status).unwrap_or(255));
                }
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    code = Some(signal_code(&signal_name))
                }
                ChannelMsg::Close => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        drop((out_w, err_w));
        // A channel that ended without a status lost its process: as when
        // runc exec loses it, 255.
        let _ = code_tx.send(Some(code.unwrap_or(255)));
        // Only a connection whose channel ended in order serves another exec.
        if closed && code.is_some() {
            lease.give_back();
        }
    });
    let tty = req.tty.is_some();
    Ok(AgentExec {
        id: id.clone(),
        stdin: Some(Box::new(Stdin {
            writer: Box::pin(tx.make_writer()),
            channel: tx.clone(),
        })),
        stdout: Some(Box::new(out_r)),
        stderr: (!tty).then(|| Box::new(err_r) as ExecReader),
        control: Arc::new(AgentControl {
            channel: tx,
            ended: code.clone(),
        }),
        code,
    })
}

/// An exec's input: its end (a shutdown, or the writer dropped, as a
/// closed pipe) is the channel's EOF.
struct Stdin {
    writer: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    channel: Arc<ChannelWriteHalf<client::Msg>>,
}

impl tokio::io::AsyncWrite for Stdin {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.writer.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.writer.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.writer.as_mut().poll_shutdown(cx)
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        let channel = self.channel.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = channel.eof().await;
            });
        }
    }
}

impl ExecControl for AgentControl {
    fn signal(&self, s: Signal) -> Result<(), RuntimeError> {
        if self.ended.borrow().is_some() {
            return Ok(());
        }
        let channel = self.channel.clone();
        tokio::spawn(async move {
            let _ = channel.signal(sig(s)).await;
        });
        Ok(())
    }

    fn resize(&self, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        let channel = self.channel.clone();
        tokio::spawn(async move {
            let _ = channel
                .window_change(u32::from(cols), u32::from(rows), 0, 0)
                .await;
        });
        Ok(())
    }
}

#[async_trait]
impl ExecSession for AgentExec {
    fn take_stdin(&mut self) -> Option<ExecWriter> {
        self.stdin.take()
    }

    fn take_stdout(&mut self) -> Option<ExecReader> {
        self.stdout.take()
    }

    fn take_stderr(&mut self) -> Option<ExecReader> {
        self.stderr.take()
    }

    fn control(&self) -> Arc<dyn ExecControl> {
        self.control.clone()
    }

    async fn wait(&mut self) -> Result<i32, RuntimeError> {
        let id = self.id.clone();
        let code = self.code.wait_for(Option::is_some).await.map_err(|_| {
            exec_err(&id, "wait for the process")(io::Error::other("the agent's channel ended"))
        })?;
        Ok(code.expect("waited for a code"))
    }
}

impl Drop for AgentExec {
    /// An exec dropped before it ended is killed: nobody reads its output
    /// any more.
    fn drop(&mut self) {
        if self.code.borrow().is_none() {
            let _ = self.control.signal(Signal::Kill);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_have_their_ssh_names_and_shell_codes() {
        for s in Signal::ALL {
            assert_eq!(signal_code(&sig(s)), 128 + s.number(), "{s}");
        }
        assert_eq!(signal_code(&Sig::SEGV), 139);
    }
}
