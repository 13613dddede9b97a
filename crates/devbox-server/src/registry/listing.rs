//! Lists: `/v2/_catalog`, `/v2/<name>/tags/list` (both paginated with `n`
//! and `last`, and a `Link` to the next page) and `/v2/<name>/referrers/<digest>`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use devbox_image::distribution::parse_digest;
use serde_json::json;

use super::error::{SpecError, SpecResult};
use super::{Ctx, set};
use crate::auth::Caller;
use crate::ops;

/// Page size when a client names none: every tag of a repository at
/// once, as clients that do not paginate expect, up to this bound.
const DEFAULT_PAGE: usize = 10_000;

/// `n` and `last` of a list request.
fn page(req: &Ctx) -> SpecResult<(usize, Option<String>)> {
    let n = match req.param("n") {
        None => DEFAULT_PAGE,
        Some(s) => s.parse::<usize>().map_err(|_| {
            SpecError::bad_request(
                "PAGINATION_NUMBER_INVALID",
                format!("n must be a number of entries, not {s:?}"),
            )
        })?,
    };
    Ok((
        n.min(DEFAULT_PAGE),
        req.param("last").filter(|l| !l.is_empty()),
    ))
}

/// The answer with a `Link` to the next page when there is one.
fn paged(body: serde_json::Value, path: &str, n: usize, next: Option<&String>) -> Response {
    let mut resp = axum::Json(body).into_response();
    if let Some(last) = next {
        let last: String = url::form_urlencoded::byte_serialize(last.as_bytes()).collect();
        set(
            &mut resp,
            header::LINK,
            &format!("<{path}?n={n}&last={last}>; rel=\"next\""),
        );
    }
    resp
}

pub async fn catalog(req: &Ctx, caller: &Caller) -> SpecResult<Response> {
    let (n, last) = page(req)?;
    let (repositories, more) =
        ops::registry::pull::catalog(&req.state, caller, last.as_deref(), n).await?;
    let next = more.then(|| repositories.last()).flatten();
    Ok(paged(
        json!({"repositories": repositories}),
        &req.path,
        n,
        next,
    ))
}

pub async fn tags(req: &Ctx, caller: &Caller, name: &str) -> SpecResult<Response> {
    let (n, last) = page(req)?;
    let (tags, more) =
        ops::registry::pull::tags(&req.state, caller, name, last.as_deref(), n).await?;
    let next = more.then(|| tags.last()).flatten();
    Ok(paged(
        json!({"name": name, "tags": tags}),
        &req.path,
        n,
        next,
    ))
}

pub async fn referrers(
    req: &Ctx,
    caller: &Caller,
    name: &str,
    digest: &str,
) -> SpecResult<Response> {
    let subject = parse_digest(digest)?;
    let artifact_type = req.param("artifactType");
    let index = ops::registry::pull::referrers(
        &req.state,
        caller,
        name,
        &subject,
        artifact_type.as_deref(),
    )
    .await?;
    let mut resp = (StatusCode::OK, index).into_response();
    set(
        &mut resp,
        header::CONTENT_TYPE,
        devbox_image::media::OCI_INDEX,
    );
    if artifact_type.is_some() {
        set(
            &mut resp,
            header::HeaderName::from_static("oci-filters-applied"),
            "artifactType",
        );
    }
    Ok(resp)
}
