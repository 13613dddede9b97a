//! Importing a plain rootfs tarball: it is rewritten into a canonical layer
//! (refusing entries that could escape the root), compressed with gzip, and
//! given a generated config.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use devbox_layer::compression::{self, Compression, LayerDigests};
use devbox_layer::digest::Digest;
use devbox_model::api::{LayerInfo, ProgressEvent};

use super::CountingReader;
use crate::documents::{self, BlobRef};
use crate::images::StagedManifest;
use crate::media;
use crate::origin::Origin;
use crate::progress::{Progress, ProgressSender, Throttle, run_blocking};
use crate::{ImageError, ImageStore};

pub(crate) async fn import(
    store: &ImageStore,
    upload: &Path,
    origin: &Origin,
    compression: Compression,
    scratch: &Path,
    progress: Progress<'_>,
) -> Result<StagedManifest, ImageError> {
    let out = scratch.join("rootfs-layer");
    let (upload_owned, out_owned, origin) = (upload.to_owned(), out.clone(), origin.clone());
    let layer = run_blocking(progress, move |tx| {
        convert(&upload_owned, &origin, compression, &out_owned, tx)
    })
    .await?;
    let cached = store.blobs().adopt_file(&out, &layer.digest).await?;

    let config = documents::rootfs_config(&layer.diff_id);
    let config_ref = BlobRef {
        media_type: media::OCI_CONFIG,
        digest: Digest::of(&config),
        size: config.len() as u64,
    };
    store
        .blobs()
        .put_bytes(Some(&config_ref.digest), Bytes::from(config))
        .await?;
    let layer_ref = BlobRef {
        media_type: media::OCI_LAYER_GZIP,
        digest: layer.digest.clone(),
        size: layer.size,
    };
    let content = documents::oci_manifest(&config_ref, std::slice::from_ref(&layer_ref));
    let digest = Digest::of(&content);
    progress(ProgressEvent::Resolved {
        digest: digest.to_string(),
        layers: vec![LayerInfo {
            digest: layer.digest.to_string(),
            size: layer.size,
        }],
    });
    progress(ProgressEvent::LayerDone {
        digest: layer.digest.to_string(),
        cached,
    });
    Ok(StagedManifest {
        digest,
        media_type: media::OCI_MANIFEST.to_owned(),
        content,
        config: config_ref.digest,
        layers: vec![(layer.digest, layer.size)],
    })
}

/// Normalizes the upload into a canonical layer tar and compresses it into
/// `out`, in one streaming pass: the normalizer writes into a pipe on one
/// thread while the compressor reads it on this one.
fn convert(
    upload: &Path,
    origin: &Origin,
    compression: Compression,
    out: &Path,
    tx: &ProgressSender,
) -> Result<LayerDigests, ImageError> {
    let file = std::fs::File::open(upload).map_err(|e| ImageError::io(upload, e))?;
    let total = file
        .metadata()
        .map_err(|e| ImageError::io(upload, e))?
        .len();
    let mut throttle = Throttle::default();
    let tx = tx.clone();
    let counted = CountingReader::new(file, move |current| {
        if throttle.ready() {
            let _ = tx.send(ProgressEvent::Progress {
                digest: String::new(),
                current,
                total,
            });
        }
    });
    let input = compression::decompress(counted, compression)
        .map_err(|e| ImageError::archive(origin, format!("cannot decompress: {e}")))?;
    let (mut reader, writer) = io::pipe().map_err(|e| ImageError::io(out, e))?;
    let broken = Arc::new(AtomicBool::new(false));
    let pipe_in = PipeInput {
        inner: writer,
        broken: broken.clone(),
    };
    std::thread::scope(|s| {
        let compressor = s.spawn(move || {
            // write_layer compresses whole buffers whatever the pipe's reads
            // return, so the same rootfs always gives the same blob.
            let written = super::write_blob_file(out, "rootfs", |w| {
                compression::write_layer(&mut reader, w, Compression::Gzip)
            });
            if written.is_ok() {
                // Let the normalizer finish writing whatever follows the end
                // of the archive, so it never sees a closed pipe.
                let _ = io::copy(&mut reader, &mut io::sink());
            }
            written
        });
        // Returning drops the pipe's writing end: the compressor sees the end.
        let normalized = devbox_layer::normalize::normalize(input, pipe_in);
        let written = compressor.join().expect("the compressor does not panic");
        match normalized {
            // A closed pipe means the compressor failed first; its error is the cause.
            Err(_) if broken.load(Ordering::Relaxed) => written,
            Err(source) => Err(ImageError::refused_rootfs(origin, source)),
            Ok(stats) => {
                tracing::debug!(?stats, "normalized a rootfs tarball");
                written
            }
        }
    })
}

/// The normalizer's end of the pipe; remembers whether the reading end
/// went away.
struct PipeInput {
    inner: io::PipeWriter,
    broken: Arc<AtomicBool>,
}

impl Write for PipeInput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| self.note(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|e| self.note(e))
    }
}

impl PipeInput {
    fn note(&self, e: &io::Error) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            self.broken.store(true, Ordering::Relaxed);
        }
    }
}
