//! Running commands in a devbox: collected (`POST .../exec`) and streaming
//! over a WebSocket with an optional pty (`GET .../exec/ws`).

use std::time::Duration;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use devbox_model::api::{
    Devbox, ErrorBody, ErrorCode, ExecClientMsg, ExecRequest, ExecResponse, ExecServerMsg, stream,
};
use devbox_model::{EnvVar, State as DevboxState};
use devbox_runtime::{ExecSpec, Runtime, Signal};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{ApiJson, devbox_name};
use crate::error::{ApiError, ApiResult};
use crate::lifecycle::{self, merge_env, overlay_env};
use crate::state::AppState;

/// Output kept per stream by the collected exec; the streaming exec has no limit.
const MAX_COLLECTED_OUTPUT: u64 = 16 * 1024 * 1024;

/// How long output may still arrive after the command exited (from
/// background processes that inherited its stdout) before the session closes.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// How long the server waits for the client to answer its close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

async fn running_devbox(state: &AppState, name: &str) -> ApiResult<Devbox> {
    let devbox = lifecycle::get(state, &devbox_name(name)?).await?;
    if devbox.state != DevboxState::Running {
        return Err(ApiError::conflict(format!(
            "devbox {} is {}, not running; start it with `devbox start {}`",
            devbox.name, devbox.state, devbox.name
        )));
    }
    Ok(devbox)
}

async fn exec_spec(
    state: &AppState,
    devbox: &Devbox,
    cmd: Vec<String>,
    env: &[EnvVar],
    workdir: Option<String>,
    tty: Option<(u16, u16)>,
) -> ApiResult<ExecSpec> {
    if cmd.is_empty() || cmd[0].is_empty() {
        return Err(ApiError::invalid("cmd must name a command"));
    }
    let image = state
        .images
        .resolve_digest(devbox.image_digest.as_str())
        .await?;
    let merged = overlay_env(merge_env(&image.config.env, &devbox.env), env);
    let workdir = workdir
        .or(image.config.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !workdir.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "workdir {workdir:?} must be an absolute path"
        )));
    }
    Ok(ExecSpec {
        cmd,
        env: merged,
        workdir,
        user: image.config.user.clone().filter(|u| !u.is_empty()),
        tty,
    })
}

async fn read_capped(r: Option<impl AsyncRead + Unpin>) -> std::io::Result<String> {
    let mut buf = Vec::new();
    if let Some(r) = r {
        let mut r = r.take(MAX_COLLECTED_OUTPUT);
        r.read_to_end(&mut buf).await?;
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[utoipa::path(post, path = "/api/v1/devboxes/{name}/exec", params(("name" = String, Path)), request_body = ExecRequest,
    responses((status = 200, body = ExecResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn exec(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ExecRequest>,
) -> ApiResult<Json<ExecResponse>> {
    let devbox = running_devbox(&state, &name).await?;
    let spec = exec_spec(&state, &devbox, req.cmd, &req.env, req.workdir, None).await?;
    let mut proc = state.runtime.exec(&devbox.id, &spec).await?;
    let stdin = proc.take_stdin();
    let input = req.stdin.unwrap_or_default();
    let feed = async move {
        if let Some(mut w) = stdin {
            // The command may exit without reading its input; that is not an error.
            let _ = w.write_all(input.as_bytes()).await;
        }
    };
    let (_, stdout, stderr) = tokio::join!(
        feed,
        read_capped(proc.take_stdout()),
        read_capped(proc.take_stderr())
    );
    let exit_code = proc.wait().await?;
    Ok(Json(ExecResponse {
        exit_code,
        stdout: stdout?,
        stderr: stderr?,
    }))
}

#[utoipa::path(get, path = "/api/v1/devboxes/{name}/exec/ws", params(("name" = String, Path)),
    responses((status = 101, description = "WebSocket; see ExecClientMsg and ExecServerMsg"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn exec_ws(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    let devbox = running_devbox(&state, &name).await?;
    Ok(ws.on_upgrade(move |socket| async move {
        let (mut tx, mut rx) = socket.split();
        if let Err(e) = session(state, devbox, &mut rx, &mut tx).await {
            let msg = ExecServerMsg::Error {
                code: e.code,
                message: e.message,
            };
            let _ = tx.send(text(&msg)).await;
        }
        let _ = tx.send(Message::Close(None)).await;
        // Read what the client still sends (stdin the command never read)
        // until it answers the close: dropping a socket with unread data
        // resets the connection, and the client could lose the exit code.
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(msg)) = rx.next().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }))
}

fn text<T: serde::Serialize>(msg: &T) -> Message {
    Message::Text(serde_json::to_string(msg).unwrap_or_default().into())
}

fn frame(stream_id: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(stream_id);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// Copies a process output into WebSocket frames until EOF.
async fn pump(mut r: impl AsyncRead + Unpin, stream_id: u8, out: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.send(frame(stream_id, &buf[..n])).await.is_err() {
                    break;
                }
            }
        }
    }
}

type WsSink = futures::stream::SplitSink<WebSocket, Message>;
type WsStream = futures::stream::SplitStream<WebSocket>;

async fn session(
    state: AppState,
    devbox: Devbox,
    rx: &mut WsStream,
    tx: &mut WsSink,
) -> ApiResult<()> {
    let first = match rx.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str::<ExecClientMsg>(&t)
            .map_err(|e| ApiError::invalid(format!("invalid start message: {e}")))?,
        _ => {
            return Err(ApiError::invalid(
                "the first message must be a text frame {\"type\":\"start\",...}",
            ));
        }
    };
    let ExecClientMsg::Start {
        cmd,
        env,
        workdir,
        tty,
        rows,
        cols,
    } = first
    else {
        return Err(ApiError::invalid("the first message must be of type start"));
    };
    let size = tty.then(|| (rows.unwrap_or(24), cols.unwrap_or(80)));
    let spec = exec_spec(&state, &devbox, cmd, &env, workdir, size).await?;
    let mut proc = state.runtime.exec(&devbox.id, &spec).await?;

    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let mut pumps = Vec::new();
    let mut stdin: Option<Box<dyn tokio::io::AsyncWrite + Send + Unpin>> = None;
    let mut resizer = None;
    if let Some(pty) = proc.take_pty() {
        resizer = Some(pty.resizer());
        let (r, w) = tokio::io::split(pty);
        stdin = Some(Box::new(w));
        pumps.push(tokio::spawn(pump(r, stream::STDOUT, out_tx.clone())));
    } else {
        if let Some(w) = proc.take_stdin() {
            stdin = Some(Box::new(w));
        }
        if let Some(r) = proc.take_stdout() {
            pumps.push(tokio::spawn(pump(r, stream::STDOUT, out_tx.clone())));
        }
        if let Some(r) = proc.take_stderr() {
            pumps.push(tokio::spawn(pump(r, stream::STDERR, out_tx.clone())));
        }
    }
    drop(out_tx);
    let signaller = proc.signaller();
    let mut client_gone = false;

    let exit = loop {
        tokio::select! {
            code = proc.wait() => break code?,
            Some(msg) = out_rx.recv() => {
                if tx.send(msg).await.is_err() {
                    // The client is gone: end the command with it.
                    let _ = signaller.signal(Signal::Kill);
                }
            }
            incoming = rx.next(), if !client_gone => match incoming {
                Some(Ok(Message::Binary(b))) if b.first() == Some(&stream::STDIN) => {
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(&b[1..]).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ExecClientMsg>(&t) {
                    Ok(ExecClientMsg::Resize { rows, cols }) => {
                        if let Some(r) = &resizer {
                            let _ = r.resize(rows, cols);
                        }
                    }
                    Ok(ExecClientMsg::Signal { signal }) => match signal.parse::<Signal>() {
                        Ok(sig) => { let _ = signaller.signal(sig); }
                        Err(_) => {
                            let msg = ExecServerMsg::Error { code: ErrorCode::InvalidArgument, message: format!("unknown signal {signal:?}") };
                            let _ = tx.send(text(&msg)).await;
                        }
                    },
                    Ok(ExecClientMsg::Eof) => {
                        if let Some(mut w) = stdin.take() {
                            let _ = w.shutdown().await;
                        }
                    }
                    _ => {}
                },
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    // The client is gone: end the command with it.
                    client_gone = true;
                    let _ = signaller.signal(Signal::Kill);
                }
            }
        }
    };
    drop(stdin);
    // Forward what the command wrote before it exited.
    let drain = async {
        while let Some(msg) = out_rx.recv().await {
            if tx.send(msg).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, drain).await;
    for p in pumps {
        p.abort();
    }
    let _ = tx.send(text(&ExecServerMsg::Exit { code: exit })).await;
    Ok(())
}
