//! The HTTPS tunnel: a WebSocket whose binary messages carry a raw SSH
//! stream, served by the gateway like a TCP connection, for networks where
//! only HTTPS reaches the server.

use axum::extract::ws::{Message, WebSocket};
use devbox_model::DevboxName;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Gateway;

/// Largest chunk sent in one WebSocket message.
const CHUNK: usize = 64 * 1024;

/// Serves the SSH stream carried by `socket` until either side ends.
pub async fn serve(gateway: Gateway, socket: WebSocket, peer: String, route: DevboxName) {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut read, mut write) = tokio::io::split(ours);
    let (mut tx, mut rx) = socket.split();
    let inbound = async move {
        while let Some(Ok(msg)) = rx.next().await {
            match msg {
                Message::Binary(b) if write.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = write.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send(Message::Binary(buf[..n].to_vec().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Message::Close(None)).await;
    };
    let ssh = gateway.serve_stream(theirs, peer, Some(route));
    tokio::join!(inbound, outbound, ssh);
}
