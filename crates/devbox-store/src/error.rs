//! Errors of the metadata database. No variant names the database library:
//! a PostgreSQL implementation reports through the same variants.

use devbox_model::{DevboxId, DevboxName, Digest, State};

/// The error of the underlying database, boxed so that no implementation's
/// error type leaks into the interface.
pub type DatabaseSource = Box<dyn std::error::Error + Send + Sync>;

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name (devbox name, token) is taken.
    #[error("{what} already exists")]
    AlreadyExists { what: String },

    /// The record the operation needs does not exist.
    #[error("{what} not found")]
    NotFound { what: String },

    /// A conditional state change found another state than the one it
    /// expected: another writer changed the devbox first (or removed it,
    /// when `actual` is `None`).
    #[error("{}", conflict_message(id, *expected, *actual))]
    Conflict {
        id: DevboxId,
        expected: State,
        actual: Option<State>,
    },

    /// A manifest cannot lose its last name while devboxes are created from it.
    #[error("{}", in_use_message(manifest, devboxes))]
    InUse {
        manifest: Digest,
        devboxes: Vec<DevboxName>,
    },

    /// The database could not be opened or brought to the current schema.
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: DatabaseSource,
    },

    /// A query failed; `action` says what it was doing.
    #[error("the database failed to {action}: {source}")]
    Database {
        action: &'static str,
        #[source]
        source: DatabaseSource,
    },

    /// A stored value could not be decoded (a corrupt or foreign database).
    #[error("corrupt value in column {column}: {message}")]
    Corrupt {
        column: &'static str,
        message: String,
    },

    /// The worker thread running the query panicked or was cancelled.
    #[error("the database worker failed: {source}")]
    Worker {
        #[source]
        source: tokio::task::JoinError,
    },
}

fn conflict_message(id: &DevboxId, expected: State, actual: Option<State>) -> String {
    match actual {
        Some(actual) => format!(
            "devbox {id} is {actual}, not {expected}: another operation changed it first; try again"
        ),
        None => format!("devbox {id} is gone: another operation deleted it first"),
    }
}

fn in_use_message(manifest: &Digest, devboxes: &[DevboxName]) -> String {
    let names: Vec<&str> = devboxes.iter().map(DevboxName::as_str).collect();
    let noun = if names.len() == 1 {
        "devbox"
    } else {
        "devboxes"
    };
    format!(
        "manifest {manifest} is used by {noun} {}; delete the {noun} first",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_says_what_the_other_writer_left() {
        let id = DevboxId::from_random([1; 8]);
        let e = StoreError::Conflict {
            id: id.clone(),
            expected: State::Stopped,
            actual: Some(State::Starting),
        };
        assert!(e.to_string().contains("is starting, not stopped"), "{e}");
        let e = StoreError::Conflict {
            id,
            expected: State::Stopped,
            actual: None,
        };
        assert!(e.to_string().contains("is gone"), "{e}");
    }

    #[test]
    fn an_image_in_use_names_its_devboxes() {
        let e = StoreError::InUse {
            manifest: Digest::of(b"m"),
            devboxes: vec!["web".parse().unwrap(), "db".parse().unwrap()],
        };
        assert!(e.to_string().contains("devboxes web, db"), "{e}");
    }
}
