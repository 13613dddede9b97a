//! Blob upload sessions of the distribution API: monolithic and chunked.
//!
//! A session spools what it receives into a file of its own in the image
//! store's scratch directory (inside the data directory, on the blobs'
//! filesystem), hashing as the bytes arrive, so chunks must come in order.
//! Nothing of a session is visible until it is finished with a digest that
//! the spooled bytes hash to; the file is then synced and handed to the blob
//! store the way every verified blob is (renamed into place on a local
//! store, streamed into a multipart upload otherwise). Sessions finishing
//! the same digest at once take turns, so the blob is stored once. A
//! session nobody touched for the idle timeout is removed with its file by
//! [`Uploads::sweep`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use devbox_model::Digest;
use futures::StreamExt;
use futures::stream::BoxStream;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::DistributionError;
use crate::{ImageError, ImageStore};

/// Bytes gathered before one write to the spool file.
const WRITE_BUFFER: usize = 1 << 20;

/// Limits of upload sessions.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Largest blob accepted, in bytes.
    pub max_blob_size: u64,
    /// A session idle for this long is removed.
    pub idle_timeout: Duration,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            max_blob_size: 64 << 30,
            idle_timeout: Duration::from_secs(3600),
        }
    }
}

/// Where an upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: String,
    /// Bytes received so far.
    pub size: u64,
}

#[derive(Debug)]
struct Spool {
    size: u64,
    hasher: Sha256,
    /// Set once the session ended (finished, cancelled, expired), so a
    /// request that waited for the lock finds it gone.
    closed: bool,
}

#[derive(Debug)]
struct Session {
    repository: String,
    file: PathBuf,
    spool: tokio::sync::Mutex<Spool>,
    touched: Mutex<Instant>,
}

impl Session {
    fn touch(&self) {
        *self.touched.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
}

/// The upload sessions of a registry. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Uploads {
    images: ImageStore,
    dir: PathBuf,
    limits: UploadLimits,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// One lock per digest being finished.
    finishing: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

fn random_id() -> Result<String, ImageError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| {
        ImageError::io(
            "upload id",
            std::io::Error::other(format!("cannot get random bytes: {e}")),
        )
    })?;
    // Shaped like a version 4 UUID, as registries' upload IDs usually are.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

impl Uploads {
    /// Upload sessions spooling into the image store's scratch directory.
    pub fn new(images: &ImageStore, limits: UploadLimits) -> Result<Self, ImageError> {
        let dir = images.scratch().join("uploads");
        std::fs::create_dir_all(&dir).map_err(|e| ImageError::io(&dir, e))?;
        Ok(Self {
            images: images.clone(),
            dir,
            limits,
            sessions: Mutex::default(),
            finishing: Mutex::default(),
        })
    }

    pub fn limits(&self) -> UploadLimits {
        self.limits
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for `repository`.
    pub async fn start(&self, repository: &str) -> Result<UploadStatus, DistributionError> {
        super::check_repository(repository)?;
        let id = random_id()?;
        let file = self.dir.join(&id);
        tokio::fs::File::create(&file)
            .await
            .map_err(|e| ImageError::io(&file, e))?;
        let session = Arc::new(Session {
            repository: repository.to_owned(),
            file,
            spool: tokio::sync::Mutex::new(Spool {
                size: 0,
                hasher: Sha256::new(),
                closed: false,
            }),
            touched: Mutex::new(Instant::now()),
        });
        self.sessions().insert(id.clone(), session);
        Ok(UploadStatus { id, size: 0 })
    }

    fn session(&self, repository: &str, id: &str) -> Result<Arc<Session>, DistributionError> {
        let unknown = || DistributionError::UploadUnknown {
            repository: repository.to_owned(),
            id: id.to_owned(),
        };
        let s = self.sessions().get(id).cloned().ok_or_else(unknown)?;
        if s.repository != repository {
            return Err(unknown());
        }
        s.touch();
        Ok(s)
    }

    /// Where the session stands.
    pub async fn status(
        &self,
        repository: &str,
        id: &str,
    ) -> Result<UploadStatus, DistributionError> {
        let s = self.session(repository, id)?;
        let spool = s.spool.lock().await;
        if spool.closed {
            return Err(DistributionError::UploadUnknown {
                repository: repository.to_owned(),
                id: id.to_owned(),
            });
        }
        Ok(UploadStatus {
            id: id.to_owned(),
            size: spool.size,
        })
    }

    /// Appends a chunk. With `start`, the chunk must begin where the
    /// session stands. Bytes received before the body broke off are kept, so
    /// a client can ask where the upload stands and resume from there.
    pub async fn append(
        &self,
        repository: &str,
        id: &str,
        start: Option<u64>,
        body: BoxStream<'_, Result<Bytes, std::io::Error>>,
    ) -> Result<UploadStatus, DistributionError> {
        let s = self.session(repository, id)?;
        let mut spool = s.spool.lock().await;
        if spool.closed {
            return Err(DistributionError::UploadUnknown {
                repository: repository.to_owned(),
                id: id.to_owned(),
            });
        }
        if let Some(start) = start
            && start != spool.size
        {
            return Err(DistributionError::RangeInvalid {
                start,
                size: spool.size,
            });
        }
        let result = self.write(&s, &mut spool, body).await;
        s.touch();
        if let Err(DistributionError::SizeInvalid { .. }) = &result {
            // Too large: the session cannot succeed any more.
            spool.closed = true;
            drop(spool);
            self.remove(id, &s).await;
        }
        result.map(|size| UploadStatus {
            id: id.to_owned(),
            size,
        })
    }

    /// Writes the body at the end of the spool file; returns the new size.
    ///
    /// The session's size and hash move only after bytes are written to
    /// the file, and the file is cut back to the recorded size first, so a
    /// request cancelled mid-write (its client gone) leaves the session
    /// consistent: the next chunk continues exactly after what was counted.
    async fn write(
        &self,
        s: &Session,
        spool: &mut Spool,
        mut body: BoxStream<'_, Result<Bytes, std::io::Error>>,
    ) -> Result<u64, DistributionError> {
        use tokio::io::AsyncSeekExt;
        let io = |e| ImageError::io(&s.file, e);
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&s.file)
            .await
            .map_err(io)?;
        file.set_len(spool.size).await.map_err(io)?;
        file.seek(std::io::SeekFrom::Start(spool.size))
            .await
            .map_err(io)?;
        let max = self.limits.max_blob_size;
        let mut pending = Vec::with_capacity(WRITE_BUFFER);
        let mut broke_off = None;
        loop {
            let chunk = match body.next().await {
                None => None,
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => {
                    broke_off = Some(e);
                    None
                }
            };
            if let Some(c) = &chunk {
                if spool.size + (pending.len() + c.len()) as u64 > max {
                    return Err(DistributionError::SizeInvalid {
                        reason: format!("a blob may be at most {max} bytes (a server setting)"),
                    });
                }
                pending.extend_from_slice(c);
            }
            if pending.len() >= WRITE_BUFFER || (chunk.is_none() && !pending.is_empty()) {
                file.write_all(&pending).await.map_err(io)?;
                file.flush().await.map_err(io)?;
                spool.hasher.update(&pending);
                spool.size += pending.len() as u64;
                pending.clear();
            }
            if chunk.is_none() {
                break;
            }
        }
        // What arrived before a break is kept, so the client can resume.
        match broke_off {
            None => Ok(spool.size),
            Some(e) => Err(DistributionError::UploadInvalid {
                reason: format!(
                    "the upload broke off after {} bytes: {e}; ask where it stands and resume",
                    spool.size
                ),
            }),
        }
    }

    /// Finishes the session with its last chunk (possibly empty): the
    /// bytes must hash to `digest`. The session ends either way (a wrong
    /// digest cannot become right). Returns the blob's size.
    pub async fn finish(
        &self,
        repository: &str,
        id: &str,
        digest: &Digest,
        body: BoxStream<'_, Result<Bytes, std::io::Error>>,
    ) -> Result<u64, DistributionError> {
        let s = self.session(repository, id)?;
        let mut spool = s.spool.lock().await;
        if spool.closed {
            return Err(DistributionError::UploadUnknown {
                repository: repository.to_owned(),
                id: id.to_owned(),
            });
        }
        let written = self.write(&s, &mut spool, body).await;
        if let Err(e) = written {
            // A broken-off last chunk leaves the session to be resumed.
            if !matches!(e, DistributionError::UploadInvalid { .. }) {
                spool.closed = true;
                drop(spool);
                self.remove(id, &s).await;
            }
            return Err(e);
        }
        spool.closed = true;
        let actual = Digest::from_sha256(spool.hasher.clone().finalize().into());
        let size = spool.size;
        drop(spool);
        self.sessions().remove(id);
        if actual != *digest {
            remove_file(&s.file).await;
            return Err(DistributionError::DigestInvalid {
                reason: format!("the uploaded {size} bytes have the digest {actual}, not {digest}"),
            });
        }
        let stored = self.store(&s.file, digest).await;
        if stored.is_err() {
            remove_file(&s.file).await;
        }
        stored?;
        tracing::debug!(%repository, %digest, size, "blob uploaded");
        Ok(size)
    }

    /// Hands a verified spool file to the blob store, once per digest.
    async fn store(&self, file: &std::path::Path, digest: &Digest) -> Result<(), ImageError> {
        let lock = {
            let mut f = self.finishing.lock().unwrap_or_else(|p| p.into_inner());
            f.entry(digest.clone()).or_default().clone()
        };
        let result = async {
            let _turn = lock.lock().await;
            // The file's bytes must be on disk before its name is the blob's.
            let f = tokio::fs::File::open(file)
                .await
                .map_err(|e| ImageError::io(file, e))?;
            f.sync_all().await.map_err(|e| ImageError::io(file, e))?;
            drop(f);
            self.images
                .blobs()
                .adopt_file(file, digest)
                .await
                .map(|_| ())
        }
        .await;
        let mut f = self.finishing.lock().unwrap_or_else(|p| p.into_inner());
        // The last one out removes the lock.
        if Arc::strong_count(&lock) == 2 {
            f.remove(digest);
        }
        result
    }

    /// Ends the session and removes what it received.
    pub async fn cancel(&self, repository: &str, id: &str) -> Result<(), DistributionError> {
        let s = self.session(repository, id)?;
        let mut spool = s.spool.lock().await;
        if spool.closed {
            return Err(DistributionError::UploadUnknown {
                repository: repository.to_owned(),
                id: id.to_owned(),
            });
        }
        spool.closed = true;
        drop(spool);
        self.remove(id, &s).await;
        Ok(())
    }

    async fn remove(&self, id: &str, s: &Session) {
        self.sessions().remove(id);
        remove_file(&s.file).await;
    }

    /// Removes the sessions idle for longer than the idle timeout, with
    /// their files; returns how many. A session busy with a request is not
    /// idle.
    pub async fn sweep(&self) -> usize {
        let idle = self.limits.idle_timeout;
        let stale: Vec<(String, Arc<Session>)> = self
            .sessions()
            .iter()
            .filter(|(_, s)| {
                s.touched
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .elapsed()
                    >= idle
            })
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect();
        let mut removed = 0;
        for (id, s) in stale {
            let Ok(mut spool) = s.spool.try_lock() else {
                continue;
            };
            if spool.closed {
                continue;
            }
            spool.closed = true;
            drop(spool);
            self.remove(&id, &s).await;
            tracing::info!(upload = %id, repository = %s.repository, "removed an abandoned upload");
            removed += 1;
        }
        removed
    }

    /// How many sessions are open.
    pub fn open_sessions(&self) -> usize {
        self.sessions().len()
    }
}

async fn remove_file(path: &std::path::Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove an upload's spool file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&'static [u8]]) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
        futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        )
        .boxed()
    }

    fn broken(chunk: &'static [u8]) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
        futures::stream::iter(vec![
            Ok(Bytes::from_static(chunk)),
            Err(std::io::Error::other("connection reset")),
        ])
        .boxed()
    }

    fn setup(limits: UploadLimits) -> (tempfile::TempDir, ImageStore, Uploads) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn devbox_store::Store> =
            Arc::new(devbox_store::SqliteStore::open_in_memory().unwrap());
        let images = ImageStore::open_local(dir.path(), store).unwrap();
        let uploads = Uploads::new(&images, limits).unwrap();
        (dir, images, uploads)
    }

    fn spool_files(dir: &tempfile::TempDir) -> usize {
        std::fs::read_dir(dir.path().join("tmp/uploads"))
            .unwrap()
            .count()
    }

    #[tokio::test]
    async fn chunks_in_order_make_a_verified_blob() {
        let (dir, images, uploads) = setup(UploadLimits::default());
        let id = uploads.start("bb").await.unwrap().id;
        let st = uploads
            .append("bb", &id, Some(0), body(&[b"hello "]))
            .await
            .unwrap();
        assert_eq!(st.size, 6);
        let e = uploads
            .append("bb", &id, Some(3), body(&[b"x"]))
            .await
            .unwrap_err();
        assert!(
            matches!(e, DistributionError::RangeInvalid { start: 3, size: 6 }),
            "{e}"
        );
        // A body that breaks off keeps what arrived, and the upload resumes there.
        let e = uploads
            .append("bb", &id, None, broken(b"wor"))
            .await
            .unwrap_err();
        assert!(matches!(e, DistributionError::UploadInvalid { .. }), "{e}");
        assert_eq!(uploads.status("bb", &id).await.unwrap().size, 9);
        assert!(matches!(
            uploads.status("other", &id).await,
            Err(DistributionError::UploadUnknown { .. })
        ));
        let d = Digest::of(b"hello world");
        assert_eq!(
            uploads.finish("bb", &id, &d, body(&[b"ld"])).await.unwrap(),
            11
        );
        assert_eq!(images.blobs().blob_size(&d).await.unwrap(), Some(11));
        assert_eq!(spool_files(&dir), 0);
        assert!(matches!(
            uploads.status("bb", &id).await,
            Err(DistributionError::UploadUnknown { .. })
        ));
    }

    #[tokio::test]
    async fn a_request_cancelled_mid_write_leaves_the_session_consistent() {
        let (_dir, images, uploads) = setup(UploadLimits::default());
        let id = uploads.start("bb").await.unwrap().id;
        uploads
            .append("bb", &id, None, body(&[b"abc"]))
            .await
            .unwrap();
        // A body that sends a chunk and then nothing, until its request is dropped.
        let hanging = futures::stream::iter(vec![Ok(Bytes::from_static(b"lost"))])
            .chain(futures::stream::pending())
            .boxed();
        let cut = tokio::time::timeout(
            Duration::from_millis(50),
            uploads.append("bb", &id, None, hanging),
        )
        .await;
        assert!(cut.is_err(), "the append was cancelled");
        assert_eq!(uploads.status("bb", &id).await.unwrap().size, 3);
        let d = Digest::of(b"abcdef");
        assert_eq!(
            uploads
                .finish("bb", &id, &d, body(&[b"def"]))
                .await
                .unwrap(),
            6
        );
        assert_eq!(
            images.blobs().read_blob(&d, 100).await.unwrap(),
            Bytes::from_static(b"abcdef")
        );
    }

    #[tokio::test]
    async fn a_wrong_digest_or_size_leaves_nothing() {
        let limits = UploadLimits {
            max_blob_size: 8,
            ..UploadLimits::default()
        };
        let (dir, images, uploads) = setup(limits);
        let id = uploads.start("bb").await.unwrap().id;
        let claimed = Digest::of(b"something else");
        let e = uploads
            .finish("bb", &id, &claimed, body(&[b"abc"]))
            .await
            .unwrap_err();
        assert!(matches!(e, DistributionError::DigestInvalid { .. }), "{e}");
        assert!(!images.blobs().has_blob(&claimed).await.unwrap());
        assert!(!images.blobs().has_blob(&Digest::of(b"abc")).await.unwrap());

        let id = uploads.start("bb").await.unwrap().id;
        let e = uploads
            .append("bb", &id, None, body(&[b"12345", b"6789"]))
            .await
            .unwrap_err();
        assert!(matches!(e, DistributionError::SizeInvalid { .. }), "{e}");
        assert_eq!(uploads.open_sessions(), 0);
        assert_eq!(spool_files(&dir), 0);
    }

    #[tokio::test]
    async fn idle_sessions_are_swept_with_their_files_and_cancel_removes_one() {
        let limits = UploadLimits {
            idle_timeout: Duration::ZERO,
            ..UploadLimits::default()
        };
        let (dir, _images, uploads) = setup(limits);
        let a = uploads.start("bb").await.unwrap().id;
        uploads
            .append("bb", &a, None, body(&[b"partial"]))
            .await
            .unwrap();
        let b = uploads.start("bb").await.unwrap().id;
        uploads.cancel("bb", &b).await.unwrap();
        assert_eq!(spool_files(&dir), 1);
        assert_eq!(uploads.sweep().await, 1);
        assert_eq!(spool_files(&dir), 0);
        assert!(matches!(
            uploads.append("bb", &a, None, body(&[b"more"])).await,
            Err(DistributionError::UploadUnknown { .. })
        ));
    }

    #[tokio::test]
    async fn concurrent_uploads_of_one_blob_store_it_once() {
        let (_dir, images, uploads) = setup(UploadLimits::default());
        let uploads = Arc::new(uploads);
        let content: &'static [u8] = b"the same layer";
        let d = Digest::of(content);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (uploads, d) = (uploads.clone(), d.clone());
            tasks.push(tokio::spawn(async move {
                let id = uploads.start("bb").await.unwrap().id;
                uploads
                    .finish("bb", &id, &d, body(&[content]))
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), content.len() as u64);
        }
        let listed: Vec<_> =
            futures::TryStreamExt::try_collect::<Vec<_>>(images.blobs().list_blobs())
                .await
                .unwrap();
        assert_eq!(listed, vec![(d, content.len() as u64)]);
        assert!(uploads.finishing.lock().unwrap().is_empty());
    }
}
