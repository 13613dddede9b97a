//! The devbox's console log: what its init and startup command wrote.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use devbox_model::api::{ErrorBody, LogsQuery};
use devbox_runtime::Runtime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::devbox_name;
use crate::error::{ApiError, ApiResult};
use crate::lifecycle;
use crate::state::AppState;

/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// How far back from the end `tail` looks for lines.
const TAIL_WINDOW: u64 = 4 * 1024 * 1024;

/// The last `n` lines of `data`.
fn last_lines(data: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    match body
        .iter()
        .rev()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
    {
        Some((i, _)) => &data[body.len() - i..],
        None => data,
    }
}

/// Reads the log from `offset` (or its tail) and returns the bytes and the new offset.
async fn read_from(
    path: &PathBuf,
    offset: u64,
    tail: Option<usize>,
) -> std::io::Result<(Vec<u8>, u64)> {
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let len = f.metadata().await?.len();
    // A log shorter than the offset was truncated or replaced: start over.
    let mut start = if len < offset { 0 } else { offset };
    if tail.is_some() {
        start = len.saturating_sub(TAIL_WINDOW);
    }
    f.seek(SeekFrom::Start(start)).await?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    (&mut f).take(len - start).read_to_end(&mut buf).await?;
    if let Some(n) = tail {
        buf = last_lines(&buf, n).to_vec();
    }
    Ok((buf, len))
}

#[utoipa::path(get, path = "/api/v1/devboxes/{name}/logs", params(("name" = String, Path), LogsQuery),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn logs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let name = devbox_name(&name)?;
    let devbox = lifecycle::get(&state, &name).await?;
    let path = state.runtime.log_path(&devbox.id);
    let (first, offset) = read_from(&path, 0, q.tail).await.map_err(ApiError::from)?;
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if !q.follow {
        return Ok((headers, first).into_response());
    }
    let stream = futures::stream::unfold(
        (Some(first), offset, state, (devbox.name, devbox.id), path),
        |(pending, offset, state, id, path)| async move {
            if let Some(first) = pending {
                return Some((
                    Ok::<_, std::io::Error>(first),
                    (None, offset, state, id, path),
                ));
            }
            loop {
                tokio::time::sleep(FOLLOW_POLL).await;
                match read_from(&path, offset, None).await {
                    Ok((data, new_offset)) if !data.is_empty() => {
                        return Some((Ok(data), (None, new_offset, state, id, path)));
                    }
                    Ok(_) => {}
                    Err(e) => return Some((Err(e), (None, offset, state, id, path))),
                }
                // End the stream once the devbox is gone.
                let (name, devbox_id) = &id;
                let current = state.store.get_devbox(name).await;
                if !matches!(current, Ok(Some(d)) if d.id == *devbox_id) {
                    return None;
                }
            }
        },
    );
    Ok((headers, Body::from_stream(stream)).into_response())
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
        assert_eq!(last_lines(b"", 3), b"");
    }
}
