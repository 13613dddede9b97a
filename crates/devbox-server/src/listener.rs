//! The server's listener: HTTP/1.1 connections with bounded request heads
//! and a timeout for clients that send them slowly, each request going to
//! the ingress when its `Host` or path names a devbox's port, and to the
//! API's router otherwise. WebSockets and other upgrades work on both.
//! On shutdown it stops accepting, lets requests under way finish for a
//! few seconds, and then closes what is left (event and log streams).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::ingress::{self, ConnCtx};
use crate::state::AppState;

/// Longest request head (request line and headers) a client may send.
pub const MAX_HEAD: usize = 64 * 1024;

/// How long a client has to send a request's head once it started.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(20);

/// How long requests under way may go on after shutdown began.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `router` and the ingress on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(stream, peer, state.clone(), router.clone(), stop_rx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = &mut shutdown => break,
        }
        while connections.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: AppState,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let ctx = Arc::new(ConnCtx::new(peer));
    let service = service_fn(move |req: Request<Incoming>| {
        let (state, router, ctx) = (state.clone(), router.clone(), ctx.clone());
        async move { Ok::<_, Infallible>(dispatch(&state, router, &ctx, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

/// The ingress when the request names a devbox's port, the API otherwise.
async fn dispatch(
    state: &AppState,
    mut router: Router,
    ctx: &ConnCtx,
    req: Request<Incoming>,
) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host());
    match ingress::route(&state.ingress.domain, host, req.uri().path()) {
        Some(routed) => ingress::handle(state, ctx, routed, req).await,
        None => match tower_service::Service::call(&mut router, req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        },
    }
}
