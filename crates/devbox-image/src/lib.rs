//! The content store of Devbox: blobs on object storage, image manifests and
//! configs, tags, and the two ways images arrive — import of an uploaded
//! archive and pull from a remote registry.
//!
//! Blobs live in an [`object_store::ObjectStore`] (the local filesystem in
//! the embedded mode, any S3-compatible service for scale) and are reached
//! only through [`BlobStore`], which the registry handlers and garbage
//! collection share. Manifests and tags live in the metadata database
//! ([`devbox_store::Store`]). Writes follow one order so that a crash at any
//! point leaves nothing that names missing content: blobs first (each
//! verified before it becomes visible), then the manifest record, then the
//! tag.

mod blobs;
mod derive;
pub mod distribution;
mod documents;
mod error;
mod gc;
mod images;
mod import;
pub mod media;
mod object_storage;
mod origin;
mod platform;
mod progress;
mod pull;
mod push;
mod source;
mod verify;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use devbox_layer::compression::Compression;
use devbox_layer::digest::Digest;
use devbox_model::ImageRef;
use devbox_model::api::{Image, ProgressEvent, PullRequest};
use devbox_store::Store;
use object_store::local::LocalFileSystem;

pub use blobs::{BlobStore, BlobWriter};
pub use derive::{HistoryEntry, PendingLayer, StoredLayer};
pub use error::ImageError;
pub use gc::BlobGc;
pub use import::PendingImport;
pub use object_storage::{BlobLocation, BlobLocationError, S3Location};
pub use origin::Origin;
pub use platform::host_arch;
pub use pull::PendingPull;
pub use pull::auth::{Challenge, parse_challenges};
pub use pull::naming::{Remote, remote_for};
pub use push::PendingPush;

/// The content store. Cloning is cheap; clones share everything.
#[derive(Debug, Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    blobs: BlobStore,
    store: Arc<dyn Store>,
    /// Scratch space for conversions (layers being compressed, decompressed
    /// archives); must be on the same filesystem as local blobs so finished
    /// files can be renamed into place.
    scratch: PathBuf,
}

/// An image resolved for running: its layers in order (lowest first) and
/// the runtime settings from its config.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The manifest digest.
    pub digest: Digest,
    /// The reference it was resolved from (the digest itself for
    /// [`ImageStore::resolve_digest`]).
    pub reference: String,
    pub layers: Vec<ResolvedLayer>,
    pub config: ImageRuntimeConfig,
}

/// One layer of a resolved image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLayer {
    /// Digest of the stored (compressed) blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar stream.
    pub diff_id: Digest,
    pub compression: Compression,
    /// Size of the stored blob.
    pub size: u64,
}

/// What the runtime takes from an image config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRuntimeConfig {
    /// `NAME=value` entries.
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

impl ImageStore {
    /// A store keeping blobs under `<dir>/blobs` (through object_store's
    /// `LocalFileSystem`) and scratch files under `<dir>/tmp`. Scratch files
    /// left by an earlier crash are removed.
    pub fn open_local(dir: &Path, store: Arc<dyn Store>) -> Result<Self, ImageError> {
        let blobs = dir.join("blobs");
        let scratch = dir.join("tmp");
        std::fs::create_dir_all(&blobs).map_err(|e| ImageError::io(&blobs, e))?;
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch).map_err(|e| ImageError::io(&scratch, e))?;
        }
        std::fs::create_dir_all(&scratch).map_err(|e| ImageError::io(&scratch, e))?;
        let fs = LocalFileSystem::new_with_prefix(&blobs)
            .map_err(|e| ImageError::storage(blobs.display(), e))?;
        let blobs_root = blobs
            .canonicalize()
            .map_err(|e| ImageError::io(&blobs, e))?;
        Ok(Self::new(
            BlobStore::new(Arc::new(fs), Some(blobs_root)),
            store,
            scratch,
        ))
    }

    /// A store over any blob store (e.g. S3). `scratch` is a local directory
    /// for conversions.
    pub fn new(blobs: BlobStore, store: Arc<dyn Store>, scratch: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner {
                blobs,
                store,
                scratch,
            }),
        }
    }

    /// The blob layer.
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// The metadata database.
    pub fn metadata(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Imports an uploaded archive (a file the caller spooled) under
    /// `reference`, which must name a tag, not a digest: [`Self::begin_import`]
    /// then [`PendingImport::finish`], for callers that need not tell the
    /// two steps' errors apart.
    pub async fn import(
        &self,
        reference: &ImageRef,
        upload: &Path,
        progress: &(dyn Fn(ProgressEvent) + Send + Sync),
    ) -> Result<Image, ImageError> {
        self.begin_import(reference, upload, Origin::default())
            .await?
            .finish(progress)
            .await
    }

    /// The first step of an import, quick and reporting nothing: checks that
    /// `reference` names a tag and detects the upload's format from its
    /// content. Errors of this step (a digest reference, an empty or
    /// unreadable upload) are known before any progress is reported, so a
    /// server can answer them with their own status. Errors name the upload
    /// by `origin` (what the client said it sent), never by its spool file.
    ///
    /// The formats:
    ///
    /// - an OCI image layout in a tar (`oci-layout` + `index.json`); when the
    ///   index names several images, the one whose `ref.name` annotation is
    ///   the tag, else the one for `linux/<host arch>`;
    /// - a `docker save` archive (`manifest.json`); its uncompressed layers
    ///   are compressed with gzip under a new OCI manifest;
    /// - anything else is a plain rootfs tarball (uncompressed, gzip or
    ///   zstd), normalized into one layer with a generated config (linux,
    ///   host architecture, the usual `PATH`, `Cmd ["/bin/sh"]`, and no
    ///   time, so the same rootfs always gives the same manifest digest).
    ///
    /// [`PendingImport::finish`] then verifies every digest the archive
    /// states, layer diff IDs included, refuses layers the unpacker would
    /// refuse (with its reason), and sets the tag once everything is stored.
    ///
    /// Events of `finish`: for an OCI layout `Resolved`, then `Progress` and
    /// `LayerDone` per layer; for archives whose layers must be converted,
    /// `Progress` while converting (keyed by the layer's diff ID, or by an
    /// empty digest for a rootfs tarball, counting bytes of the upload),
    /// then `Resolved` and `LayerDone`; finally `Done`. Errors are returned,
    /// not reported.
    pub async fn begin_import(
        &self,
        reference: &ImageRef,
        upload: &Path,
        origin: Origin,
    ) -> Result<PendingImport, ImageError> {
        import::begin(self, reference, upload, origin).await
    }

    /// Pulls an image from an OCI distribution registry:
    /// [`Self::begin_pull`] then [`PendingPull::finish`].
    pub async fn pull(
        &self,
        req: &PullRequest,
        progress: &(dyn Fn(ProgressEvent) + Send + Sync),
    ) -> Result<Image, ImageError> {
        self.begin_pull(req).await?.finish(progress).await
    }

    /// The first step of a pull, reporting nothing: reaches the registry,
    /// authenticates and fetches the manifest (following an index to
    /// `linux/<host arch>`). Its errors (a malformed reference, a registry
    /// that is unreachable or answers in plain HTTP, refused credentials, an
    /// unknown manifest) are known before any progress is reported.
    ///
    /// The manifest is requested with the OCI manifest and index and the
    /// Docker schema 2 manifest and list media types; that platform's
    /// manifest is what gets stored and tagged. Access is anonymous until the
    /// registry challenges, then the Docker token flow (with the credentials
    /// sent to the token service as Basic auth, when given) or HTTP Basic. A
    /// reference without a domain is on Docker Hub (`registry-1.docker.io`,
    /// single names under `library/`); `insecure` means plain HTTP.
    ///
    /// [`PendingPull::finish`] fetches the config and the layers (gzip, zstd
    /// or uncompressed), each verified while it streams (digest, size, the
    /// diff ID of each layer, and the unpacker's refusals), skipping blobs
    /// already stored (`LayerDone { cached: true }`). The manifest is stored
    /// verbatim under its own media type; a reference naming only a digest
    /// stores the image in its repository without a tag.
    ///
    /// Events of `finish`: `Resolved`, `Progress` (at most every 100 ms per
    /// layer), `LayerDone` per layer, then `Done`. Errors are returned, not
    /// reported.
    pub async fn begin_pull(&self, req: &PullRequest) -> Result<PendingPull, ImageError> {
        pull::begin(self, req).await
    }

    /// The first step of a push of a stored image to another registry:
    /// finds the image and its blobs and reaches the registry (logging in
    /// with the credentials when it asks). [`PendingPush::finish`] uploads
    /// the blobs the registry lacks and puts the manifests verbatim, so the
    /// image keeps its digest.
    pub async fn begin_push(
        &self,
        req: &devbox_model::api::PushRequest,
    ) -> Result<PendingPush, ImageError> {
        push::begin(self, req).await
    }

    /// Every image: each tag, and each manifest a repository holds without a
    /// tag (shown as `repository@digest` with an empty tag), ordered by
    /// repository.
    pub async fn list(&self) -> Result<Vec<Image>, ImageError> {
        images::list(self).await
    }

    /// The image a reference names (by digest when it has one, else by tag).
    pub async fn resolve(&self, reference: &ImageRef) -> Result<ResolvedImage, ImageError> {
        images::resolve(self, reference).await
    }

    /// The image with this manifest digest.
    pub async fn resolve_digest(
        &self,
        manifest_digest: &Digest,
    ) -> Result<ResolvedImage, ImageError> {
        images::resolve_digest(self, manifest_digest).await
    }

    /// Removes a tag (or, for a digest reference, every tag of that
    /// repository pointing at the digest and the repository's hold on it)
    /// and deletes the manifest once nothing names it. Refuses with
    /// [`ImageError::InUse`], removing nothing, when that would leave
    /// devboxes without their image; the check and the removal are one
    /// transaction of the metadata database, so a concurrent create cannot
    /// slip between them. Blobs are left to garbage collection.
    pub async fn remove(&self, reference: &ImageRef) -> Result<(), ImageError> {
        images::remove(self, reference).await
    }

    /// A blocking reader over a blob, to be read inside `spawn_blocking`.
    pub async fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        self.inner.blobs.open_reader(digest).await
    }

    pub(crate) fn scratch(&self) -> &Path {
        &self.inner.scratch
    }
}
