//! The one mapping from every error of the control plane to an HTTP response
//! `{"error": {"code", "message"}}`: operations, authentication and request
//! parsing each get their status here and nowhere else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use devbox_image::ImageError;
use devbox_model::api::{ErrorBody, ErrorCode, ErrorDetail};
use devbox_runtime::RuntimeError;
use devbox_store::StoreError;

use crate::auth::AuthError;
use crate::ingress::IngressError;
use crate::ops::{OpError, StepError};

/// Longest message a client receives; longer ones keep their start and end.
const MAX_MESSAGE: usize = 2000;

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

/// `message` shortened to [`MAX_MESSAGE`] bytes, cut in the middle.
fn capped(message: String) -> String {
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let half = MAX_MESSAGE / 2;
    let mut head = half;
    while !message.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = message.len() - half;
    while !message.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{} … {}", &message[..head], &message[tail..])
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: capped(message.into()),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
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

/// Whether an IO error means the disk is full.
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(28)
}

/// Whether an IO error somewhere in `e`'s chain means the disk is full.
fn disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.raw_os_error() == Some(28)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn store_code(e: &StoreError) -> ErrorCode {
    match e {
        StoreError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
        StoreError::NotFound { .. } => ErrorCode::NotFound,
        StoreError::Conflict { .. } | StoreError::InUse { .. } => ErrorCode::Conflict,
        _ => ErrorCode::Internal,
    }
}

fn runtime_code(e: &RuntimeError) -> ErrorCode {
    match e {
        RuntimeError::MemoryBelowUsage { .. }
        | RuntimeError::EmptyCommand { .. }
        | RuntimeError::InvalidWorkdir { .. }
        | RuntimeError::User { .. } => ErrorCode::InvalidArgument,
        RuntimeError::NotRunning { .. } | RuntimeError::NoFreeAddress { .. } => ErrorCode::Conflict,
        RuntimeError::Connect { .. } => ErrorCode::Upstream,
        e if disk_full(e) => ErrorCode::InsufficientStorage,
        _ => ErrorCode::Internal,
    }
}

fn op_code(e: &OpError) -> ErrorCode {
    match e {
        OpError::NotFound { .. }
        | OpError::ImageNotFound { .. }
        | OpError::KeyNotFound { .. }
        | OpError::UnknownRelease { .. } => ErrorCode::NotFound,
        OpError::AlreadyExists { .. }
        | OpError::KeyExists { .. }
        | OpError::ReleaseExists { .. }
        | OpError::VersionTaken { .. } => ErrorCode::AlreadyExists,
        OpError::InvalidVersion { .. } | OpError::NotesTooLong { .. } => ErrorCode::InvalidArgument,
        OpError::NothingToRelease { .. } => ErrorCode::Conflict,
        OpError::Busy { .. } | OpError::Transition { .. } | OpError::NotRunning { .. } => {
            ErrorCode::Conflict
        }
        OpError::Resources(_)
        | OpError::Empty { .. }
        | OpError::Workdir { .. }
        | OpError::InvalidFrom { .. }
        | OpError::InvalidExclude { .. }
        | OpError::UnknownVariable { .. }
        | OpError::InvalidKey { .. } => ErrorCode::InvalidArgument,
        OpError::UnknownCommit { .. }
        | OpError::ForkSourceNotFound { .. }
        | OpError::ReservedPort { .. } => ErrorCode::NotFound,
        OpError::NothingToCommit { .. }
        | OpError::CommitReclaimed { .. }
        | OpError::Uncommitted { .. } => ErrorCode::Conflict,
        OpError::Failed { source, .. } => match &**source {
            StepError::Image(e) => e.code(),
            StepError::Store(e) => store_code(e),
            StepError::Runtime(e) => runtime_code(e),
            StepError::Commit(e) => op_code(e),
        },
        OpError::Runtime { source, .. } | OpError::PruneLayers { source } => runtime_code(source),
        OpError::Image(e) => e.code(),
        OpError::Store(e) => store_code(e),
        OpError::Aborted { .. } => ErrorCode::Internal,
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        Self::new(op_code(&e), e.to_string())
    }
}

fn ingress_code(e: &IngressError) -> ErrorCode {
    match e {
        IngressError::UnknownDevbox { .. } | IngressError::UnknownPort { .. } => {
            ErrorCode::NotFound
        }
        IngressError::SignIn { .. } => ErrorCode::Unauthorized,
        IngressError::BadToken { .. }
        | IngressError::LinkExpired { .. }
        | IngressError::LinkInvalid { .. } => ErrorCode::Forbidden,
        IngressError::Starting { .. } | IngressError::NotServing { .. } => ErrorCode::Unavailable,
        IngressError::WakeTimeout { .. } => ErrorCode::GatewayTimeout,
        IngressError::WakeFailed { .. }
        | IngressError::NothingListens { .. }
        | IngressError::Upstream { .. } => ErrorCode::Upstream,
        IngressError::Internal { .. } => ErrorCode::Internal,
    }
}

impl From<IngressError> for ApiError {
    fn from(e: IngressError) -> Self {
        Self::new(ingress_code(&e), e.to_string())
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::new(store_code(&e), e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let code = match &e {
            AuthError::Missing | AuthError::Invalid => ErrorCode::Unauthorized,
            AuthError::Csrf => ErrorCode::Forbidden,
            AuthError::Store(s) => store_code(s),
        };
        Self::new(code, e.to_string())
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        let code = if disk_full(&e) {
            ErrorCode::InsufficientStorage
        } else {
            ErrorCode::Internal
        };
        Self::new(code, e.to_string())
    }
}

impl From<devbox_model::NameError> for ApiError {
    fn from(e: devbox_model::NameError) -> Self {
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
    fn long_messages_keep_their_start_and_end() {
        let long = format!("start {} end", "é".repeat(5000));
        let c = capped(long);
        assert!(c.len() <= MAX_MESSAGE + 8, "{}", c.len());
        assert!(c.starts_with("start ") && c.ends_with(" end"), "{c}");
        assert_eq!(capped("short".into()), "short");
    }

    #[test]
    fn operation_errors_get_their_statuses() {
        let name: devbox_model::DevboxName = "web".parse().unwrap();
        let cases = [
            (OpError::NotFound { name: name.clone() }, 404),
            (OpError::Busy { name: name.clone() }, 409),
            (
                OpError::NotRunning {
                    name: name.clone(),
                    state: devbox_model::State::Stopped,
                },
                409,
            ),
            (
                OpError::UnknownVariable {
                    name: name.clone(),
                    key: "X".into(),
                },
                400,
            ),
            (
                OpError::Runtime {
                    name: name.clone(),
                    source: Box::new(RuntimeError::MemoryBelowUsage {
                        id: devbox_model::DevboxId::from_random([1; 8]),
                        limit: devbox_model::ByteSize::mib(1),
                        usage: devbox_model::ByteSize::mib(2),
                    }),
                },
                400,
            ),
        ];
        for (e, status) in cases {
            let api = ApiError::from(e);
            assert_eq!(api.code.http_status(), status, "{}", api.message);
        }
    }

    #[test]
    fn release_errors_get_their_statuses() {
        let name: devbox_model::DevboxName = "web".parse().unwrap();
        let cases = [
            (
                OpError::InvalidVersion {
                    version: "0123456789abcdef".into(),
                    reason: "r",
                },
                400,
            ),
            (OpError::NotesTooLong { max: 1 }, 400),
            (
                OpError::ReleaseExists {
                    name: name.clone(),
                    version: "v1".into(),
                },
                409,
            ),
            (
                OpError::VersionTaken {
                    reference: "admin/web:v1".into(),
                },
                409,
            ),
            (OpError::NothingToRelease { name: name.clone() }, 409),
            (
                OpError::UnknownRelease {
                    name,
                    version: "v1".into(),
                },
                404,
            ),
        ];
        for (e, status) in cases {
            let api = ApiError::from(e);
            assert_eq!(api.code.http_status(), status, "{}", api.message);
        }
    }

    #[test]
    fn a_full_disk_anywhere_in_the_chain_is_507() {
        let e = RuntimeError::Io {
            op: "write",
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(28),
        };
        assert_eq!(runtime_code(&e), ErrorCode::InsufficientStorage);
    }
}
