//! Errors of the content store, import and pull.

use std::io;
use std::path::PathBuf;

use devbox_model::api::ErrorCode;
use devbox_store::StoreError;

/// Why an image operation failed. [`ImageError::code`] maps each variant to
/// the API error code (and so to an HTTP status).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// An image, manifest or blob the operation needs does not exist.
    #[error("{what} not found")]
    NotFound { what: String },

    /// An uploaded archive is not a readable tar, or its image metadata is
    /// inconsistent.
    #[error("invalid image archive {path}: {reason}")]
    InvalidArchive { path: PathBuf, reason: String },

    /// A plain rootfs tarball holds entries that could escape its root, or
    /// cannot be read.
    #[error("refused rootfs tarball {path}: {source}")]
    RefusedRootfs {
        path: PathBuf,
        #[source]
        source: devbox_layer::UnpackError,
    },

    /// Content does not hash to the digest that names it.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    /// Content is not as long as its descriptor says.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    /// A manifest, index or layer has a media type this store cannot use.
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType { what: String, media_type: String },

    /// A manifest, index, config or layout document is malformed.
    #[error("invalid {what}: {reason}")]
    InvalidDocument { what: String, reason: String },

    /// An image index offers no image for this machine's platform.
    #[error("{what} has no image for linux/{arch}")]
    NoMatchingPlatform { what: String, arch: String },

    /// A reference cannot be used for this operation.
    #[error("invalid reference {reference}: {reason}")]
    InvalidReference {
        reference: String,
        reason: &'static str,
    },

    /// A remote registry answered with an error status.
    #[error("registry answered {status} for {url}: {body}")]
    Upstream {
        url: String,
        status: u16,
        body: String,
    },

    /// A remote registry could not be reached or the transfer broke off.
    #[error("cannot fetch {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// A remote registry refused the credentials (or demanded some).
    #[error("registry {registry} refused access: {detail}")]
    Unauthorized { registry: String, detail: String },

    /// The object storage holding blobs failed.
    #[error("blob storage failed for {what}: {source}")]
    Storage {
        what: String,
        #[source]
        source: object_store::Error,
    },

    /// The metadata database failed.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Compressing a layer failed.
    #[error("cannot write layer {what}: {source}")]
    Layer {
        what: String,
        #[source]
        source: devbox_layer::CompressionError,
    },

    /// A worker thread panicked or was cancelled.
    #[error("image worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

impl ImageError {
    /// The API error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ImageError::NotFound { .. } => ErrorCode::NotFound,
            ImageError::InvalidArchive { .. }
            | ImageError::RefusedRootfs { .. }
            | ImageError::DigestMismatch { .. }
            | ImageError::SizeMismatch { .. }
            | ImageError::UnsupportedMediaType { .. }
            | ImageError::InvalidDocument { .. }
            | ImageError::NoMatchingPlatform { .. }
            | ImageError::InvalidReference { .. } => ErrorCode::InvalidArgument,
            ImageError::Upstream { .. } | ImageError::Http { .. } => ErrorCode::Upstream,
            ImageError::Unauthorized { .. } => ErrorCode::Unauthorized,
            ImageError::Storage { source, .. } => match source {
                object_store::Error::NotFound { .. } => ErrorCode::NotFound,
                _ => ErrorCode::Internal,
            },
            ImageError::Store(e) => match e {
                StoreError::NotFound { .. } => ErrorCode::NotFound,
                StoreError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
                _ => ErrorCode::Internal,
            },
            ImageError::Io { source, .. } => io_code(source),
            ImageError::Layer { source, .. } => match source {
                devbox_layer::CompressionError::Write { source, .. } => io_code(source),
                // The tar being compressed came from the upload.
                devbox_layer::CompressionError::Read { .. }
                | devbox_layer::CompressionError::Decoder { .. } => ErrorCode::InvalidArgument,
            },
            ImageError::Worker(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        ImageError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn storage(what: impl std::fmt::Display, source: object_store::Error) -> Self {
        ImageError::Storage {
            what: what.to_string(),
            source,
        }
    }

    pub(crate) fn archive(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        ImageError::InvalidArchive {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn document(what: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        ImageError::InvalidDocument {
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }
}

fn io_code(e: &io::Error) -> ErrorCode {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => ErrorCode::InsufficientStorage,
        _ => ErrorCode::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_api_codes() {
        let e = ImageError::DigestMismatch {
            what: "layer".into(),
            expected: "sha256:a".into(),
            actual: "sha256:b".into(),
        };
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.to_string().contains("sha256:a"), "{e}");
        let e = ImageError::Unauthorized {
            registry: "r".into(),
            detail: "no".into(),
        };
        assert_eq!(e.code(), ErrorCode::Unauthorized);
        let e = ImageError::Store(StoreError::NotFound {
            what: "manifest x".into(),
        });
        assert_eq!(e.code(), ErrorCode::NotFound);
        let e = ImageError::io("/x", io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(e.code(), ErrorCode::InsufficientStorage);
    }
}
