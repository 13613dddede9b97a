//! The gateway's side of a connection to a devbox's agent: an SSH client
//! that checks the agent's host key against the devbox's credential, logs
//! in with its client key, and hands the channels the agent opens (remote
//! forwarding, agent forwarding) to the user's connection.

use std::sync::Arc;

use russh::client::{self, Handle, Msg};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{Channel, ChannelOpenFailure};

use super::bridge::splice;
use crate::ops::ssh::AgentLink;

/// Why the agent could not be reached or logged in to.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the SSH handshake with the agent failed: {0}")]
    Handshake(#[source] russh::Error),
    #[error("the agent refused the control plane's credential")]
    Refused,
}

/// A logged-in connection to an agent.
pub type Upstream = Handle<AgentClient>;

/// The client side's handler: checks the host key and relays channels the
/// agent opens to the user.
#[derive(Debug)]
pub struct AgentClient {
    host: PublicKey,
    user: russh::server::Handle,
}

impl client::Handler for AgentClient {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // Keys are compared without their comments, which only files carry.
        Ok(matches!(key, PublicKeyOrCertificate::PublicKey { key, .. }
            if key.key_data() == self.host.key_data()))
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: russh::client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let user = self.user.clone();
        let (address, origin) = (connected_address.to_owned(), originator_address.to_owned());
        tokio::spawn(async move {
            match user
                .channel_open_forwarded_tcpip(address, connected_port, origin, originator_port)
                .await
            {
                Ok(to_user) => {
                    reply.accept().await;
                    splice(channel.into_stream(), to_user.into_stream()).await;
                }
                Err(_) => reply.reject(ChannelOpenFailure::ConnectFailed).await,
            }
        });
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let user = self.user.clone();
        tokio::spawn(async move {
            match user.channel_open_agent().await {
                Ok(to_user) => {
                    reply.accept().await;
                    splice(channel.into_stream(), to_user.into_stream()).await;
                }
                Err(_) => reply.reject(ChannelOpenFailure::ConnectFailed).await,
            }
        });
        Ok(())
    }
}

/// Logs in to the agent over `link`; channels the agent opens go to `user`.
pub async fn login(
    link: AgentLink,
    user: russh::server::Handle,
) -> Result<Arc<Upstream>, UpstreamError> {
    tracing::debug!(devbox = %link.devbox.name, login = %link.login, "logging in to the agent");
    let config = Arc::new(client::Config {
        nodelay: true,
        ..Default::default()
    });
    let handler = AgentClient {
        host: link.keys.host_public_key(),
        user,
    };
    let mut handle = client::connect_stream(config, link.stream, handler)
        .await
        .map_err(UpstreamError::Handshake)?;
    let key = PrivateKeyWithHashAlg::new(Arc::new(link.keys.client_key()), None);
    let auth = handle
        .authenticate_publickey(link.login, key)
        .await
        .map_err(UpstreamError::Handshake)?;
    if !auth.success() {
        return Err(UpstreamError::Refused);
    }
    Ok(Arc::new(handle))
}
