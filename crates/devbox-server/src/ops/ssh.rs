//! `ssh`: a connection to a devbox's agent for the SSH gateway and the
//! HTTPS tunnel. A stopped devbox is started first (wake on connect); the
//! connection goes through the runtime into the devbox's own network
//! namespace, with the credential the devbox was started with.

use std::time::Duration;

use devbox_model::{DevboxName, State};
use devbox_runtime::{AGENT_SSH_PORT, AgentKeys, Connection, RuntimeError};
use devbox_store::DevboxRecord;

use super::read::find;
use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::AppState;

/// How long a devbox that another operation is starting may take.
const START_WAIT: Duration = Duration::from_secs(120);

/// How long the agent of a devbox that just started may take to listen.
const AGENT_WAIT: Duration = Duration::from_secs(15);

/// A connection to a devbox's agent and what to log in with.
#[derive(Debug)]
pub struct AgentLink {
    pub devbox: DevboxRecord,
    pub stream: Box<dyn Connection>,
    pub keys: AgentKeys,
    /// The user to log in as: the image's `User`, or root.
    pub login: String,
}

/// Whether `name` runs now, for a caller that wants to say it is waking it.
pub async fn is_running(state: &AppState, name: &DevboxName) -> OpResult<bool> {
    Ok(find(state, name).await?.state == State::Running)
}

/// Makes sure the devbox runs (starting a stopped one, waiting for one
/// that is starting) and connects to its agent.
pub async fn connect(state: &AppState, caller: &Caller, name: &DevboxName) -> OpResult<AgentLink> {
    let deadline = tokio::time::Instant::now() + START_WAIT;
    let devbox = loop {
        let devbox = find(state, name).await?;
        match devbox.state {
            State::Running => break devbox,
            State::Stopped | State::Error => {
                tracing::info!(%caller, devbox = %name, "waking the devbox for SSH");
                super::start::start(state, caller, name).await?;
            }
            State::Starting | State::Creating if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            state => {
                return Err(OpError::NotRunning {
                    name: name.clone(),
                    state,
                });
            }
        }
    };
    let image = state.images.resolve_digest(&devbox.image_digest).await?;
    let login = image
        .config
        .user
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".to_owned());
    let keys = state.agent_secret.keys_for(&devbox.id);
    let deadline = tokio::time::Instant::now() + AGENT_WAIT;
    let stream = loop {
        match state.runtime.connect(&devbox.id, AGENT_SSH_PORT).await {
            Ok(stream) => break stream,
            // Just started: the agent may not listen yet.
            Err(RuntimeError::Connect { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(OpError::runtime(&devbox.name, devbox.state)(e)),
        }
    };
    state.activity.touch(&devbox.id);
    Ok(AgentLink {
        devbox,
        stream,
        keys,
        login,
    })
}
