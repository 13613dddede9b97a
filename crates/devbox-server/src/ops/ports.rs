//! Ports of a devbox and their ingress access: the ports it listens on
//! (as the node sees them) with their settings, changing a port's access
//! level, signed links and their revocation, and the start a request to a
//! stopped devbox's port makes.

use chrono::{DateTime, Utc};
use devbox_model::{DevboxName, State};
use devbox_store::{DevboxRecord, PortAccess, PortRecord};

use super::read::find;
use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::AppState;

/// Longest a signed link may last.
pub const MAX_LINK_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// A port as `devbox port ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub port: u16,
    pub access: PortAccess,
    pub listening: bool,
}

/// A fresh link key: 128 random bits in hex.
fn new_key() -> String {
    let mut b = [0u8; 16];
    // The kernel's random source does not fail once the system has booted.
    getrandom::fill(&mut b).expect("random bytes for a link key");
    hex::encode(b)
}

/// Refuses a port the ingress never reaches.
fn refuse_reserved(name: &DevboxName, port: u16) -> OpResult<()> {
    if crate::ingress::RESERVED.contains(&port) {
        return Err(OpError::ReservedPort {
            name: name.clone(),
            port,
        });
    }
    Ok(())
}

/// The ports the devbox listens on and those with settings, by number.
pub async fn list(state: &AppState, caller: &Caller, name: &DevboxName) -> OpResult<Vec<PortInfo>> {
    tracing::debug!(%caller, devbox = %name, "list ports");
    let devbox = find(state, name).await?;
    let listening = if devbox.state == State::Running {
        match state.runtime.listening_ports(&devbox.id).await {
            Ok(p) => p,
            // It stopped between the read and the look.
            Err(devbox_runtime::RuntimeError::NotRunning { .. }) => Vec::new(),
            Err(e) => return Err(OpError::runtime(name, devbox.state)(e)),
        }
    } else {
        Vec::new()
    };
    let settings = state.store.list_ports(&devbox.id).await?;
    let mut ports: Vec<u16> = listening
        .iter()
        .copied()
        .chain(settings.iter().map(|s| s.port))
        .filter(|p| !crate::ingress::RESERVED.contains(p))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    Ok(ports
        .into_iter()
        .map(|port| PortInfo {
            port,
            access: settings
                .iter()
                .find(|s| s.port == port)
                .map_or(PortAccess::Private, |s| s.access),
            listening: listening.contains(&port),
        })
        .collect())
}

/// Sets who may reach `port` of the devbox.
pub async fn set_access(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    port: u16,
    access: PortAccess,
) -> OpResult<(DevboxRecord, PortRecord)> {
    tracing::info!(%caller, devbox = %name, port, access = access.as_str(), "set port access");
    let devbox = find(state, name).await?;
    refuse_reserved(name, port)?;
    let record = state
        .store
        .set_port_access(&devbox.id, port, access, &new_key())
        .await?;
    Ok((devbox, record))
}

/// A signed link to `port` of the devbox valid for `lifetime`: the query
/// value that carries it, and its expiry.
pub async fn share(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    port: u16,
    lifetime: std::time::Duration,
) -> OpResult<(String, DateTime<Utc>)> {
    tracing::info!(%caller, devbox = %name, port, ?lifetime, "share port");
    let devbox = find(state, name).await?;
    refuse_reserved(name, port)?;
    let record = match state.store.get_port(&devbox.id, port).await? {
        Some(r) => r,
        None => {
            state
                .store
                .set_link_key(&devbox.id, port, &new_key())
                .await?
        }
    };
    let lifetime = lifetime.min(MAX_LINK_LIFETIME);
    let expires = Utc::now()
        + chrono::Duration::from_std(lifetime).unwrap_or_else(|_| chrono::Duration::hours(1));
    let value =
        crate::ingress::sign_link(&state.secret, &devbox.id, port, expires, &record.link_key);
    Ok((value, expires))
}

/// Revokes every signed link to `port` of the devbox.
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    port: u16,
) -> OpResult<()> {
    tracing::info!(%caller, devbox = %name, port, "revoke port links");
    let devbox = find(state, name).await?;
    state
        .store
        .set_link_key(&devbox.id, port, &new_key())
        .await?;
    Ok(())
}

/// Starts a stopped devbox because a request came for one of its ports
/// (the request passed the port's access check). Runs in its own task.
pub fn wake(
    state: &AppState,
    name: &DevboxName,
) -> tokio::task::JoinHandle<OpResult<DevboxRecord>> {
    let (state, name) = (state.clone(), name.clone());
    tokio::spawn(async move {
        let caller = Caller {
            token_name: "ingress".into(),
        };
        super::start::start(&state, &caller, &name).await
    })
}
