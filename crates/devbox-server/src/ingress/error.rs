//! Why the ingress did not reach a devbox's port. `api::error` decides
//! the status of each; `pages` shows them to browsers.

use devbox_model::State;

/// Why a request did not reach the port it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngressError {
    #[error("no devbox {name}")]
    UnknownDevbox { name: String },

    #[error("{what:?} is not a port the ingress reaches: use a port number from 1 to 65535")]
    UnknownPort { what: String },

    #[error(
        "port {port} of devbox {devbox} is private: sign in on the web page, send `Authorization: Bearer <token>`, or use a link from `devbox port share {devbox} {port}`"
    )]
    SignIn { devbox: String, port: u16 },

    #[error("invalid API token for port {port} of devbox {devbox}")]
    BadToken { devbox: String, port: u16 },

    #[error(
        "this link to port {port} of devbox {devbox} has expired: ask for a new one (`devbox port share {devbox} {port}`)"
    )]
    LinkExpired { devbox: String, port: u16 },

    #[error(
        "this link to port {port} of devbox {devbox} is not valid: it was altered, or revoked by `devbox port share --revoke`"
    )]
    LinkInvalid { devbox: String, port: u16 },

    #[error("devbox {devbox} is starting; this page reloads when it is ready")]
    Starting { devbox: String },

    #[error("devbox {devbox} did not get ready to serve port {port} within {secs}s; try again")]
    WakeTimeout {
        devbox: String,
        port: u16,
        secs: u64,
    },

    #[error("devbox {devbox} cannot be started to serve this request: {message}")]
    WakeFailed { devbox: String, message: String },

    #[error("devbox {devbox} is {state} and cannot serve requests now")]
    NotServing { devbox: String, state: State },

    #[error(
        "nothing listens on port {port} in devbox {devbox}: start a server there on 0.0.0.0:{port} or 127.0.0.1:{port}"
    )]
    NothingListens { devbox: String, port: u16 },

    #[error("port {port} of devbox {devbox} broke off: {message}")]
    Upstream {
        devbox: String,
        port: u16,
        message: String,
    },

    #[error("the ingress cannot read its settings: {message}")]
    Internal { message: String },
}

impl From<devbox_store::StoreError> for IngressError {
    fn from(e: devbox_store::StoreError) -> Self {
        IngressError::Internal {
            message: e.to_string(),
        }
    }
}
