//! The fake's commits: the histories of its devboxes, and forks from them,
//! answered with the real server's statuses and messages.
//!
//! - `web` runs; its history is `WEB_HEAD` (manual, pinned, the head),
//!   `WEB_AUTO` (auto) and `WEB_RECLAIMED` (stop, its image reclaimed);
//! - `idle` is stopped; its one commit `IDLE_HEAD` came from its stop;
//! - `fresh` runs and has no commit yet.

use axum::http::StatusCode;
use axum::response::Response;
use devbox_model::api::{Commit, CommitTrigger, ErrorCode};

use super::error;

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
            format!(
                "devbox \"{devbox}\" has no commit {id}; `devbox history {devbox}` lists its commits"
            ),
        ));
    };
    if c.digest.is_none() {
        return Err(Refusal::conflict(format!(
            "the image of commit {id} of devbox \"{devbox}\" was reclaimed by retention; \
                 pick a later commit, and pin the ones to keep (`devbox commit --pin`)"
        )));
    }
    Ok(c)
}

/// The commit a fork from `from` (`NAME` or `NAME@COMMIT`) starts at.
pub fn fork_source(from: &str) -> Result<Commit, Refusal> {
    match from.split_once('@') {
        Some((devbox, id)) => find(devbox, id),
        None => {
            let Some(list) = history(from) else {
                return Err(Refusal::not_found(from));
            };
            list.into_iter().find(|c| c.head).ok_or_else(|| {
                Refusal::conflict(format!(
                    "devbox \"{from}\" has no commit to fork from yet; \
                         `devbox commit {from}` makes one"
                ))
            })
        }
    }
}
