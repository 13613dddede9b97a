//! `/v2/<name>/blobs/<digest>`: GET and HEAD, with single byte ranges.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use devbox_image::distribution::parse_digest;

use super::error::{SpecError, SpecResult};
use super::{Ctx, set};
use crate::auth::Caller;
use crate::ops;

/// The bytes a `Range` header asks for in a blob of `size` bytes, as
/// `(start, len)`: `Ok(None)` for the whole blob (no header, or one this
/// server does not serve in parts, such as several ranges), `Err` for a
/// range outside the blob.
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().map_err(|_| ());
    let (start, end) = if first.is_empty() {
        // The last N bytes.
        let n = parse(last)?;
        if n == 0 || size == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start = parse(first)?;
        let end = if last.is_empty() {
            size.saturating_sub(1)
        } else {
            parse(last)?.min(size.saturating_sub(1))
        };
        (start, end)
    };
    if start >= size || end < start {
        return Err(());
    }
    Ok(Some((start, end - start + 1)))
}

pub async fn get(req: &Ctx, caller: &Caller, name: &str, digest: &str) -> SpecResult<Response> {
    let digest = parse_digest(digest)?;
    let size = ops::registry::pull::blob_size(&req.state, caller, name, &digest).await?;
    let range = parse_range(req.header(header::RANGE), size)
        .map_err(|()| SpecError::range_not_satisfiable(size))?;
    let (start, len) = range.unwrap_or((0, size));
    let body = if req.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(
            ops::registry::pull::blob_range(&req.state, caller, name, &digest, start, len).await?,
        )
    };
    let mut resp = body.into_response();
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        set(
            &mut resp,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    set(&mut resp, header::CONTENT_TYPE, "application/octet-stream");
    set(&mut resp, header::CONTENT_LENGTH, &len.to_string());
    set(&mut resp, header::ACCEPT_RANGES, "bytes");
    set(&mut resp, header::ETAG, &format!("\"{digest}\""));
    set(
        &mut resp,
        header::HeaderName::from_static("docker-content-digest"),
        digest.as_str(),
    );
    Ok(resp)
}

pub async fn delete(req: &Ctx, caller: &Caller, name: &str, digest: &str) -> SpecResult<Response> {
    let digest = parse_digest(digest)?;
    ops::registry::delete::blob(&req.state, caller, name, &digest).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_http_says() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Ok(Some((0, 4))));
        assert_eq!(parse_range(Some("bytes=4-"), 10), Ok(Some((4, 6))));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ok(Some((7, 3))));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), Ok(Some((5, 5))));
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=x-2"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=-0"), 10), Err(()));
    }
}
