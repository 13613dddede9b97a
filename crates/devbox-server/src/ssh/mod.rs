//! The SSH gateway: `ssh -p 2222 NAME@host` logs in to devbox NAME.
//!
//! Users authenticate with the public keys they registered (`devbox key
//! add`); the SSH user name names the devbox. The gateway is an SSH server
//! to the user and an SSH client to the devbox's agent, reached through
//! the runtime's connection into the devbox's network namespace, and it
//! bridges every channel between the two: sessions (terminal, shell, exec,
//! SFTP, variables, signals, exit status), local forwarding (the agent
//! connects, from inside the devbox), remote forwarding (the agent listens,
//! inside the devbox) and agent forwarding. A stopped devbox is started
//! when a user logs in to it.
//!
//! Connections are bounded in number, logins in time, and each connection
//! in its channels; the HTTPS tunnel (`/api/v1/devboxes/{name}/ssh`) feeds
//! its streams to the same server.

mod bridge;
mod gateway;
mod secret;
#[cfg(test)]
mod tests;
pub mod tunnel;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use devbox_model::DevboxName;
use russh::keys::PrivateKey;
use russh::server::Config;
use russh::{MethodKind, MethodSet};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use secret::{AGENT_SECRET_FILE, AgentSecret, HOST_KEY_FILE, host_key};

use crate::state::AppState;

/// Default address of the gateway.
pub const DEFAULT_SSH_LISTEN: &str = "127.0.0.1:2222";

/// Connections served at once, logged in or not.
const MAX_CONNECTIONS: usize = 1024;

/// How long a client may take from connecting to logging in.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The gateway: its settings and host key, shared by every connection.
#[derive(Clone)]
pub struct Gateway {
    config: Arc<Config>,
    state: AppState,
    slots: Arc<Semaphore>,
    /// The host key's public half in OpenSSH's format, for known hosts.
    pub host_public_key: String,
    /// The port the gateway listens on.
    pub port: u16,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    pub fn new(state: AppState, host_key: PrivateKey, port: u16) -> Self {
        let host_public_key = host_key.public_key().to_openssh().unwrap_or_default();
        let mut methods = MethodSet::empty();
        methods.push(MethodKind::PublicKey);
        let config = Config {
            server_id: russh::SshId::Standard("SSH-2.0-devbox-gateway".into()),
            methods,
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![host_key],
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(60)),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        };
        Gateway {
            config: Arc::new(config),
            state,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            host_public_key,
            port,
        }
    }

    /// Serves one client connection, from `peer`, to its end. A connection
    /// beyond the limit is closed at once.
    /// With `route`, the connection goes to that devbox whatever the SSH
    /// user name says (the HTTPS tunnel names it in its URL).
    pub async fn serve_stream<S>(&self, stream: S, peer: String, route: Option<DevboxName>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Ok(_permit) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many SSH connections; refusing one");
            return;
        };
        let conn = gateway::Conn::new(self.state.clone(), peer.clone(), route);
        let logged_in = conn.logged_in.clone();
        let Ok(Ok(running)) = tokio::time::timeout(
            LOGIN_TIMEOUT,
            russh::server::run_stream(self.config.clone(), stream, conn),
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
        if let Err(e) = running.await {
            tracing::debug!(%peer, error = %e, "SSH connection ended");
        }
        watchdog.abort();
    }

    /// Accepts connections on `listener` for as long as the server runs.
    pub async fn run(self, listener: TcpListener) {
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept an SSH connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let gateway = self.clone();
            tokio::spawn(async move { gateway.serve_stream(socket, peer.to_string(), None).await });
        }
    }
}

/// Binds the gateway's address, saying which flag to change when taken.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen for SSH on {addr}: {e}; choose another address with --ssh-listen"
        )
    })
}
