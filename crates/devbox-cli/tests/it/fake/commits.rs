//! The fake's commits: the histories of its devboxes, and forks from them,
//! answered with the real server's statuses and messages.
//!
//! - `web` runs; its history is `WEB_HEAD` (manual, pinned, the head),
//!   `WEB_AUTO` (auto) and `WEB_RECLAIMED` (stop, its image reclaimed);
//! - `idle` is stopped; its one commit `IDLE_HEAD` came from its stop;
//! - `fresh` runs and has no commit yet;
//! - `busy` is starting, and `full`'s image store has no room for a commit.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use devbox_model::api::{
    Commit, CommitRequest, CommitTrigger, Diff, DiffEntry, ErrorCode, GcReport, GcRequest,
    IgnoredEntry, PathChange, RollbackRequest,
};

use super::{Shared, error};

/// A refusal of the server, turned into its answer where a route returns.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: ErrorCode, message: String) -> Self {
        Self {
            status,
            code,
            message,
        }
    }

    pub fn not_found(devbox: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("devbox \"{devbox}\" not found"),
        )
    }

    pub fn conflict(message: String) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }

    pub fn into_response(self) -> Response {
        error(self.status, self.code, &self.message)
    }
}

pub const WEB_HEAD: &str = "3333333333333333";
pub const WEB_AUTO: &str = "2222222222222222";
pub const WEB_RECLAIMED: &str = "1111111111111111";
pub const IDLE_HEAD: &str = "aaaaaaaaaaaaaaaa";

fn commit(devbox: &str, id: &str, trigger: CommitTrigger, minutes_ago: i64) -> Commit {
    Commit {
        id: id.to_owned(),
        created_at: chrono::Utc::now() - chrono::Duration::minutes(minutes_ago),
        trigger,
        message: String::new(),
        digest: Some(
            format!("sha256:{}", id.repeat(4))
                .parse()
                .expect("a fixture digest"),
        ),
        reference: format!("admin/{devbox}:{id}"),
        layer_size: 1024,
        excluded_bytes: 0,
        parent: None,
        pinned: false,
        merged_into: None,
        head: false,
    }
}

/// A devbox's commits, newest first, as `GET .../commits` lists them; `None`
/// for a devbox the fake does not have.
pub fn history(devbox: &str) -> Option<Vec<Commit>> {
    match devbox {
        "web" => {
            let mut head = commit("web", WEB_HEAD, CommitTrigger::Manual, 5);
            head.message = "installed toolchain".into();
            head.layer_size = 12 * 1024 * 1024;
            head.excluded_bytes = 3 * 1024 * 1024;
            head.parent = Some(WEB_AUTO.into());
            head.pinned = true;
            head.head = true;
            let mut auto = commit("web", WEB_AUTO, CommitTrigger::Auto, 70);
            auto.parent = Some(WEB_RECLAIMED.into());
            let mut old = commit("web", WEB_RECLAIMED, CommitTrigger::Stop, 3 * 24 * 60);
            old.message = "first stop".into();
            old.digest = None;
            Some(vec![head, auto, old])
        }
        "idle" => {
            let mut head = commit("idle", IDLE_HEAD, CommitTrigger::Stop, 60);
            head.head = true;
            Some(vec![head])
        }
        "fresh" => Some(Vec::new()),
        _ => None,
    }
}

/// The commit `id` of `devbox`, or the server's refusal: 404 for a devbox
/// or commit it does not have (another devbox's commit included), 409 for a
/// commit whose image retention reclaimed.
pub fn find(devbox: &str, id: &str) -> Result<Commit, Refusal> {
    let Some(list) = history(devbox) else {
        return Err(Refusal::not_found(devbox));
    };
    let Some(c) = list.into_iter().find(|c| c.id == id) else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("devbox {devbox} has no commit {id}; see `devbox history {devbox}`"),
        ));
    };
    if c.digest.is_none() {
        return Err(Refusal::conflict(format!(
            "commit {id} of devbox {devbox} is no longer stored: retention reclaimed its image; \
             pin commits to keep them, and see `devbox history {devbox}` for the ones kept"
        )));
    }
    Ok(c)
}

/// The commit a fork from `from` (`NAME` or `NAME@COMMIT`) starts at: a
/// missing source is 404 and one without commits 400, as the server has it.
pub fn fork_source(from: &str) -> Result<Commit, Refusal> {
    let (devbox, id) = match from.split_once('@') {
        Some((devbox, id)) => (devbox, Some(id)),
        None => (from, None),
    };
    let Some(list) = history(devbox) else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("devbox {devbox} not found: it cannot be forked"),
        ));
    };
    match id {
        Some(id) => find(devbox, id),
        None => list.into_iter().find(|c| c.head).ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArgument,
                format!(
                    "invalid fork source {from:?}: that devbox has no commits yet: \
                     commit it first with `devbox commit`"
                ),
            )
        }),
    }
}

/// The commit the fake makes of `web` (and of `slow`).
pub const NEW_COMMIT: &str = "4444444444444444";

/// The routes of commits, diff and gc.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/api/v1/devboxes/{name}/commits",
            get(list_commits).post(create_commit),
        )
        .route("/api/v1/devboxes/{name}/rollback", post(rollback))
        .route("/api/v1/devboxes/{name}/diff", get(diff))
        .route("/api/v1/gc", post(gc))
}

/// A body the real server would refuse with 400, as it does.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidArgument,
            e.to_string(),
        )
    })
}

fn busy() -> Refusal {
    Refusal::conflict(
        "devbox busy is busy with another operation; try again when it finishes".into(),
    )
}

/// `web` and `fresh` run and commit; `slow` takes two seconds to; `idle` is
/// stopped, `busy` is starting, and `full`'s image store has no room left.
async fn create_commit(
    State(seen): State<Shared>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let req: CommitRequest = match parse(&body) {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(),
    };
    seen.lock().unwrap().commits.push(req.clone());
    match name.as_str() {
        "web" | "fresh" => {}
        "slow" => tokio::time::sleep(Duration::from_secs(2)).await,
        "idle" => {
            return Refusal::conflict(
                "devbox idle is stopped: there is nothing to commit, since its stop committed \
                 its changes; start it to change it"
                    .into(),
            )
            .into_response();
        }
        "busy" => return busy().into_response(),
        "full" => {
            return error(
                StatusCode::INSUFFICIENT_STORAGE,
                ErrorCode::InsufficientStorage,
                "cannot commit devbox full: No space left on device (os error 28)",
            );
        }
        _ => return Refusal::not_found(&name).into_response(),
    }
    let mut c = commit(&name, NEW_COMMIT, CommitTrigger::Manual, 0);
    c.message = req.message.unwrap_or_default();
    c.pinned = req.pin;
    c.head = true;
    c.excluded_bytes = 3 * 1024 * 1024;
    c.parent = history(&name).and_then(|h| h.first().map(|p| p.id.clone()));
    (StatusCode::CREATED, axum::Json(c)).into_response()
}

async fn list_commits(Path(name): Path<String>) -> Response {
    match history(&name) {
        Some(list) => axum::Json(list).into_response(),
        None => Refusal::not_found(&name).into_response(),
    }
}

/// `web` restarts from the commit, `idle` keeps waiting for its next start.
async fn rollback(State(seen): State<Shared>, Path(name): Path<String>, body: Bytes) -> Response {
    let req: RollbackRequest = match parse(&body) {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(),
    };
    seen.lock().unwrap().rollbacks.push(req.clone());
    if name == "busy" {
        return busy().into_response();
    }
    if let Err(refusal) = find(&name, &req.commit) {
        return refusal.into_response();
    }
    let mut d = match name.as_str() {
        "web" => super::web(),
        _ => super::idle(),
    };
    d.head = Some(req.commit);
    axum::Json(d).into_response()
}

fn entry(path: &str, change: PathChange, kind: Option<&str>, size: u64) -> DiffEntry {
    DiffEntry {
        path: path.into(),
        change,
        kind: kind.map(str::to_owned),
        size,
    }
}

/// `web` changed since its head, `idle`'s stop committed everything, and
/// `fresh` changed since the image it started from.
async fn diff(Path(name): Path<String>) -> Response {
    let d = match name.as_str() {
        "web" => Diff {
            since: Some(WEB_HEAD.into()),
            entries: vec![
                entry("/root/state", PathChange::Added, Some("file"), 3),
                entry("/etc/passwd", PathChange::Modified, Some("file"), 1536),
                entry("/root/.config", PathChange::Added, Some("dir"), 0),
                entry("/usr/share/doc", PathChange::Deleted, None, 0),
            ],
            ignored: vec![IgnoredEntry {
                path: "/root/.cache".into(),
                dir: true,
                entries: 120,
                bytes: 35 * 1024 * 1024,
            }],
            added: 2,
            modified: 1,
            deleted: 1,
            bytes: 1539,
            ignored_bytes: 35 * 1024 * 1024,
        },
        "idle" => Diff {
            since: Some(IDLE_HEAD.into()),
            ..Diff::default()
        },
        "fresh" => Diff {
            since: None,
            entries: vec![entry("/root/x", PathChange::Added, Some("file"), 2048)],
            added: 1,
            bytes: 2048,
            ..Diff::default()
        },
        _ => return Refusal::not_found(&name).into_response(),
    };
    axum::Json(d).into_response()
}

async fn gc(State(seen): State<Shared>, body: Bytes) -> Response {
    let req: GcRequest = match parse(&body) {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(),
    };
    seen.lock().unwrap().gcs.push(req.clone());
    axum::Json(GcReport {
        dry_run: req.dry_run,
        commits_expired: 2,
        manifests_removed: 2,
        blobs_removed: 5,
        blob_bytes: 300 * 1024 * 1024,
        layer_dirs_removed: 3,
        layer_bytes: 1024 * 1024 * 1024,
    })
    .into_response()
}
