//! One user connection to the gateway: authentication by registered key,
//! routing by the SSH user name (the devbox's name), and every channel
//! bridged to that devbox's agent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use devbox_model::DevboxName;
use russh::server::{Auth, ChannelOpenHandle, Handle, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure, Disconnect, Pty, Sig};
use tokio::sync::watch;

use super::bridge::{self, splice};
use super::upstream::{self, Upstream};
use crate::auth::Caller;
use crate::ops;
use crate::state::AppState;

/// Channels one connection may have open at once.
const MAX_CHANNELS: usize = 256;

/// How long a connection may wait for its devbox (and its agent) to be
/// ready, a wake included.
const READY_TIMEOUT: Duration = Duration::from_secs(150);

/// The agent connection: not yet tried, or its outcome.
type Ready = Option<Result<Arc<Upstream>, String>>;

/// One user connection.
pub struct Conn {
    state: AppState,
    pub logged_in: Arc<AtomicBool>,
    peer: String,
    /// The devbox the connection is pinned to, whatever its user name.
    route: Option<DevboxName>,
    name: Option<DevboxName>,
    caller: Option<Caller>,
    handle: Option<Handle>,
    ready_tx: watch::Sender<Ready>,
    ready: watch::Receiver<Ready>,
    /// Session channels: the user's until the first request, then bridged.
    sessions: HashMap<ChannelId, Slot>,
    channels: Arc<tokio::sync::Semaphore>,
}

enum Slot {
    Waiting(Channel<Msg>, tokio::sync::OwnedSemaphorePermit),
    Bridged(
        bridge::Session,
        #[allow(dead_code)] tokio::sync::OwnedSemaphorePermit,
    ),
}

impl Conn {
    pub fn new(state: AppState, peer: String, route: Option<DevboxName>) -> Self {
        let (ready_tx, ready) = watch::channel(None);
        Conn {
            state,
            logged_in: Arc::new(AtomicBool::new(false)),
            peer,
            route,
            name: None,
            caller: None,
            handle: None,
            ready_tx,
            ready,
            sessions: HashMap::new(),
            channels: Arc::new(tokio::sync::Semaphore::new(MAX_CHANNELS)),
        }
    }

    /// The agent connection, once ready; the error is for the user.
    async fn upstream(&self) -> Result<Arc<Upstream>, String> {
        upstream_of(self.ready.clone()).await
    }

    /// Bridges a waiting session channel to a new agent session channel.
    async fn bridged(&mut self, id: ChannelId) -> Option<&bridge::Session> {
        if let Some(Slot::Waiting(..)) = self.sessions.get(&id) {
            let Some(Slot::Waiting(user, permit)) = self.sessions.remove(&id) else {
                unreachable!()
            };
            let opened = match self.upstream().await {
                Ok(up) => up.channel_open_session().await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match opened {
                Ok(agent) => {
                    let handle = self.handle.clone().expect("bridged after login");
                    let s = bridge::session(user, agent, handle);
                    self.sessions.insert(id, Slot::Bridged(s, permit));
                }
                Err(e) => {
                    // The user learns why on the channel's error stream.
                    tokio::spawn(async move {
                        let (_, w) = user.split();
                        let _ = w
                            .extended_data_bytes(1, format!("devbox: {e}\r\n").into_bytes())
                            .await;
                        let _ = w.exit_status(255).await;
                        let _ = w.close().await;
                    });
                    return None;
                }
            }
        }
        match self.sessions.get(&id) {
            Some(Slot::Bridged(s, _)) => Some(s),
            _ => None,
        }
    }

    /// Forwards a request wanting an answer and answers the user alike.
    async fn forward<F, Fut>(&mut self, id: ChannelId, session: &mut Session, send: F)
    where
        F: FnOnce(Arc<russh::ChannelWriteHalf<russh::client::Msg>>) -> Fut,
        Fut: Future<Output = Result<(), russh::Error>>,
    {
        let granted = match self.bridged(id).await {
            Some(s) => s.ask(send).await,
            None => false,
        };
        let _ = if granted {
            session.channel_success(id)
        } else {
            session.channel_failure(id)
        };
    }

    fn bridge_of(&self, id: ChannelId) -> Option<&bridge::Session> {
        match self.sessions.get(&id) {
            Some(Slot::Bridged(s, _)) => Some(s),
            _ => None,
        }
    }
}

/// Waits for the outcome of the agent connection.
async fn upstream_of(mut ready: watch::Receiver<Ready>) -> Result<Arc<Upstream>, String> {
    let outcome = tokio::time::timeout(READY_TIMEOUT, ready.wait_for(Option::is_some)).await;
    match outcome {
        Ok(Ok(v)) => v.clone().expect("waited for Some"),
        Ok(Err(_)) => Err("the connection to the devbox ended".into()),
        Err(_) => Err("the devbox did not become ready in time".into()),
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        match ops::keys::caller_of(&self.state, offer.public_key).await {
            Ok(Some(_)) => Ok(Auth::Accept),
            Ok(None) => {
                tracing::info!(peer = %self.peer, user, fingerprint = %ops::keys::fingerprint(offer.public_key),
                    "SSH key not registered; `devbox key add` registers it");
                Ok(Auth::reject())
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot look an SSH key up");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Ok(Some(caller)) = ops::keys::caller_of(&self.state, key.public_key).await else {
            return Ok(Auth::reject());
        };
        // `<devbox>` now; `<devbox>.<owner>` names a shared one once users
        // share devboxes.
        self.name = self.route.clone().or_else(|| user.parse().ok());
        if self.name.is_none() {
            tracing::info!(peer = %self.peer, user, "SSH login names no valid devbox");
        }
        self.caller = Some(caller);
        Ok(Auth::Accept)
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.logged_in.store(true, Ordering::Relaxed);
        let handle = session.handle();
        let (Some(name), Some(caller)) = (self.name.clone(), self.caller.clone()) else {
            session.disconnect(
                Disconnect::ByApplication,
                "log in as the devbox's name, e.g. `ssh -p 2222 NAME@host`; `devbox ls` lists them",
                "",
            )?;
            return Ok(());
        };
        // Known devbox? Tell the user at once if not, before any channel.
        match ops::ssh::is_running(&self.state, &name).await {
            Err(e) => {
                session.disconnect(Disconnect::ByApplication, &e.to_string(), "")?;
                return Ok(());
            }
            Ok(running) => {
                if !running {
                    tracing::info!(devbox = %name, "SSH login wakes the devbox");
                }
            }
        }
        self.handle = Some(handle.clone());
        let (state, tx) = (self.state.clone(), self.ready_tx.clone());
        tokio::spawn(async move {
            let outcome = match ops::ssh::connect(&state, &caller, &name).await {
                Ok(link) => upstream::login(link, handle.clone())
                    .await
                    .map_err(|e| format!("devbox {name}: {e}")),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = &outcome {
                tracing::warn!(devbox = %name, error = %e, "SSH connection to the devbox failed");
                let _ = handle
                    .disconnect(Disconnect::ByApplication, e.clone(), String::new())
                    .await;
            }
            let _ = tx.send(Some(outcome));
        });
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Ok(permit) = self.channels.clone().try_acquire_owned() else {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        };
        let starting = self.ready.borrow().is_none();
        let id = channel.id();
        if starting && let Some(name) = &self.name {
            // Said on the channel's error stream while the devbox starts;
            // harmless when it was running and the agent is just slow.
            let waiting = !matches!(ops::ssh::is_running(&self.state, name).await, Ok(true));
            if waiting {
                let message = format!("devbox: starting {name}...\r\n");
                let _ = channel.extended_data_bytes(1, message.into_bytes()).await;
            }
        }
        self.sessions.insert(id, Slot::Waiting(channel, permit));
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

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (term, modes) = (term.to_owned(), modes.to_vec());
        self.forward(channel, session, |a| async move {
            a.request_pty(
                true, &term, col_width, row_height, pix_width, pix_height, &modes,
            )
            .await
        })
        .await;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.forward(channel, session, |a| async move {
            a.set_env(true, name, value).await
        })
        .await;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.forward(
            channel,
            session,
            |a| async move { a.request_shell(true).await },
        )
        .await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Exact execs are the runtime's alone: a user's command never
        // names its own user.
        if devbox_runtime::is_exact_exec(data) {
            let _ = session.channel_failure(channel);
            return Ok(());
        }
        let command = data.to_vec();
        self.forward(
            channel,
            session,
            |a| async move { a.exec(true, command).await },
        )
        .await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let name = name.to_owned();
        self.forward(channel, session, |a| async move {
            a.request_subsystem(true, name).await
        })
        .await;
        Ok(())
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(match self.bridged(channel).await {
            Some(s) => s.ask(|a| async move { a.agent_forward(true).await }).await,
            None => false,
        })
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(s) = self.bridge_of(channel) {
            let _ = s
                .agent
                .window_change(col_width, row_height, pix_width, pix_height)
                .await;
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(s) = self.bridge_of(channel) {
            let _ = s.agent.signal(signal).await;
        }
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Ok(permit) = self.channels.clone().try_acquire_owned() else {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        };
        let ready = self.ready.clone();
        let (host, origin) = (host_to_connect.to_owned(), originator_address.to_owned());
        // The connection is made by the agent, from inside the devbox.
        tokio::spawn(async move {
            let opened = match upstream_of(ready).await {
                Ok(up) => up
                    .channel_open_direct_tcpip(host, port_to_connect, origin, originator_port)
                    .await
                    .ok(),
                Err(_) => None,
            };
            match opened {
                Some(agent) => {
                    reply.accept().await;
                    splice(channel.into_stream(), agent.into_stream()).await;
                }
                None => reply.reject(ChannelOpenFailure::ConnectFailed).await,
            }
            drop(permit);
        });
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let Ok(up) = self.upstream().await else {
            return Ok(false);
        };
        match up.tcpip_forward(address, *port).await {
            Ok(bound) => {
                if *port == 0 {
                    *port = bound;
                }
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let Ok(up) = self.upstream().await else {
            return Ok(false);
        };
        Ok(up.cancel_tcpip_forward(address, port).await.is_ok())
    }
}
