//! Errors of the content store, import and pull.

use std::io;
use std::path::PathBuf;

use devbox_model::DevboxName;
use devbox_model::api::ErrorCode;
use devbox_store::StoreError;

use crate::origin::{Origin, shorten};

/// Longest tar entry name quoted in a message, in characters.
const MAX_ENTRY: usize = 200;
/// Longest reason quoted in a message, in characters.
const MAX_REASON: usize = 400;

/// Why an image operation failed. [`ImageError::code`] maps each variant to
/// the API error code (and so to an HTTP status).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// An image, manifest or blob the operation needs does not exist.
    #[error("{what} not found")]
    NotFound { what: String },

    /// An uploaded archive is not a readable tar, or its image metadata is
    /// inconsistent. `origin` names the upload as the user gave it.
    #[error("invalid image archive{origin}: {reason}")]
    InvalidArchive { origin: Origin, reason: String },

    /// A plain rootfs tarball holds entries that could escape its root, or
    /// cannot be read. `detail` is the unpacker's reason with long names
    /// shortened.
    #[error("refused the uploaded rootfs tarball{origin}: {detail}")]
    RefusedRootfs {
        origin: Origin,
        detail: String,
        #[source]
        source: devbox_layer::UnpackError,
    },

    /// A layer of an image holds entries the unpacker refuses (they could
    /// escape its directory), so no devbox could start from it.
    #[error("refused {what}: {detail}")]
    RefusedLayer {
        what: String,
        detail: String,
        #[source]
        source: devbox_layer::UnpackError,
    },

    /// The image cannot lose its last name while devboxes are created from it.
    #[error(
        "image {reference} is used by {}; delete the {} first",
        devbox_list(devboxes),
        devbox_noun(devboxes)
    )]
    InUse {
        reference: String,
        devboxes: Vec<DevboxName>,
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

    /// A remote registry does not answer at its address.
    #[error("cannot reach the registry {registry}: {reason}")]
    Unreachable { registry: String, reason: String },

    /// A registry answered in plain HTTP where HTTPS was expected.
    #[error("the registry {registry} answered over plain HTTP; pass --insecure to use it")]
    PlainHttp { registry: String },

    /// A remote registry failed in another way, or the transfer broke off.
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
            | ImageError::RefusedLayer { .. }
            | ImageError::PlainHttp { .. }
            | ImageError::DigestMismatch { .. }
            | ImageError::SizeMismatch { .. }
            | ImageError::UnsupportedMediaType { .. }
            | ImageError::InvalidDocument { .. }
            | ImageError::NoMatchingPlatform { .. }
            | ImageError::InvalidReference { .. } => ErrorCode::InvalidArgument,
            ImageError::InUse { .. } => ErrorCode::Conflict,
            ImageError::Upstream { .. }
            | ImageError::Http { .. }
            | ImageError::Unreachable { .. } => ErrorCode::Upstream,
            ImageError::Unauthorized { .. } => ErrorCode::Unauthorized,
            ImageError::Storage { source, .. } => match source {
                object_store::Error::NotFound { .. } => ErrorCode::NotFound,
                _ => ErrorCode::Internal,
            },
            ImageError::Store(e) => match e {
                StoreError::NotFound { .. } => ErrorCode::NotFound,
                StoreError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
                StoreError::Conflict { .. } | StoreError::InUse { .. } => ErrorCode::Conflict,
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

    /// An invalid upload; the reason (which may quote names from the
    /// archive) is shortened.
    pub(crate) fn archive(origin: &Origin, reason: impl Into<String>) -> Self {
        ImageError::InvalidArchive {
            origin: origin.clone(),
            reason: shorten(&reason.into(), MAX_REASON),
        }
    }

    pub(crate) fn document(what: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        ImageError::InvalidDocument {
            what: shorten(&what.to_string(), MAX_REASON),
            reason: shorten(&reason.to_string(), MAX_REASON),
        }
    }

    /// A refused rootfs tarball.
    pub(crate) fn refused_rootfs(origin: &Origin, source: devbox_layer::UnpackError) -> Self {
        ImageError::RefusedRootfs {
            origin: origin.clone(),
            detail: unpack_detail(&source),
            source,
        }
    }

    /// A refused layer; `what` names it (`layer sha256:… of …`).
    pub(crate) fn refused_layer(what: String, source: devbox_layer::UnpackError) -> Self {
        ImageError::RefusedLayer {
            what,
            detail: unpack_detail(&source),
            source,
        }
    }
}

/// The unpacker's reason, with the entry named first and long names (a
/// 10,000-deep path is one) shortened in the middle.
fn unpack_detail(e: &devbox_layer::UnpackError) -> String {
    use devbox_layer::UnpackError as U;
    match e {
        U::Refused { entry, reason } => format!(
            "entry {:?}: {}",
            shorten(entry, MAX_ENTRY),
            shorten(&reason.to_string(), MAX_REASON)
        ),
        U::Io {
            entry,
            action,
            source,
        } => format!(
            "entry {:?}: cannot {action}: {source}",
            shorten(entry, MAX_ENTRY)
        ),
        other => shorten(&other.to_string(), MAX_REASON),
    }
}

fn devbox_noun(devboxes: &[DevboxName]) -> &'static str {
    if devboxes.len() == 1 {
        "devbox"
    } else {
        "devboxes"
    }
}

fn devbox_list(devboxes: &[DevboxName]) -> String {
    let names: Vec<&str> = devboxes.iter().map(DevboxName::as_str).collect();
    format!("{} {}", devbox_noun(devboxes), names.join(", "))
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
        let e = ImageError::InUse {
            reference: "base:1".into(),
            devboxes: vec!["web".parse().unwrap()],
        };
        assert_eq!(e.code(), ErrorCode::Conflict);
        assert_eq!(
            e.to_string(),
            "image base:1 is used by devbox web; delete the devbox first"
        );
    }

    #[test]
    fn refusals_name_the_upload_and_stay_short() {
        let entry = "a/".repeat(10_000) + "x";
        let source = devbox_layer::UnpackError::Refused {
            entry: entry.clone(),
            reason: devbox_layer::Refusal::SymlinkParent {
                parent: entry[..entry.len() - 2].to_owned(),
            },
        };
        let e = ImageError::refused_rootfs(&Origin::new(Some("./rootfs.tar")), source);
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "refused the uploaded rootfs tarball (from ./rootfs.tar): entry \"a/a/"
            ),
            "{msg}"
        );
        assert!(msg.contains('…'), "{msg}");
        assert!(msg.ends_with("a/a\" is a symlink"), "{msg}");
        assert!(msg.chars().count() < 700, "{} chars", msg.chars().count());
    }
}
