//! Agent forwarding: a socket in a directory of the login's own under
//! `/tmp`, named in `SSH_AUTH_SOCK`; each connection to it becomes an
//! `auth-agent@openssh.com` channel to the client.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::server::Handle;
use tokio::net::UnixListener;

use super::activity::Activity;
use super::forward::splice;
use super::login::Login;

/// A forwarding socket; dropping it stops the listener and removes the
/// socket and its directory.
#[derive(Debug)]
pub struct AgentSocket {
    dir: PathBuf,
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl AgentSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AgentSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn random_name() -> String {
    let mut bytes = [0u8; 8];
    // A predictable name is only a nuisance: the directory is created
    // exclusively and is the login's alone.
    let _ = getrandom(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// Creates the socket for `login` and starts accepting on it.
pub fn create(
    login: &Login,
    handle: Handle,
    activity: Arc<Activity>,
) -> std::io::Result<AgentSocket> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = PathBuf::from(format!("/tmp/devbox-ssh-{}", random_name()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let path = dir.join("agent.sock");
    let made = (|| {
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        std::os::unix::fs::chown(&dir, Some(login.ids.uid), Some(login.ids.gid))?;
        std::os::unix::fs::chown(&path, Some(login.ids.uid), Some(login.ids.gid))?;
        Ok::<_, std::io::Error>(listener)
    })();
    let listener = match made {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (handle, activity) = (handle.clone(), activity.clone());
            tokio::spawn(async move {
                if let Ok(channel) = handle.channel_open_agent().await {
                    let _busy = activity.connection();
                    splice(channel, socket).await;
                }
            });
        }
    });
    Ok(AgentSocket { dir, path, task })
}
