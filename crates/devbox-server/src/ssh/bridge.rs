//! Bridging one user channel to one agent channel.
//!
//! A session channel's requests (terminal, variables, shell, exec,
//! subsystem, agent forwarding) are forwarded from the gateway's handler
//! one at a time: each waits for the agent's answer, which the copying task
//! of the agent's side hands back, before the user is answered. Data, EOF,
//! exit status and exit signal flow both ways through each channel's own
//! flow control, so a slow reader on one side slows the writer on the
//! other instead of filling memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

/// How long the agent may take to answer a request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Copies both ways between two byte streams until both ended.
pub async fn splice<A, B>(mut a: A, mut b: B)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
}

/// Waiting requests, oldest first: SSH answers a channel's requests in order.
type Replies = Arc<Mutex<VecDeque<oneshot::Sender<bool>>>>;

/// The agent's side of a bridged session channel.
#[derive(Debug)]
pub struct Session {
    pub agent: Arc<ChannelWriteHalf<russh::client::Msg>>,
    replies: Replies,
}

impl Session {
    /// Sends a request that wants an answer and waits for it: `true` when the
    /// agent granted it.
    pub async fn ask<F, Fut>(&self, send: F) -> bool
    where
        F: FnOnce(Arc<ChannelWriteHalf<russh::client::Msg>>) -> Fut,
        Fut: Future<Output = Result<(), russh::Error>>,
    {
        let (tx, rx) = oneshot::channel();
        self.replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(tx);
        if send(self.agent.clone()).await.is_err() {
            return false;
        }
        matches!(tokio::time::timeout(REPLY_TIMEOUT, rx).await, Ok(Ok(true)))
    }
}

/// Connects a user's session channel to an agent's and starts copying.
pub fn session(
    user: Channel<russh::server::Msg>,
    agent: Channel<russh::client::Msg>,
    user_handle: russh::server::Handle,
) -> Session {
    let (user_rx, user_tx) = user.split();
    let (agent_rx, agent_tx) = agent.split();
    let replies: Replies = Default::default();
    let agent_tx = Arc::new(agent_tx);
    tokio::spawn(user_to_agent(user_rx, agent_tx.clone()));
    tokio::spawn(agent_to_user(
        agent_rx,
        user_tx,
        user_handle,
        replies.clone(),
    ));
    Session {
        agent: agent_tx,
        replies,
    }
}

/// What the user sends on the channel: data and its end.
async fn user_to_agent(mut from: ChannelReadHalf, to: Arc<ChannelWriteHalf<russh::client::Msg>>) {
    while let Some(msg) = from.wait().await {
        let sent = match msg {
            ChannelMsg::Data { data } => to.data_bytes(data).await,
            ChannelMsg::Eof => to.eof().await,
            ChannelMsg::Close => break,
            // Requests reach the agent through the gateway's handler.
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = to.close().await;
}

/// What the agent sends: output, its end, the exit, and answers.
async fn agent_to_user(
    mut from: ChannelReadHalf,
    to: ChannelWriteHalf<russh::server::Msg>,
    handle: russh::server::Handle,
    replies: Replies,
) {
    let answer = |granted: bool| {
        if let Some(tx) = replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
        {
            let _ = tx.send(granted);
        }
    };
    let id = to.id();
    while let Some(msg) = from.wait().await {
        let sent = match msg {
            ChannelMsg::Data { data } => to.data_bytes(data).await,
            ChannelMsg::ExtendedData { data, ext } => to.extended_data_bytes(ext, data).await,
            ChannelMsg::Eof => to.eof().await,
            ChannelMsg::ExitStatus { exit_status } => to.exit_status(exit_status).await,
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => handle
                .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                .await
                .map_err(|()| russh::Error::SendError),
            ChannelMsg::Success => {
                answer(true);
                Ok(())
            }
            ChannelMsg::Failure => {
                answer(false);
                Ok(())
            }
            ChannelMsg::Close => break,
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
    // Whatever still waits for an answer gets a refusal.
    for tx in replies.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        let _ = tx.send(false);
    }
    let _ = to.close().await;
}
