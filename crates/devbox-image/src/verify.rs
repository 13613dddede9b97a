//! Storing a layer blob while verifying both of its digests: the digest of
//! the bytes (checked by the blob writer) and the diff ID of the
//! uncompressed tar, computed by a worker thread that decompresses a copy
//! of the stream as it passes.
//!
//! The diff ID matters beyond integrity: the runtime keys unpacked layers by
//! it, so a layer whose content disagrees with its config must never be
//! stored.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use devbox_layer::compression::{self, Compression};
use devbox_layer::digest::Digest;
use devbox_model::api::ProgressEvent;
use futures::StreamExt;
use futures::stream::BoxStream;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ImageError;
use crate::blobs::BlobStore;
use crate::documents::LayerDesc;
use crate::progress::{Progress, Throttle};

/// Computes the digest of the decompressed stream on a blocking thread.
struct DiffIdHasher {
    tx: Option<mpsc::Sender<Bytes>>,
    task: JoinHandle<io::Result<Digest>>,
}

impl DiffIdHasher {
    fn start(compression: Compression) -> Self {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let task = tokio::task::spawn_blocking(move || {
            let input = ChannelReader {
                rx,
                chunk: Bytes::new(),
            };
            let mut tar = compression::decompress(input, compression).map_err(io::Error::other)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = tar.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            Ok(Digest::from_sha256(hasher.finalize().into()))
        });
        Self { tx: Some(tx), task }
    }

    async fn feed(&mut self, chunk: Bytes) {
        // A closed channel means the worker stopped early on bad data; its
        // error is reported by `finish`.
        if let Some(tx) = &self.tx
            && tx.send(chunk).await.is_err()
        {
            self.tx = None;
        }
    }

    async fn finish(mut self) -> Result<io::Result<Digest>, ImageError> {
        self.tx = None;
        Ok(self.task.await?)
    }
}

/// A `Read` over chunks arriving on a channel; used on a blocking thread.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => self.chunk = c,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// Stores one layer from `body`, verifying its digest, size and diff ID
/// before it becomes visible, and reporting throttled progress.
pub(crate) async fn store_layer(
    blobs: &BlobStore,
    layer: &LayerDesc,
    diff_id: &Digest,
    mut body: BoxStream<'_, Result<Bytes, ImageError>>,
    progress: Progress<'_>,
) -> Result<u64, ImageError> {
    let mut writer = blobs.writer(&layer.digest, Some(layer.size)).await?;
    // An uncompressed layer's diff ID is its blob digest, which the writer
    // verifies already: only compressed layers need a second hash.
    let mut hasher =
        (layer.compression != Compression::None).then(|| DiffIdHasher::start(layer.compression));
    let mut throttle = Throttle::default();
    let copied = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if let Some(h) = hasher.as_mut() {
                h.feed(chunk.clone()).await;
            }
            writer.write(chunk).await?;
            if throttle.ready() {
                progress(ProgressEvent::Progress {
                    digest: layer.digest.to_string(),
                    current: writer.written(),
                    total: layer.size,
                });
            }
        }
        writer.check()?;
        let what = format!("layer {}", layer.digest);
        let actual = match hasher {
            Some(h) => h
                .finish()
                .await?
                .map_err(|e| ImageError::document(&what, format!("cannot decompress: {e}")))?,
            None => layer.digest.clone(),
        };
        crate::blobs::check_digest(&format!("diff id of {what}"), diff_id, &actual)
    }
    .await;
    match copied {
        Ok(()) => writer.finish().await,
        Err(e) => {
            writer.abort().await;
            Err(e)
        }
    }
}
