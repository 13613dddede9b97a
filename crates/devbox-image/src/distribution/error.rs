//! Errors of the distribution API's content operations. Each variant stands
//! for one error code of the OCI distribution spec; the server's registry
//! module turns them into the spec's JSON error bodies and statuses.

use devbox_model::DevboxName;

use crate::ImageError;

/// Why a registry request on the content store failed.
#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    /// `BLOB_UNKNOWN`: the blob is not stored.
    #[error("blob {digest} is not stored in this registry")]
    BlobUnknown { digest: String },

    /// `BLOB_UPLOAD_UNKNOWN`: no such upload session (it ended, expired or
    /// never existed).
    #[error("upload {id} of repository {repository} is unknown; it may have expired: start again")]
    UploadUnknown { repository: String, id: String },

    /// `BLOB_UPLOAD_INVALID`: a chunk does not continue the upload where it
    /// stands, or the upload broke off.
    #[error("invalid upload: {reason}")]
    UploadInvalid { reason: String },

    /// `RANGE_INVALID` (416): a chunk's range does not start where the
    /// upload stands.
    #[error(
        "the chunk starts at byte {start}, but the upload holds {size} bytes; resume at {size}"
    )]
    RangeInvalid { start: u64, size: u64 },

    /// `DIGEST_INVALID`: a digest is malformed, or content does not hash to it.
    #[error("{reason}")]
    DigestInvalid { reason: String },

    /// `SIZE_INVALID`: content is not as long as stated, or longer than the
    /// server accepts.
    #[error("{reason}")]
    SizeInvalid { reason: String },

    /// `MANIFEST_INVALID`: a pushed manifest is malformed or of a media type
    /// this registry does not store.
    #[error("invalid manifest: {reason}")]
    ManifestInvalid { reason: String },

    /// `MANIFEST_BLOB_UNKNOWN`: a pushed manifest names a blob (or an index
    /// a manifest) that is not stored; push it first.
    #[error(
        "manifest names {what} {digest}, which is not stored in repository {repository}: push it first"
    )]
    ManifestBlobUnknown {
        repository: String,
        what: &'static str,
        digest: String,
    },

    /// `MANIFEST_UNKNOWN`: the repository has no such tag or manifest.
    #[error("manifest {reference} is not in repository {repository}")]
    ManifestUnknown {
        repository: String,
        reference: String,
    },

    /// `NAME_INVALID`: not a repository name.
    #[error(
        "invalid repository name {name:?}: path components of lowercase letters and digits separated by '.', '_', '__' or '-'"
    )]
    NameInvalid { name: String },

    /// `NAME_UNKNOWN`: the repository holds nothing.
    #[error("repository {name} is not known to this registry")]
    NameUnknown { name: String },

    /// `TAG_INVALID`: not a tag.
    #[error(
        "invalid tag {tag:?}: 1 to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
    )]
    TagInvalid { tag: String },

    /// `DENIED` (409): the manifest is the last name of an image devboxes
    /// were created from.
    #[error(
        "{reference} is used by devboxes {}; delete them first",
        names(devboxes)
    )]
    InUse {
        reference: String,
        devboxes: Vec<DevboxName>,
    },

    /// `UNSUPPORTED`: the request is well formed, but this registry does not
    /// do that.
    #[error("{reason}")]
    Unsupported { reason: String },

    /// Any other failure of the content store (storage, database); these are
    /// the server's fault, not the client's.
    #[error(transparent)]
    Image(Box<ImageError>),
}

impl From<ImageError> for DistributionError {
    fn from(e: ImageError) -> Self {
        DistributionError::Image(Box::new(e))
    }
}

impl From<devbox_store::StoreError> for DistributionError {
    fn from(e: devbox_store::StoreError) -> Self {
        ImageError::Store(e).into()
    }
}

fn names(devboxes: &[DevboxName]) -> String {
    devboxes
        .iter()
        .map(DevboxName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
