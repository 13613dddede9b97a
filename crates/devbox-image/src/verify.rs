//! Storing a layer blob while verifying it: the digest of the bytes
//! (checked by the blob writer), and, by a worker thread that decompresses
//! a copy of the stream as it passes, the diff ID of the uncompressed tar
//! and the unpacker's refusals.
//!
//! The diff ID matters beyond integrity: the runtime keys unpacked layers by
//! it, so a layer whose content disagrees with its config must never be
//! stored. The refusals matter because a layer the unpacker refuses would
//! let the image in only to fail every devbox created from it.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use devbox_layer::UnpackError;
use devbox_layer::compression::{self, Compression};
use devbox_layer::digest::{Digest, HashingReader};
use devbox_model::api::ProgressEvent;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ImageError;
use crate::blobs::BlobStore;
use crate::documents::LayerDesc;
use crate::progress::{Progress, Throttle};

/// Why the worker found a layer wanting.
enum LayerFault {
    /// The stream does not decompress or is not a readable tar.
    Unreadable(io::Error),
    /// The unpacker would refuse an entry.
    Refused(UnpackError),
}

/// Decompresses the stream on a blocking thread, applying the unpacker's
/// refusals and computing the diff ID.
struct LayerChecker {
    tx: Option<mpsc::Sender<Bytes>>,
    task: JoinHandle<Result<Digest, LayerFault>>,
}

impl LayerChecker {
    fn start(compression: Compression) -> Self {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let task = tokio::task::spawn_blocking(move || {
            let input = ChannelReader {
                rx,
                chunk: Bytes::new(),
            };
            let tar = compression::decompress(input, compression)
                .map_err(|e| LayerFault::Unreadable(io::Error::other(e)))?;
            let mut hashed = HashingReader::new(tar);
            match devbox_layer::validate(&mut hashed) {
                Ok(_) => {}
                Err(UnpackError::Archive { source }) => return Err(LayerFault::Unreadable(source)),
                Err(e) => return Err(LayerFault::Refused(e)),
            }
            // The diff ID covers the whole stream, padding after the
            // end-of-archive marker included.
            io::copy(&mut hashed, &mut io::sink()).map_err(LayerFault::Unreadable)?;
            Ok(hashed.finish().0)
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

    async fn finish(mut self) -> Result<Result<Digest, LayerFault>, ImageError> {
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

/// Stores one layer from `body`, verifying its digest, size, diff ID and
/// content (the unpacker's refusals) before it becomes visible, and
/// reporting throttled progress. `source` says where the layer comes from,
/// for messages (`the uploaded image (from x)`, `registry/repository`).
pub(crate) async fn store_layer(
    blobs: &BlobStore,
    layer: &LayerDesc,
    diff_id: &Digest,
    mut body: BoxStream<'_, Result<Bytes, ImageError>>,
    source: &str,
    progress: Progress<'_>,
) -> Result<u64, ImageError> {
    let mut writer = blobs.writer(&layer.digest, Some(layer.size)).await?;
    let mut checker = LayerChecker::start(layer.compression);
    let mut throttle = Throttle::default();
    let copied = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            checker.feed(chunk.clone()).await;
            writer.write(chunk).await?;
            if throttle.ready() {
                progress(ProgressEvent::Progress {
                    digest: layer.digest.to_string(),
                    current: writer.written(),
                    total: layer.size,
                });
            }
        }
        // The blob's own digest first: a corrupt transfer is reported as
        // such, not as whatever its damaged content looks like.
        writer.check()?;
        let what = format!("layer {}", layer.digest);
        let actual = match checker.finish().await? {
            Ok(actual) => actual,
            Err(LayerFault::Unreadable(e)) => {
                return Err(ImageError::document(
                    &what,
                    format!("cannot decompress: {e}"),
                ));
            }
            Err(LayerFault::Refused(e)) => {
                return Err(ImageError::refused_layer(format!("{what} of {source}"), e));
            }
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
