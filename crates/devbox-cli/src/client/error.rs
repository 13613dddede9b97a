//! Errors of a request, and the exit code each one maps to.

use devbox_model::api::{ErrorBody, ErrorCode, ErrorDetail};

use super::token::{Token, unauthorized_hint};

/// Exit code: the server refused or failed the request, or something local failed.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code: the command line was wrong (clap uses the same code).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the devbox or image does not exist (HTTP 404).
pub const EXIT_NOT_FOUND: i32 = 3;
/// Exit code: the request conflicts with the current state (HTTP 409).
pub const EXIT_CONFLICT: i32 = 4;
/// Exit code of `start` and `restart` when the devbox runs but its startup
/// command exited with a non-zero code or could not be started.
pub const EXIT_STARTUP_COMMAND_FAILED: i32 = 5;
/// Exit code of `exec` when the command could not be run remotely.
pub const EXIT_EXEC_FAILED: i32 = 125;
/// Exit code of `exec` given up after a second interrupt, as a shell reports
/// a command ended by SIGINT.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The server answered with an error status or an error event.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub code: Option<ErrorCode>,
    pub message: String,
}

impl ApiError {
    /// Reads an error response. Bodies that are not the API's error JSON
    /// (a proxy's page, say) are quoted, shortened, so the user still sees why.
    pub fn from_response(status: u16, body: &[u8], token: &Token) -> Self {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => (Some(b.error.code), b.error.message),
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let reason = reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                if text.is_empty() {
                    (None, format!("the server answered {status} {reason}"))
                } else {
                    let short: String = text.chars().take(200).collect();
                    (
                        None,
                        format!("the server answered {status} {reason}: {short}"),
                    )
                }
            }
        };
        let message = if status == 401 {
            format!("{message}: {}", unauthorized_hint(token))
        } else {
            message
        };
        Self {
            status,
            code,
            message,
        }
    }

    /// An error event of an NDJSON progress stream.
    pub fn from_detail(detail: &ErrorDetail) -> Self {
        Self {
            status: detail.code.http_status(),
            code: Some(detail.code),
            message: detail.message.clone(),
        }
    }

    /// The exit code of the CLI for this error.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            404 => EXIT_NOT_FOUND,
            409 => EXIT_CONFLICT,
            _ => EXIT_FAILURE,
        }
    }
}

/// The server could not be reached at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the devbox server at {url}: is `devbox server` running?")]
pub struct Unreachable {
    pub url: String,
    #[source]
    pub source: reqwest::Error,
}

/// An error that ends the process with a given code, whatever it wraps.
#[derive(Debug, thiserror::Error)]
#[error("{error:#}")]
pub struct ExitWith {
    pub code: i32,
    pub error: anyhow::Error,
}

/// A usage error found after parsing, such as `--password-stdin` with nothing on stdin.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for an error that ended a command.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if let Some(e) = err.downcast_ref::<ExitWith>() {
        return e.code;
    }
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<ApiError>() {
            return e.exit_code();
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return EXIT_USAGE;
        }
    }
    EXIT_FAILURE
}

/// The text printed for an error, without the `error: ` prefix. The
/// unreachable-server message already says everything; the transport error
/// behind it would only repeat the address.
pub fn message(err: &anyhow::Error) -> String {
    if let Some(e) = err.downcast_ref::<ExitWith>() {
        return message(&e.error);
    }
    if let Some(e) = err.chain().find_map(|c| c.downcast_ref::<Unreachable>()) {
        return e.to_string();
    }
    format!("{err:#}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::token::TokenSource;

    fn no_token() -> Token {
        Token {
            value: None,
            source: TokenSource::Missing {
                file: "/var/lib/devbox/admin-token".into(),
                reason: "No such file or directory (os error 2)".into(),
            },
        }
    }

    fn body(code: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"error": {"code": code, "message": message}}))
            .unwrap()
    }

    #[test]
    fn statuses_map_to_exit_codes() {
        let cases = [
            (404, "not_found", EXIT_NOT_FOUND),
            (409, "conflict", EXIT_CONFLICT),
            (409, "already_exists", EXIT_CONFLICT),
            (400, "invalid_argument", EXIT_FAILURE),
            (500, "internal", EXIT_FAILURE),
            (502, "upstream", EXIT_FAILURE),
        ];
        for (status, code, exit) in cases {
            let e = ApiError::from_response(status, &body(code, "no"), &no_token());
            assert_eq!(e.exit_code(), exit, "{status}");
            assert_eq!(exit_code(&anyhow::Error::new(e)), exit, "{status}");
        }
    }

    #[test]
    fn the_api_message_is_kept() {
        let e = ApiError::from_response(
            404,
            &body("not_found", "devbox \"web\" not found"),
            &no_token(),
        );
        assert_eq!(e.to_string(), "devbox \"web\" not found");
        assert_eq!(e.code, Some(ErrorCode::NotFound));
    }

    #[test]
    fn a_401_says_how_to_give_a_token() {
        let e = ApiError::from_response(401, &body("unauthorized", "missing token"), &no_token());
        let m = e.to_string();
        assert!(m.starts_with("missing token: "), "{m}");
        assert!(m.contains("--token") && m.contains("DEVBOX_TOKEN"), "{m}");
        assert_eq!(e.exit_code(), EXIT_FAILURE);
    }

    #[test]
    fn bodies_that_are_not_api_errors_are_quoted() {
        let e = ApiError::from_response(502, b"<html>Bad Gateway</html>", &no_token());
        assert_eq!(e.code, None);
        assert!(e.to_string().contains("502 Bad Gateway"), "{e}");
        assert!(e.to_string().contains("<html>"), "{e}");
        let e = ApiError::from_response(404, b"", &no_token());
        assert_eq!(e.to_string(), "the server answered 404 Not Found");
        assert_eq!(e.exit_code(), EXIT_NOT_FOUND);
    }

    #[test]
    fn error_events_map_through_their_code() {
        let d = ErrorDetail {
            code: ErrorCode::NotFound,
            message: "manifest unknown".into(),
        };
        assert_eq!(ApiError::from_detail(&d).exit_code(), EXIT_NOT_FOUND);
    }

    #[test]
    fn wrapped_errors_keep_their_code() {
        let e = anyhow::Error::new(ApiError {
            status: 409,
            code: Some(ErrorCode::Conflict),
            message: "busy".into(),
        })
        .context("cannot stop web");
        assert_eq!(exit_code(&e), EXIT_CONFLICT);
        assert_eq!(message(&e), "cannot stop web: busy");
        let e = anyhow::Error::new(ExitWith {
            code: EXIT_EXEC_FAILED,
            error: e,
        });
        assert_eq!(exit_code(&e), EXIT_EXEC_FAILED);
        assert_eq!(message(&e), "cannot stop web: busy");
        assert_eq!(exit_code(&anyhow::anyhow!("disk on fire")), EXIT_FAILURE);
        assert_eq!(
            exit_code(&anyhow::Error::new(UsageError("no".into()))),
            EXIT_USAGE
        );
    }
}
