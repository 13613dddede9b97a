//! TCP connections into a devbox's network namespace.
//!
//! A socket belongs to the network namespace it was created in, whichever
//! thread uses it later. So a short-lived thread of its own joins the
//! devbox's namespace, creates the socket and ends; the connect itself then
//! runs on tokio's reactor like any other. The thread is never reused: a
//! thread that joined another network namespace must not go back to the
//! pool and serve unrelated work there.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use devbox_model::DevboxId;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustix::thread::LinkNameSpaceType;
use tokio::net::{TcpSocket, TcpStream};

use crate::error::RuntimeError;

/// Creates a TCP socket inside the network namespace at `netns`.
fn socket_in(netns: &Path) -> std::io::Result<OwnedFd> {
    let ns = std::fs::File::open(netns)?;
    rustix::thread::move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))?;
    Ok(rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?)
}

/// Connects to `127.0.0.1:port` as seen from inside the namespace `netns`.
pub(crate) async fn connect(
    id: &DevboxId,
    netns: PathBuf,
    port: u16,
) -> Result<TcpStream, RuntimeError> {
    let err = |source| RuntimeError::Connect {
        id: id.clone(),
        port,
        source,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("devbox-netns".into())
        .spawn(move || {
            let _ = tx.send(socket_in(&netns));
        })
        .map_err(err)?;
    let fd = rx
        .await
        .map_err(|_| err(std::io::Error::other("the namespace thread ended early")))?
        .map_err(err)?;
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
    socket
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(err)
}
