//! A stand-in for the Devbox API: a few routes that answer as the API
//! contract says, and record what the CLI sent, so the tests can check the
//! wire format of the client without a real server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use devbox_model::api::{
    CommandStatus, CommitRequest, CreateDevbox, Devbox, ErrorBody, ErrorCode, ErrorDetail,
    ExecClientMsg, ExecServerMsg, Image, LayerInfo, LogsQuery, ProgressEvent, PullRequest,
    StopQuery, UpdateDevbox, stream,
};
use devbox_model::api::{GcRequest, RollbackRequest};
use devbox_model::{ByteSize, Resources, State as DevboxState};
use futures::{SinkExt, StreamExt};

mod commits;
pub use commits::{IDLE_HEAD, NEW_COMMIT, WEB_AUTO, WEB_HEAD, WEB_RECLAIMED};

/// The token the fake accepts.
pub const TOKEN: &str = "secret";

/// What the CLI sent.
#[derive(Debug, Default)]
pub struct Seen {
    /// `METHOD path?query` of every request, as it arrived (still encoded).
    pub requests: Vec<String>,
    pub created: Vec<CreateDevbox>,
    pub updates: Vec<UpdateDevbox>,
    pub pulls: Vec<PullRequest>,
    /// Query string and body of every import.
    pub imports: Vec<(String, Vec<u8>)>,
    /// Control messages of every exec session, in order.
    pub exec_control: Vec<ExecClientMsg>,
    /// Bytes that arrived on the stdin stream.
    pub exec_stdin: Vec<u8>,
    pub commits: Vec<CommitRequest>,
    pub rollbacks: Vec<RollbackRequest>,
    pub gcs: Vec<GcRequest>,
}

pub type Shared = Arc<Mutex<Seen>>;

/// A running fake; it lives until the test process ends.
pub struct Fake {
    pub url: String,
    pub seen: Shared,
}

impl Fake {
    /// Starts a fake on a free port, on its own thread and runtime, so tests
    /// can run the CLI with blocking process calls.
    pub fn start() -> Self {
        let seen = Shared::default();
        let app = router(seen.clone());
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Self {
            url: format!("http://{addr}"),
            seen,
        }
    }

    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }
}

fn router(seen: Shared) -> Router {
    Router::new()
        .route("/api/v1/devboxes", get(list_devboxes).post(create_devbox))
        .route(
            "/api/v1/devboxes/{name}",
            get(get_devbox).delete(delete_devbox).patch(update_devbox),
        )
        .route("/api/v1/devboxes/{name}/logs", get(logs))
        .route("/api/v1/devboxes/{name}/exec/ws", get(exec_ws))
        .route("/api/v1/devboxes/{name}/{op}", post(lifecycle))
        .route("/api/v1/images", get(list_images))
        .route("/api/v1/images/pull", post(pull))
        .route("/api/v1/images/import", post(import))
        .route(
            "/api/v1/images/{reference}",
            get(get_image).delete(delete_image),
        )
        .merge(commits::routes())
        .layer(middleware::from_fn_with_state(
            seen.clone(),
            record_and_auth,
        ))
        .layer(DefaultBodyLimit::disable())
        .with_state(seen)
}

pub fn error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message: message.to_owned(),
        },
    };
    (status, axum::Json(body)).into_response()
}

async fn record_and_auth(State(seen): State<Shared>, req: Request, next: Next) -> Response {
    seen.lock()
        .unwrap()
        .requests
        .push(format!("{} {}", req.method(), req.uri()));
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    if !authorized {
        return error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "invalid API token",
        );
    }
    next.run(req).await
}

pub fn devbox(name: &str, state: DevboxState) -> Devbox {
    Devbox {
        id: "0123456789abcdef".parse().unwrap(),
        name: name.parse().unwrap(),
        image: "busybox:1".into(),
        image_digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
        reason: None,
        oom_kills: 0,
        command_status: None,
        pending: Vec::new(),
        head: None,
        auto_commit: None,
        commit_exclude: Vec::new(),
        auto_stop: None,
        last_activity: None,
        state,
        error: None,
        resources: Resources::default(),
        env: vec![],
        command: None,
        ip: "10.77.0.2".into(),
        created_at: chrono::Utc::now() - chrono::Duration::minutes(3),
        updated_at: chrono::Utc::now(),
    }
}

pub fn image(reference: &str) -> Image {
    let (repository, tag) = reference.rsplit_once(':').unwrap();
    Image {
        reference: reference.to_owned(),
        repository: repository.to_owned(),
        tag: tag.to_owned(),
        digest: format!("sha256:{}", "c".repeat(64)).parse().unwrap(),
        size: 1536 * 1024,
        layers: 2,
        created_at: chrono::Utc::now() - chrono::Duration::hours(2),
    }
}

/// A devbox whose container died on its own: the kernel killed its startup
/// command for lack of memory.
pub fn oom_killed(name: &str) -> Devbox {
    let mut d = devbox(name, DevboxState::Stopped);
    d.reason = Some("exited with 137: out of memory".into());
    d.oom_kills = 1;
    d.command = Some(vec!["/bin/sh".into(), "-c".into(), "make run".into()]);
    d.command_status = Some(CommandStatus::Exited { code: 137 });
    d
}

/// The exact bytes `GET /api/v1/devboxes` answers, for `--json` checks.
pub fn devbox_list_body() -> String {
    let mut list = vec![devbox("web", DevboxState::Running)];
    let mut db = devbox("db", DevboxState::Stopped);
    db.ip = String::new();
    db.resources.memory = devbox_model::ByteSize::mib(512);
    db.resources.cpus = 0.5;
    list.push(db);
    list.push(oom_killed("oom"));
    // Fixed times, so the body is the same on every call.
    for d in &mut list {
        d.created_at = "2026-01-01T00:00:00Z".parse().unwrap();
        d.updated_at = d.created_at;
    }
    serde_json::to_string(&list).unwrap()
}

async fn list_devboxes() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        devbox_list_body(),
    )
        .into_response()
}

fn not_found(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        &format!("devbox \"{name}\" not found"),
    )
}

async fn create_devbox(State(seen): State<Shared>, body: Bytes) -> Response {
    let req: CreateDevbox = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArgument,
                &e.to_string(),
            );
        }
    };
    let name = req.name.to_string();
    seen.lock().unwrap().created.push(req.clone());
    if name == "taken" {
        return error(
            StatusCode::CONFLICT,
            ErrorCode::AlreadyExists,
            "a devbox named \"taken\" exists already",
        );
    }
    let mut d = devbox(&name, DevboxState::Stopped);
    match (&req.image, &req.from) {
        (Some(image), None) => d.image = image.to_string(),
        (None, Some(from)) => match commits::fork_source(from) {
            Ok(source) => d.image = source.reference,
            Err(refusal) => return refusal.into_response(),
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArgument,
                "give exactly one of image and from",
            );
        }
    }
    d.auto_commit = req.auto_commit;
    d.commit_exclude = req.commit_exclude;
    (StatusCode::CREATED, axum::Json(d)).into_response()
}

/// `web` with its head and commit settings.
pub fn web() -> Devbox {
    let mut d = devbox("web", DevboxState::Running);
    d.head = Some(WEB_HEAD.into());
    d.auto_commit = Some(600);
    d.commit_exclude = vec!["/root/.cache/**".into()];
    d
}

/// `idle`, stopped after its first run, whose stop committed it.
pub fn idle() -> Devbox {
    let mut d = devbox("idle", DevboxState::Stopped);
    d.head = Some(IDLE_HEAD.into());
    d
}

async fn get_devbox(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "web" => axum::Json(web()).into_response(),
        "idle" => axum::Json(idle()).into_response(),
        "fresh" => axum::Json(devbox("fresh", DevboxState::Running)).into_response(),
        "oom" => axum::Json(oom_killed("oom")).into_response(),
        _ => not_found(&name),
    }
}

/// What the fake's running devbox `web` uses now, below which its memory
/// limit cannot go.
pub const WEB_MEMORY_USAGE: ByteSize = ByteSize::mib(100);

/// `PATCH`, as the server does it: limits change at once, `env` and
/// `command` of a running devbox wait for its next start (`pending`). `web`
/// runs, `idle` is stopped, `busy` is starting.
async fn update_devbox(
    State(seen): State<Shared>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let req: UpdateDevbox = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArgument,
                &e.to_string(),
            );
        }
    };
    seen.lock().unwrap().updates.push(req.clone());
    let mut d = match name.as_str() {
        "web" => web(),
        "idle" => idle(),
        "busy" => {
            return error(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "cannot update devbox while it is starting; try again when it is running",
            );
        }
        _ => return not_found(&name),
    };
    let running = d.state == DevboxState::Running;
    if let Some(memory) = req.memory.map(ByteSize) {
        if running && memory < WEB_MEMORY_USAGE {
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArgument,
                &format!(
                    "cannot lower the memory limit of devbox \"{name}\" to {memory}: it uses \
                     {WEB_MEMORY_USAGE} now; give it at least that, or stop it first"
                ),
            );
        }
        d.resources.memory = memory;
    }
    if let Some(cpus) = req.cpus {
        d.resources.cpus = cpus;
    }
    if let Some(pids) = req.pids {
        d.resources.pids = pids;
    }
    if !req.env.is_empty() || !req.unset_env.is_empty() {
        d.env.retain(|e| !req.unset_env.contains(&e.key));
        d.env.retain(|e| !req.env.iter().any(|n| n.key == e.key));
        d.env.extend(req.env.iter().cloned());
        if running {
            d.pending.push("env".into());
        }
    }
    if let Some(command) = req.command {
        d.command = (!command.is_empty()).then_some(command);
        if running {
            d.pending.push("command".into());
        }
    }
    // Commit settings apply at once: the next auto-commit and the next
    // commit use them.
    if let Some(secs) = req.auto_commit {
        d.auto_commit = (secs > 0).then_some(secs);
    }
    if let Some(patterns) = req.commit_exclude {
        d.commit_exclude = patterns;
    }
    axum::Json(d).into_response()
}

async fn delete_devbox(Path(name): Path<String>) -> Response {
    if name == "web" {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found(&name)
    }
}

/// `start`, `stop` and `restart`. Besides `web`: `busy` is in another
/// operation; `slow` has processes that ignore SIGTERM, so a stop takes its
/// whole timeout (at most 3 s here); `failing`'s startup command exits 3 at
/// once, `unstartable`'s cannot start, and `oneshot`'s succeeds at once.
async fn lifecycle(
    Path((name, op)): Path<(String, String)>,
    Query(q): Query<StopQuery>,
) -> Response {
    if name == "busy" {
        return error(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "cannot stop devbox while it is starting; try again when it is running",
        );
    }
    let command_status = match name.as_str() {
        "web" | "slow" => CommandStatus::Running,
        "failing" => CommandStatus::Exited { code: 3 },
        "unstartable" => CommandStatus::Failed {
            message: "/bin/sh: no such file or directory".into(),
        },
        "oneshot" => CommandStatus::Exited { code: 0 },
        _ => return not_found(&name),
    };
    let stopping = matches!(op.as_str(), "stop" | "restart");
    if name == "slow" && stopping {
        let secs = q.timeout.unwrap_or(10).min(3);
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    let mut d = match op.as_str() {
        "start" | "restart" => devbox(&name, DevboxState::Running),
        "stop" => devbox(&name, DevboxState::Stopped),
        _ => return error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route"),
    };
    d.command = Some(vec!["/bin/sh".into(), "-c".into(), "serve".into()]);
    d.command_status = Some(command_status);
    axum::Json(d).into_response()
}

/// Answers in pieces with pauses, as a following log does; a followed log
/// ends when the devbox stops, as the server ends it.
async fn logs(Path(name): Path<String>, Query(q): Query<LogsQuery>) -> Response {
    if name != "web" {
        return not_found(&name);
    }
    let mut pieces = vec!["line 1\nli", "ne 2\n", "line 3\n"];
    if q.follow {
        pieces.extend(["line 4, written later\n", "stopping\n"]);
    }
    let stream = futures::stream::iter(pieces).then(|p| async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        Ok::<_, std::io::Error>(Bytes::from_static(p.as_bytes()))
    });
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn list_images() -> Response {
    axum::Json(vec![
        image("busybox:1"),
        image("localhost:5000/tools/base:2"),
    ])
    .into_response()
}

async fn get_image(Path(reference): Path<String>) -> Response {
    if reference == "missing:1" {
        return error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "image \"missing:1\" not found",
        );
    }
    axum::Json(image(&reference)).into_response()
}

async fn delete_image(Path(reference): Path<String>) -> Response {
    if reference == "missing:1" {
        return error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "image \"missing:1\" not found",
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

/// An NDJSON body cut into pieces that end in the middle of lines.
fn ndjson(events: Vec<ProgressEvent>) -> Response {
    let mut text = String::new();
    for e in &events {
        text.push_str(&serde_json::to_string(e).unwrap());
        text.push('\n');
    }
    let bytes = text.into_bytes();
    let pieces: Vec<Bytes> = bytes.chunks(37).map(Bytes::copy_from_slice).collect();
    let stream = futures::stream::iter(pieces).then(|p| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok::<_, std::io::Error>(p)
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn layer_events(reference: &str) -> Vec<ProgressEvent> {
    let layers = vec![
        LayerInfo {
            digest: format!("sha256:{}", "1".repeat(64)),
            size: 1000,
        },
        LayerInfo {
            digest: format!("sha256:{}", "2".repeat(64)),
            size: 500,
        },
    ];
    let mut events = vec![ProgressEvent::Resolved {
        digest: format!("sha256:{}", "c".repeat(64)).parse().unwrap(),
        layers: layers.clone(),
    }];
    for l in &layers {
        events.push(ProgressEvent::Progress {
            digest: l.digest.clone(),
            current: l.size / 2,
            total: l.size,
        });
        events.push(ProgressEvent::LayerDone {
            digest: l.digest.clone(),
            cached: false,
        });
    }
    events.push(ProgressEvent::Done {
        image: image(reference),
    });
    events
}

async fn pull(State(seen): State<Shared>, axum::Json(req): axum::Json<PullRequest>) -> Response {
    let reference = req.reference.to_string();
    seen.lock().unwrap().pulls.push(req);
    if reference == "missing:1" {
        return ndjson(vec![ProgressEvent::Error {
            error: ErrorDetail {
                code: ErrorCode::NotFound,
                message: "manifest unknown: missing:1".into(),
            },
        }]);
    }
    if reference == "cut:1" {
        let mut events = layer_events(&reference);
        events.pop();
        return ndjson(events);
    }
    ndjson(layer_events(&reference))
}

#[derive(serde::Deserialize)]
struct ImportQuery {
    name: String,
}

async fn import(
    State(seen): State<Shared>,
    Query(q): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()) != Some(b"application/x-tar") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "expected application/x-tar",
        );
    }
    if q.name.parse::<devbox_model::ImageRef>().is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidArgument,
            "invalid image reference",
        );
    }
    let mut data = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => data.extend_from_slice(&c),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidArgument,
                    "the upload broke off",
                );
            }
        }
    }
    seen.lock().unwrap().imports.push((q.name.clone(), data));
    ndjson(layer_events(&q.name))
}

async fn exec_ws(
    State(seen): State<Shared>,
    Path(name): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    if name != "web" {
        return not_found(&name);
    }
    ws.on_upgrade(move |socket| exec_session(socket, seen))
}

async fn send_json(ws: &mut WebSocket, msg: &ExecServerMsg) {
    let text = serde_json::to_string(msg).unwrap();
    let _ = ws.send(Message::Text(text.into())).await;
}

async fn send_data(ws: &mut WebSocket, id: u8, data: &[u8]) {
    let mut frame = vec![id];
    frame.extend_from_slice(data);
    let _ = ws.send(Message::Binary(frame.into())).await;
}

async fn next_control(ws: &mut WebSocket, seen: &Shared) -> Option<ExecClientMsg> {
    while let Some(Ok(msg)) = ws.recv().await {
        match msg {
            Message::Text(t) => {
                let m: ExecClientMsg = serde_json::from_str(&t).unwrap();
                seen.lock().unwrap().exec_control.push(m.clone());
                return Some(m);
            }
            Message::Binary(b) => {
                assert_eq!(b[0], stream::STDIN, "clients send only stdin data");
                seen.lock().unwrap().exec_stdin.extend_from_slice(&b[1..]);
            }
            _ => {}
        }
    }
    None
}

/// Commands the fake understands:
/// - `cat`: echoes stdin to stdout until EOF, says `bye` on stderr, exits 7;
/// - `start`: prints the start message as JSON, exits 0;
/// - `wait-signal`: waits for a signal, prints its name, exits 130;
/// - `resize`: prints the size of the start message, waits for a resize,
///   prints it, exits 0;
/// - `broken`: answers with an error message;
/// - `vanish`: closes without an exit code;
/// - `hang`: records what arrives and never answers, as a stuck server.
async fn exec_session(mut ws: WebSocket, seen: Shared) {
    let Some(start) = next_control(&mut ws, &seen).await else {
        return;
    };
    let ExecClientMsg::Start { cmd, .. } = &start else {
        panic!("the first message must be start, got {start:?}");
    };
    match cmd[0].as_str() {
        "cat" => {
            loop {
                let before = seen.lock().unwrap().exec_stdin.len();
                let msg = next_control(&mut ws, &seen).await;
                let all = seen.lock().unwrap().exec_stdin.clone();
                send_data(&mut ws, stream::STDOUT, &all[before..]).await;
                if matches!(msg, Some(ExecClientMsg::Eof) | None) {
                    break;
                }
            }
            send_data(&mut ws, stream::STDERR, b"bye\n").await;
            send_json(&mut ws, &ExecServerMsg::Exit { code: 7 }).await;
        }
        "start" => {
            let text = serde_json::to_string(&start).unwrap();
            send_data(&mut ws, stream::STDOUT, text.as_bytes()).await;
            send_json(&mut ws, &ExecServerMsg::Exit { code: 0 }).await;
        }
        "wait-signal" => {
            send_data(&mut ws, stream::STDOUT, b"ready\n").await;
            loop {
                match next_control(&mut ws, &seen).await {
                    Some(ExecClientMsg::Signal { signal }) => {
                        send_data(
                            &mut ws,
                            stream::STDOUT,
                            format!("got {signal}\n").as_bytes(),
                        )
                        .await;
                        break;
                    }
                    Some(_) => continue,
                    None => return,
                }
            }
            send_json(&mut ws, &ExecServerMsg::Exit { code: 130 }).await;
        }
        "resize" => {
            let ExecClientMsg::Start { rows, cols, .. } = &start else {
                unreachable!()
            };
            let line = format!("size {rows:?} {cols:?}\n");
            send_data(&mut ws, stream::STDOUT, line.as_bytes()).await;
            loop {
                match next_control(&mut ws, &seen).await {
                    Some(ExecClientMsg::Resize { rows, cols }) => {
                        let line = format!("resized {rows} {cols}\n");
                        send_data(&mut ws, stream::STDOUT, line.as_bytes()).await;
                        break;
                    }
                    Some(_) => continue,
                    None => return,
                }
            }
            send_json(&mut ws, &ExecServerMsg::Exit { code: 0 }).await;
        }
        "broken" => {
            send_json(
                &mut ws,
                &ExecServerMsg::Error {
                    code: ErrorCode::Conflict,
                    message: "devbox \"web\" is not running".into(),
                },
            )
            .await;
        }
        "vanish" => {}
        "hang" => while next_control(&mut ws, &seen).await.is_some() {},
        other => panic!("the fake does not know {other}"),
    }
    let _ = ws.close().await;
}
