//! Errors of the metadata database.

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name (devbox name, IP address, token) is taken.
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// The record the operation needs does not exist.
    #[error("{what} not found")]
    NotFound { what: String },
    /// The database could not be opened or migrated.
    #[error("cannot open database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value could not be decoded (a corrupt or foreign database).
    #[error("corrupt value in column {column}: {message}")]
    Corrupt {
        column: &'static str,
        message: String,
    },
    /// The worker thread running the query panicked or was cancelled.
    #[error("database worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}
