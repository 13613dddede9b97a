//! The one mapping from the registry's errors to the distribution spec's
//! answers: a status and `{"errors":[{"code","message","detail"}]}`. The
//! registry does not use the REST API's error body (`api::error`), because
//! registry clients read only this one.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use devbox_image::ImageError;
use devbox_image::distribution::DistributionError;
use serde_json::json;

use super::auth::Refusal;
use crate::ops::registry::RegistryError;

/// Longest message a client receives.
const MAX_MESSAGE: usize = 2000;

/// An error on its way to a registry client.
#[derive(Debug)]
pub struct SpecError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: serde_json::Value,
    /// Extra headers: the challenge of a 401, the `Content-Range` of a 416.
    pub headers: Vec<(HeaderName, String)>,
}

impl SpecError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        Self {
            status,
            code,
            message,
            detail: json!({}),
            headers: Vec::new(),
        }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A path under `/v2/` that names nothing of the API.
    pub fn no_route(method: &axum::http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            format!("no registry route for {method} {path}"),
        )
    }

    /// A route asked with a method it does not take.
    pub fn method(method: &axum::http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!("{method} is not allowed on {path}"),
        )
    }

    /// A malformed request the spec has no better code for.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A refused authentication, with the challenge that tells the client
    /// where to get a token.
    pub fn unauthorized(refusal: Refusal, challenge: String) -> Self {
        if let Refusal::Store(e) = refusal {
            return Self::from(DistributionError::from(e));
        }
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            refusal.to_string(),
        )
        .with_header(header::WWW_AUTHENTICATE, challenge)
    }

    /// A range of a blob that is not inside it.
    pub fn range_not_satisfiable(size: u64) -> Self {
        Self::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "RANGE_INVALID",
            format!("the requested range is not within the blob's {size} bytes"),
        )
        .with_header(header::CONTENT_RANGE, format!("bytes */{size}"))
    }
}

impl IntoResponse for SpecError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, "{}", self.message);
        }
        let body = json!({"errors": [{"code": self.code, "message": self.message, "detail": self.detail}]});
        let mut resp = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().append(name, v);
            }
        }
        resp
    }
}

fn image_status(e: &ImageError) -> (StatusCode, &'static str) {
    use devbox_model::api::ErrorCode;
    match e.code() {
        ErrorCode::InsufficientStorage => (StatusCode::INSUFFICIENT_STORAGE, "UNKNOWN"),
        ErrorCode::NotFound => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
        ErrorCode::InvalidArgument => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
    }
}

impl From<DistributionError> for SpecError {
    fn from(e: DistributionError) -> Self {
        use DistributionError as D;
        let message = e.to_string();
        let (status, code, detail) = match &e {
            D::BlobUnknown { digest } => (
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                json!({"digest": digest}),
            ),
            D::UploadUnknown { id, .. } => (
                StatusCode::NOT_FOUND,
                "BLOB_UPLOAD_UNKNOWN",
                json!({"id": id}),
            ),
            D::UploadInvalid { .. } => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", json!({})),
            D::RangeInvalid { size, .. } => {
                return SpecError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "BLOB_UPLOAD_INVALID",
                    message,
                )
                .with_header(header::RANGE, format!("0-{}", size.saturating_sub(1)));
            }
            D::DigestInvalid { .. } => (StatusCode::BAD_REQUEST, "DIGEST_INVALID", json!({})),
            D::SizeInvalid { .. } => (StatusCode::BAD_REQUEST, "SIZE_INVALID", json!({})),
            D::ManifestInvalid { .. } => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID", json!({})),
            D::ManifestBlobUnknown { digest, .. } => (
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                json!({"digest": digest}),
            ),
            D::ManifestUnknown { reference, .. } => (
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                json!({"reference": reference}),
            ),
            D::NameInvalid { name } => (
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                json!({"name": name}),
            ),
            D::NameUnknown { name } => {
                (StatusCode::NOT_FOUND, "NAME_UNKNOWN", json!({"name": name}))
            }
            D::TagInvalid { tag } => (StatusCode::BAD_REQUEST, "TAG_INVALID", json!({"tag": tag})),
            D::InUse { devboxes, .. } => (
                StatusCode::CONFLICT,
                "DENIED",
                json!({"devboxes": devboxes.iter().map(|d| d.as_str()).collect::<Vec<_>>()}),
            ),
            D::Unsupported { .. } => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", json!({})),
            D::Image(inner) => {
                let (status, code) = image_status(inner);
                (status, code, json!({}))
            }
        };
        SpecError::new(status, code, message).with_detail(detail)
    }
}

impl From<RegistryError> for SpecError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Denied { .. } | RegistryError::CatalogDenied { .. } => {
                SpecError::new(StatusCode::FORBIDDEN, "DENIED", e.to_string())
            }
            RegistryError::Content(d) => d.into(),
        }
    }
}

/// Result of registry handlers.
pub type SpecResult<T> = Result<T, SpecError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_errors_get_the_spec_s_codes_and_statuses() {
        let cases: Vec<(DistributionError, u16, &str)> = vec![
            (
                DistributionError::BlobUnknown {
                    digest: "sha256:x".into(),
                },
                404,
                "BLOB_UNKNOWN",
            ),
            (
                DistributionError::NameUnknown { name: "bb".into() },
                404,
                "NAME_UNKNOWN",
            ),
            (
                DistributionError::ManifestUnknown {
                    repository: "bb".into(),
                    reference: "1".into(),
                },
                404,
                "MANIFEST_UNKNOWN",
            ),
            (
                DistributionError::DigestInvalid { reason: "x".into() },
                400,
                "DIGEST_INVALID",
            ),
            (
                DistributionError::ManifestInvalid { reason: "x".into() },
                400,
                "MANIFEST_INVALID",
            ),
            (
                DistributionError::ManifestBlobUnknown {
                    repository: "bb".into(),
                    what: "layer",
                    digest: "sha256:x".into(),
                },
                400,
                "MANIFEST_BLOB_UNKNOWN",
            ),
            (
                DistributionError::NameInvalid { name: "A".into() },
                400,
                "NAME_INVALID",
            ),
            (
                DistributionError::RangeInvalid { start: 5, size: 3 },
                416,
                "BLOB_UPLOAD_INVALID",
            ),
        ];
        for (e, status, code) in cases {
            let s = SpecError::from(e);
            assert_eq!((s.status.as_u16(), s.code), (status, code), "{}", s.message);
        }
        let denied = SpecError::from(RegistryError::Denied {
            caller: "token:x".into(),
            repository: "bb".into(),
            action: crate::ops::registry::Action::Push,
        });
        assert_eq!((denied.status.as_u16(), denied.code), (403, "DENIED"));
        assert!(
            denied.message.contains("may not push repository bb"),
            "{}",
            denied.message
        );
    }

    #[test]
    fn a_refusal_carries_its_challenge() {
        let s = SpecError::unauthorized(Refusal::Missing, "Bearer realm=\"x\"".into());
        assert_eq!(s.status, StatusCode::UNAUTHORIZED);
        assert_eq!(s.code, "UNAUTHORIZED");
        assert_eq!(s.headers[0].0, header::WWW_AUTHENTICATE);
    }
}
