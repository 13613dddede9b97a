//! Content-addressed blobs on object storage.
//!
//! A blob lives at `sha256/<hex>` in the object store. Writers never make a
//! partial blob visible: content is streamed into a multipart upload (a
//! staging object the store only publishes on completion) while it is
//! hashed, and the upload completes only when the digest matches. Because the
//! name is the hash, a blob that exists already is kept as it is, and two
//! writers of the same digest cannot disagree.
//!
//! When the object store is the local filesystem, two fast paths avoid
//! copying bytes through the store: a file this crate wrote and hashed itself
//! is renamed into place, and readers open the file directly.

use std::io::Read;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use devbox_layer::digest::Digest;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use sha2::{Digest as _, Sha256};

use crate::ImageError;

/// How many multipart parts one writer keeps in flight.
const PART_CONCURRENCY: usize = 4;

/// The blob layer shared by import, pull, the registry handlers and GC.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// The directory the object store keeps its objects in, when it is a
    /// `LocalFileSystem`; enables the fast paths.
    local_root: Option<PathBuf>,
}

impl BlobStore {
    /// A blob store over any object store. Pass `local_root` only when `store`
    /// is a `LocalFileSystem` rooted at that directory.
    pub fn new(store: Arc<dyn ObjectStore>, local_root: Option<PathBuf>) -> Self {
        Self { store, local_root }
    }

    /// The underlying object store (for range reads by the registry).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Where a blob lives in the object store.
    pub fn location(digest: &Digest) -> Path {
        Path::from(format!("sha256/{}", digest.hex()))
    }

    /// Whether the blob is stored.
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool, ImageError> {
        Ok(self.blob_size(digest).await?.is_some())
    }

    /// The size of a stored blob, or `None` when it is not stored.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, ImageError> {
        match self.store.head(&Self::location(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(ImageError::storage(format!("blob {digest}"), e)),
        }
    }

    /// Starts writing a blob whose digest (and, when known, size) is given;
    /// [`BlobWriter::finish`] publishes it only if the content matches.
    pub async fn writer(
        &self,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> Result<BlobWriter, ImageError> {
        let location = Self::location(expected);
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(|e| ImageError::storage(format!("blob {expected}"), e))?;
        Ok(BlobWriter {
            upload: WriteMultipart::new(upload),
            hasher: Sha256::new(),
            size: 0,
            expected: expected.clone(),
            expected_size,
        })
    }

    /// Stores a stream of bytes under `expected`, verifying digest and size.
    /// A blob that is stored already is not written again. Returns the size.
    pub async fn put_blob<E>(
        &self,
        expected: &Digest,
        expected_size: Option<u64>,
        mut body: BoxStream<'_, Result<Bytes, E>>,
    ) -> Result<u64, ImageError>
    where
        ImageError: From<E>,
    {
        if let Some(size) = self.blob_size(expected).await? {
            return Ok(size);
        }
        let mut w = self.writer(expected, expected_size).await?;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    w.abort().await;
                    return Err(e.into());
                }
            };
            w.write(chunk).await?;
        }
        w.finish().await
    }

    /// Stores a small blob held in memory. With `expected`, the bytes must
    /// hash to it. Returns the digest.
    pub async fn put_bytes(
        &self,
        expected: Option<&Digest>,
        bytes: Bytes,
    ) -> Result<Digest, ImageError> {
        let digest = Digest::of(&bytes);
        if let Some(expected) = expected {
            check_digest(&format!("blob {expected}"), expected, &digest)?;
        }
        if !self.has_blob(&digest).await? {
            self.store
                .put(&Self::location(&digest), PutPayload::from_bytes(bytes))
                .await
                .map_err(|e| ImageError::storage(format!("blob {digest}"), e))?;
        }
        Ok(digest)
    }

    /// Moves a local file into the store as the blob `digest`. The caller
    /// computed `digest` over exactly the file's bytes while writing it (this
    /// is not a path for untrusted files). On a local object store the file
    /// is renamed into place (it must be on the same filesystem); otherwise it
    /// is streamed. The file is gone afterwards either way. Returns whether
    /// the blob was stored already (the file was then simply removed).
    pub async fn adopt_file(&self, file: &FsPath, digest: &Digest) -> Result<bool, ImageError> {
        if self.has_blob(digest).await? {
            return remove_file(file).await.map(|()| true);
        }
        let location = Self::location(digest);
        if let Some(root) = &self.local_root {
            let target = root.join("sha256").join(digest.hex());
            let dir = root.join("sha256");
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| ImageError::io(&dir, e))?;
            return tokio::fs::rename(file, &target)
                .await
                .map(|()| false)
                .map_err(|e| ImageError::io(file, e));
        }
        let size = tokio::fs::metadata(file)
            .await
            .map_err(|e| ImageError::io(file, e))?
            .len();
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| ImageError::io(file, e))?;
        let path = file.to_owned();
        let body = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20)
            .map_err(move |e| ImageError::io(&path, e))
            .boxed();
        let mut w = self.writer(digest, Some(size)).await?;
        let mut body = body;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => w.write(c).await?,
                Err(e) => {
                    w.abort().await;
                    return Err(e);
                }
            }
        }
        w.finish().await?;
        tracing::debug!(%location, "streamed local file into the blob store");
        remove_file(file).await.map(|()| false)
    }

    /// A whole small blob, refusing blobs larger than `max` bytes.
    pub async fn read_blob(&self, digest: &Digest, max: u64) -> Result<Bytes, ImageError> {
        let what = format!("blob {digest}");
        let got = self
            .store
            .get(&Self::location(digest))
            .await
            .map_err(|e| not_found_or(&what, e))?;
        if got.meta.size > max {
            return Err(ImageError::document(
                &what,
                format!("{} bytes is more than the limit of {max}", got.meta.size),
            ));
        }
        let bytes = got
            .bytes()
            .await
            .map_err(|e| ImageError::storage(&what, e))?;
        // The store is trusted, but a blob read back for parsing is cheap to
        // check and catches a corrupted disk early.
        check_digest(&what, digest, &Digest::of(&bytes))?;
        Ok(bytes)
    }

    /// The blob as a stream of chunks.
    pub async fn blob_stream(
        &self,
        digest: &Digest,
    ) -> Result<BoxStream<'static, Result<Bytes, ImageError>>, ImageError> {
        let what = format!("blob {digest}");
        let got = self
            .store
            .get(&Self::location(digest))
            .await
            .map_err(|e| not_found_or(&what, e))?;
        Ok(got
            .into_stream()
            .map_err(move |e| ImageError::storage(&what, e))
            .boxed())
    }

    /// A blocking reader over a blob. It must be read on a blocking thread
    /// (e.g. inside `spawn_blocking`), never on an async worker.
    pub async fn open_reader(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        if let Some(root) = &self.local_root {
            let path = root.join("sha256").join(digest.hex());
            return match std::fs::File::open(&path) {
                Ok(f) => Ok(Box::new(f)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ImageError::NotFound {
                    what: format!("blob {digest}"),
                }),
                Err(e) => Err(ImageError::io(path, e)),
            };
        }
        let stream = self
            .blob_stream(digest)
            .await?
            .map_err(|e| std::io::Error::other(e.to_string()));
        let reader = tokio_util::io::StreamReader::new(stream);
        Ok(Box::new(tokio_util::io::SyncIoBridge::new(reader)))
    }

    /// Deletes a blob (for garbage collection). Deleting a missing blob succeeds.
    pub async fn delete_blob(&self, digest: &Digest) -> Result<(), ImageError> {
        match self.store.delete(&Self::location(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ImageError::storage(format!("blob {digest}"), e)),
        }
    }

    /// Every stored blob with its size (for garbage collection). Objects
    /// whose names are not digests are skipped.
    pub fn list_blobs(&self) -> BoxStream<'_, Result<(Digest, u64), ImageError>> {
        let prefix = Path::from("sha256");
        self.store
            .list(Some(&prefix))
            .map_err(|e| ImageError::storage("blob listing", e))
            .try_filter_map(|meta| async move {
                let name = meta.location.filename().unwrap_or_default();
                Ok(format!("sha256:{name}")
                    .parse::<Digest>()
                    .ok()
                    .map(|d| (d, meta.size)))
            })
            .boxed()
    }
}

/// A stored blob: its digest, size, and when it was last written.
pub type BlobMeta = (Digest, u64, chrono::DateTime<chrono::Utc>);

impl BlobStore {
    /// Every stored blob with its size and when it was last written.
    pub fn list_blob_meta(&self) -> BoxStream<'_, Result<BlobMeta, ImageError>> {
        let prefix = Path::from("sha256");
        self.store
            .list(Some(&prefix))
            .map_err(|e| ImageError::storage("blob listing", e))
            .try_filter_map(|meta| async move {
                let name = meta.location.filename().unwrap_or_default();
                Ok(format!("sha256:{name}")
                    .parse::<Digest>()
                    .ok()
                    .map(|d| (d, meta.size, meta.last_modified)))
            })
            .boxed()
    }
}

/// A blob being written; see [`BlobStore::writer`].
pub struct BlobWriter {
    upload: WriteMultipart,
    hasher: Sha256,
    size: u64,
    expected: Digest,
    expected_size: Option<u64>,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("expected", &self.expected)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.size
    }

    /// Appends a chunk. Fails (and discards the upload) as soon as the
    /// content grows past the expected size.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), ImageError> {
        self.size += chunk.len() as u64;
        if let Some(limit) = self.expected_size
            && self.size > limit
        {
            return Err(ImageError::SizeMismatch {
                what: format!("blob {}", self.expected),
                expected: limit,
                actual: self.size,
            });
        }
        self.hasher.update(&chunk);
        self.upload
            .wait_for_capacity(PART_CONCURRENCY)
            .await
            .map_err(|e| ImageError::storage(format!("blob {}", self.expected), e))?;
        self.upload.put(chunk);
        Ok(())
    }

    /// Checks the content written so far against the expected digest and
    /// size, without publishing anything.
    pub fn check(&self) -> Result<(), ImageError> {
        let what = format!("blob {}", self.expected);
        if let Some(n) = self.expected_size
            && n != self.size
        {
            return Err(ImageError::SizeMismatch {
                what,
                expected: n,
                actual: self.size,
            });
        }
        check_digest(
            &what,
            &self.expected,
            &Digest::from_sha256(self.hasher.clone().finalize().into()),
        )
    }

    /// Publishes the blob if its digest and size match; otherwise discards it.
    /// Returns the size.
    pub async fn finish(self) -> Result<u64, ImageError> {
        if let Err(e) = self.check() {
            let _ = self.upload.abort().await;
            return Err(e);
        }
        self.upload
            .finish()
            .await
            .map_err(|e| ImageError::storage(format!("blob {}", self.expected), e))?;
        Ok(self.size)
    }

    /// Discards the upload.
    pub async fn abort(self) {
        if let Err(e) = self.upload.abort().await {
            tracing::warn!(blob = %self.expected, error = %e, "cannot discard a partial blob upload");
        }
    }
}

pub(crate) fn check_digest(
    what: &str,
    expected: &Digest,
    actual: &Digest,
) -> Result<(), ImageError> {
    if expected == actual {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch {
            what: what.to_owned(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

fn not_found_or(what: &str, e: object_store::Error) -> ImageError {
    match e {
        object_store::Error::NotFound { .. } => ImageError::NotFound {
            what: what.to_owned(),
        },
        e => ImageError::storage(what, e),
    }
}

async fn remove_file(file: &FsPath) -> Result<(), ImageError> {
    match tokio::fs::remove_file(file).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io(file, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn stores() -> (tempfile::TempDir, Vec<BlobStore>) {
        let dir = tempfile::tempdir().unwrap();
        let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let root = dir.path().canonicalize().unwrap();
        let stores = vec![
            BlobStore::new(Arc::new(InMemory::new()), None),
            BlobStore::new(Arc::new(local), Some(root)),
        ];
        (dir, stores)
    }

    fn body(chunks: &[&'static [u8]]) -> BoxStream<'static, Result<Bytes, ImageError>> {
        futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        )
        .boxed()
    }

    #[tokio::test]
    async fn blobs_are_verified_before_they_appear() {
        let (_dir, stores) = stores();
        for blobs in stores {
            let good = Digest::of(b"hello world");
            let n = blobs
                .put_blob(&good, Some(11), body(&[b"hello ", b"world"]))
                .await
                .unwrap();
            assert_eq!(n, 11);
            assert_eq!(blobs.blob_size(&good).await.unwrap(), Some(11));

            let other = Digest::of(b"something else");
            let e = blobs
                .put_blob(&other, None, body(&[b"hello ", b"there"]))
                .await
                .unwrap_err();
            assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
            assert!(!blobs.has_blob(&other).await.unwrap());

            let e = blobs
                .put_blob(&other, Some(3), body(&[b"four"]))
                .await
                .unwrap_err();
            assert!(matches!(e, ImageError::SizeMismatch { .. }), "{e}");
            assert!(!blobs.has_blob(&other).await.unwrap());

            let e = blobs
                .put_bytes(Some(&other), Bytes::from_static(b"x"))
                .await
                .unwrap_err();
            assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
            let d = blobs
                .put_bytes(None, Bytes::from_static(b"x"))
                .await
                .unwrap();
            assert_eq!(
                blobs.read_blob(&d, 10).await.unwrap(),
                Bytes::from_static(b"x")
            );
            assert!(blobs.read_blob(&good, 5).await.is_err());

            let listed: Vec<(Digest, u64)> = blobs.list_blobs().try_collect().await.unwrap();
            assert_eq!(listed.len(), 2, "{listed:?}");
            blobs.delete_blob(&d).await.unwrap();
            blobs.delete_blob(&d).await.unwrap();
            assert!(!blobs.has_blob(&d).await.unwrap());
        }
    }

    #[tokio::test]
    async fn files_are_adopted_and_read_back_blocking() {
        let (dir, stores) = stores();
        for (i, blobs) in stores.into_iter().enumerate() {
            let content = vec![i as u8; 3 << 20];
            let d = Digest::of(&content);
            let file = dir.path().join(format!("scratch-{i}"));
            std::fs::write(&file, &content).unwrap();
            blobs.adopt_file(&file, &d).await.unwrap();
            assert!(!file.exists());
            assert_eq!(
                blobs.blob_size(&d).await.unwrap(),
                Some(content.len() as u64)
            );

            let mut r = blobs.open_reader(&d).await.unwrap();
            let back = tokio::task::spawn_blocking(move || {
                let mut v = Vec::new();
                r.read_to_end(&mut v).unwrap();
                v
            })
            .await
            .unwrap();
            assert!(back == content, "blob {i} read back differently");

            let missing = Digest::of(b"missing");
            let e = blobs.open_reader(&missing).await.err().unwrap();
            assert!(matches!(e, ImageError::NotFound { .. }), "{e}");
        }
    }
}
