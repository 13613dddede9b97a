//! `exec`: runs a command in a devbox over the exec WebSocket, wiring it to
//! the local stdin, stdout, stderr, signals and terminal, and exits with the
//! command's exit code.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use devbox_model::api::{ExecClientMsg, ExecServerMsg, stream};
use devbox_model::{DevboxName, EnvVar};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use reqwest::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::client::error::{EXIT_EXEC_FAILED, EXIT_INTERRUPTED};
use crate::client::{ApiError, Client, ExitWith};
use crate::terminal::{self, RawMode};

/// How long to wait for the server to close after it reported the exit code,
/// so output still in flight is not cut off.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How soon after the first a second Ctrl-C must come to end the client
/// while no exit code has arrived: the server did not act on the first.
const SECOND_INTERRUPT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Forward standard input to the command.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal; with -i on a local terminal, switch it to raw mode.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<EnvVar>,
    /// Working directory of the command.
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Name of the devbox.
    pub name: DevboxName,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub cmd: Vec<String>,
}

type Socket = WebSocketStream<reqwest::Upgraded>;

pub async fn run(client: &Client, args: ExecArgs) -> anyhow::Result<i32> {
    exec(client, args).await.map_err(|e| {
        ExitWith {
            code: EXIT_EXEC_FAILED,
            error: e,
        }
        .into()
    })
}

async fn exec(client: &Client, args: ExecArgs) -> anyhow::Result<i32> {
    let mut ws = connect(client, &args.name).await?;
    let size = args.tty.then(local_size).flatten();
    let start = ExecClientMsg::Start {
        cmd: args.cmd.clone(),
        env: args.env.clone(),
        workdir: args.workdir.clone(),
        tty: args.tty,
        rows: size.map(|s| s.0),
        cols: size.map(|s| s.1),
    };
    // Handlers go in before the command starts, so a signal that arrives
    // once it runs is forwarded instead of killing this process.
    let mut signals = Signals::new(args.tty)?;
    let mut interrupts = signal(SignalKind::interrupt())?;
    send_control(&mut ws, &start).await?;
    // Without -i the command gets an empty stdin, as with `docker exec`,
    // instead of one that never ends.
    if !args.interactive && !args.tty {
        send_control(&mut ws, &ExecClientMsg::Eof).await?;
    }
    // Raw mode only when keys are forwarded from a real terminal; the guard
    // restores it when this function returns, errors or unwinds.
    let _raw = if args.tty && args.interactive && std::io::stdin().is_terminal() {
        Some(RawMode::enable(std::io::stdin()).context("cannot switch the terminal to raw mode")?)
    } else {
        None
    };
    let exited = Cell::new(false);
    let (int_tx, int_rx) = mpsc::unbounded_channel();
    // The session is dropped where it is when the user gives up, even in the
    // middle of a write to a server that stopped reading.
    tokio::select! {
        result = session(&mut ws, &args, &mut signals, int_rx, &exited) => result,
        () = watch_interrupts(&mut interrupts, &int_tx, &exited) => {
            eprintln!(
                "note: interrupted twice without an answer from the server; leaving \
                 (the command may still run in {})",
                args.name
            );
            Ok(EXIT_INTERRUPTED)
        }
    }
}

/// Passes each Ctrl-C (SIGINT) on to the session for forwarding, and returns
/// when a second one follows within [`SECOND_INTERRUPT`] while the command's
/// exit code has not arrived.
async fn watch_interrupts(
    interrupts: &mut Signal,
    forward: &mpsc::UnboundedSender<()>,
    exited: &Cell<bool>,
) {
    let mut last: Option<Instant> = None;
    while interrupts.recv().await.is_some() {
        if exited.get() {
            continue;
        }
        if last.is_some_and(|t| t.elapsed() < SECOND_INTERRUPT) {
            return;
        }
        last = Some(Instant::now());
        let _ = forward.send(());
    }
    std::future::pending().await
}

/// The local signals that are forwarded: terminate and hang-up as signals,
/// window changes (with a terminal) as resizes. Interrupts pass through
/// [`watch_interrupts`] first.
struct Signals {
    term: Signal,
    hup: Signal,
    winch: Option<Signal>,
}

impl Signals {
    fn new(tty: bool) -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            winch: if tty {
                Some(signal(SignalKind::window_change())?)
            } else {
                None
            },
        })
    }
}

/// Opens the WebSocket through the HTTP client, so the token, TLS settings
/// and error answers are handled exactly as for every other request.
async fn connect(client: &Client, name: &DevboxName) -> anyhow::Result<Socket> {
    let url = client.api_url(&["devboxes", name.as_str(), "exec", "ws"]);
    let key = generate_key();
    let request = client
        .request(Method::GET, url)
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "websocket")
        .header(SEC_WEBSOCKET_VERSION, "13")
        .header(SEC_WEBSOCKET_KEY, &key);
    let resp = client.send(request).await?;
    if resp.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        anyhow::bail!(
            "the server answered {} instead of opening the exec WebSocket",
            resp.status()
        );
    }
    let accept = resp
        .headers()
        .get(SEC_WEBSOCKET_ACCEPT)
        .and_then(|v| v.to_str().ok());
    if accept != Some(derive_accept_key(key.as_bytes()).as_str()) {
        anyhow::bail!("the server answered the WebSocket handshake with a wrong accept key");
    }
    let upgraded = resp
        .upgrade()
        .await
        .context("the exec WebSocket could not be opened")?;
    Ok(WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await)
}

/// `(rows, cols)` of the local terminal: stdin's, else stdout's.
fn local_size() -> Option<(u16, u16)> {
    terminal::window_size(std::io::stdin()).or_else(|| terminal::window_size(std::io::stdout()))
}

async fn send_control(ws: &mut Socket, msg: &ExecClientMsg) -> anyhow::Result<()> {
    let text = serde_json::to_string(msg)?;
    ws.send(Message::text(text))
        .await
        .context("the connection to the server was lost")
}

/// Pumps data both ways until the server closes; returns the exit code.
/// `exited` is set once the server reported it.
async fn session(
    ws: &mut Socket,
    args: &ExecArgs,
    signals: &mut Signals,
    mut interrupts: mpsc::UnboundedReceiver<()>,
    exited: &Cell<bool>,
) -> anyhow::Result<i32> {
    let mut stdin = args.interactive.then(read_stdin);
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    let mut exit: Option<i32> = None;
    loop {
        let grace = async {
            match exit {
                Some(_) => tokio::time::sleep(CLOSE_GRACE).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = ws.next() => {
                let msg = match msg {
                    None => break,
                    // Once the exit code is in, a connection dropped without
                    // a closing handshake loses nothing.
                    Some(Err(_)) if exit.is_some() => break,
                    Some(m) => m.context("the connection to the server was lost")?,
                };
                match msg {
                    Message::Binary(data) => write_output(&data, &mut out, &mut err).await?,
                    Message::Text(text) => match serde_json::from_str::<ExecServerMsg>(&text) {
                        Ok(ExecServerMsg::Exit { code }) => {
                            exit = Some(code);
                            exited.set(true);
                        }
                        Ok(ExecServerMsg::Error { code, message }) => {
                            return Err(ApiError {
                                status: code.http_status(),
                                code: Some(code),
                                message,
                            }
                            .into());
                        }
                        Err(e) => tracing::debug!("skipping an unknown control message: {e}"),
                    },
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            // A command may end without reading all its input; the server then
            // stops reading, and a failed write here is not the session's end:
            // the exit code (or the lost connection) arrives on the read side.
            chunk = recv(&mut stdin), if stdin.is_some() && exit.is_none() => match chunk {
                Some(data) => {
                    let mut frame = Vec::with_capacity(data.len() + 1);
                    frame.push(stream::STDIN);
                    frame.extend_from_slice(&data);
                    if ws.send(Message::binary(frame)).await.is_err() {
                        stdin = None;
                    }
                }
                None => {
                    stdin = None;
                    let _ = send_control(ws, &ExecClientMsg::Eof).await;
                }
            },
            Some(()) = recv_signal(&mut signals.winch), if signals.winch.is_some() => {
                if let Some((rows, cols)) = local_size() {
                    send_control(ws, &ExecClientMsg::Resize { rows, cols }).await?;
                }
            }
            Some(()) = interrupts.recv() => forward(ws, "INT").await?,
            Some(()) = signals.term.recv() => forward(ws, "TERM").await?,
            Some(()) = signals.hup.recv() => forward(ws, "HUP").await?,
            () = grace => break,
        }
    }
    out.flush().await?;
    err.flush().await?;
    exit.context("the connection to the server closed before the command exited")
}

async fn forward(ws: &mut Socket, signal: &str) -> anyhow::Result<()> {
    send_control(
        ws,
        &ExecClientMsg::Signal {
            signal: signal.to_owned(),
        },
    )
    .await
}

async fn write_output(
    data: &[u8],
    out: &mut tokio::io::Stdout,
    err: &mut tokio::io::Stderr,
) -> anyhow::Result<()> {
    match data.split_first() {
        Some((&stream::STDOUT, rest)) => {
            out.write_all(rest).await?;
            out.flush().await?;
        }
        Some((&stream::STDERR, rest)) => {
            err.write_all(rest).await?;
            err.flush().await?;
        }
        _ => tracing::debug!("skipping a data frame of an unknown stream"),
    }
    Ok(())
}

/// Reads stdin on the blocking pool into a channel; the channel closes at
/// end of input.
fn read_stdin() -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

async fn recv(rx: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_signal(sig: &mut Option<Signal>) -> Option<()> {
    match sig {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
