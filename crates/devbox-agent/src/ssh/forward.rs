//! Port forwarding, always from inside the devbox: local forwarding
//! (`direct-tcpip`) connects from the devbox's network namespace to any
//! address it reaches, and remote forwarding (`tcpip-forward`) listens there
//! and hands each connection to the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::server::{ChannelOpenHandle, Handle, Msg};
use russh::{Channel, ChannelOpenFailure};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::activity::Activity;

/// How long a forwarded connection may take to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Copies both ways between a channel and a socket until both ends closed.
pub async fn splice<S>(channel: Channel<Msg>, mut socket: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut stream = channel.into_stream();
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut socket).await;
}

/// Where a remote forwarding listens: OpenSSH's conventions, where an empty
/// address or `*` means every interface and `localhost` the loopback one.
pub fn bind_address(address: &str, port: u32) -> Option<SocketAddr> {
    let port = u16::try_from(port).ok()?;
    let ip = match address {
        "" | "*" | "0.0.0.0" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        "::" => "::",
        other => other,
    };
    let ip: std::net::IpAddr = ip.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Opens a local forwarding: connects to `host:port` from inside the
/// devbox, then accepts the channel (or refuses it with the reason).
pub fn direct(
    channel: Channel<Msg>,
    host: String,
    port: u32,
    reply: ChannelOpenHandle,
    limit: Arc<Semaphore>,
    activity: Arc<Activity>,
) {
    tokio::spawn(async move {
        let Ok(permit) = limit.try_acquire_owned() else {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return;
        };
        let Ok(port) = u16::try_from(port) else {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        };
        let target = (host.as_str(), port);
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(socket)) => {
                let _ = socket.set_nodelay(true);
                reply.accept().await;
                let _busy = activity.connection();
                splice(channel, socket).await;
            }
            Ok(Err(e)) => {
                eprintln!("devbox-agent ssh: cannot forward to {host}:{port}: {e}");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
            }
            Err(_) => reply.reject(ChannelOpenFailure::ConnectFailed).await,
        }
        drop(permit);
    });
}

/// Starts a remote forwarding on `addr`; returns the port it listens on and
/// the task that accepts, which the caller aborts on cancel.
pub async fn listen(
    address: String,
    addr: SocketAddr,
    handle: Handle,
    limit: Arc<Semaphore>,
    activity: Arc<Activity>,
) -> std::io::Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((socket, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                continue;
            };
            let (handle, address, activity) = (handle.clone(), address.clone(), activity.clone());
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let opened = handle
                    .channel_open_forwarded_tcpip(
                        address,
                        u32::from(port),
                        peer.ip().to_string(),
                        u32::from(peer.port()),
                    )
                    .await;
                if let Ok(channel) = opened {
                    let _busy = activity.connection();
                    splice(channel, socket).await;
                }
                drop(permit);
            });
        }
    });
    Ok((port, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_follow_openssh() {
        assert_eq!(bind_address("", 80).unwrap().to_string(), "0.0.0.0:80");
        assert_eq!(
            bind_address("localhost", 0).unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert_eq!(
            bind_address("10.1.2.3", 8080).unwrap().to_string(),
            "10.1.2.3:8080"
        );
        assert!(bind_address("example.org", 80).is_none());
        assert!(bind_address("", 70_000).is_none());
    }
}
