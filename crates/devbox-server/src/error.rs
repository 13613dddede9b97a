//! The one mapping from every error of the control plane to an HTTP response
//! `{"error": {"code", "message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use devbox_image::ImageError;
use devbox_model::api::{ErrorBody, ErrorCode, ErrorDetail};
use devbox_runtime::RuntimeError;
use devbox_store::StoreError;

/// Longest message sent to a client, in characters. Messages quote what
/// users sent (names, paths inside archives), which can be any length; the
/// middle of a longer one is cut, keeping what it is about and what is wrong.
const MAX_MESSAGE: usize = 1000;

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: cap(message.into()),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The body the client receives.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = ?self.code, "{}", self.message);
        }
        (status, axum::Json(self.body())).into_response()
    }
}

/// `message` with its middle cut when it is longer than [`MAX_MESSAGE`].
fn cap(message: String) -> String {
    let count = message.chars().count();
    if count <= MAX_MESSAGE {
        return message;
    }
    let head = MAX_MESSAGE / 2;
    let tail = MAX_MESSAGE - head - 1;
    let start: String = message.chars().take(head).collect();
    let end: String = message.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

/// Whether an IO error means the disk is full.
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(28)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            StoreError::NotFound { .. } => ErrorCode::NotFound,
            // Another operation got there first; the client may try again.
            StoreError::Conflict { .. } | StoreError::InUse { .. } => ErrorCode::Conflict,
            _ => ErrorCode::Internal,
        };
        Self::new(code, e.to_string())
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let full = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(is_disk_full);
        let code = if full {
            ErrorCode::InsufficientStorage
        } else {
            ErrorCode::Internal
        };
        Self::new(code, e.to_string())
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        let code = if is_disk_full(&e) {
            ErrorCode::InsufficientStorage
        } else {
            ErrorCode::Internal
        };
        Self::new(code, e.to_string())
    }
}

impl From<devbox_model::TransitionError> for ApiError {
    fn from(e: devbox_model::TransitionError) -> Self {
        Self::conflict(e.to_string())
    }
}

impl From<devbox_model::NameError> for ApiError {
    fn from(e: devbox_model::NameError) -> Self {
        Self::invalid(e.to_string())
    }
}

impl From<devbox_model::ResourceError> for ApiError {
    fn from(e: devbox_model::ResourceError) -> Self {
        Self::invalid(e.to_string())
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as J;
        let code = match &r {
            J::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
            J::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ErrorCode::PayloadTooLarge
            }
            _ => ErrorCode::InvalidArgument,
        };
        Self::new(code, format!("invalid request body: {}", r.body_text()))
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        Self::invalid(format!("invalid query: {}", r.body_text()))
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_is_cut_in_the_middle() {
        let long = format!("refused {}: is a symlink", "a/".repeat(10_000));
        let e = ApiError::invalid(long);
        assert_eq!(e.message.chars().count(), MAX_MESSAGE);
        assert!(e.message.starts_with("refused a/a/"), "{}", e.message);
        assert!(e.message.ends_with(": is a symlink"), "{}", e.message);
        assert_eq!(ApiError::invalid("short").message, "short");
    }

    #[test]
    fn a_lost_race_is_a_conflict() {
        let e = ApiError::from(StoreError::Conflict {
            id: devbox_model::DevboxId::from_random([1; 8]),
            expected: devbox_model::State::Stopped,
            actual: Some(devbox_model::State::Starting),
        });
        assert_eq!(e.code, ErrorCode::Conflict);
    }
}
