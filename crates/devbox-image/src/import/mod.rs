//! Importing an uploaded archive: an OCI image layout, a `docker save`
//! archive, or a plain rootfs tarball, told apart by their content.

mod archive;
mod detect;
mod docker;
mod oci_layout;
mod rootfs;

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use devbox_layer::CompressionError;
use devbox_layer::compression::{self, Compression, LayerDigests};
use devbox_model::ImageRef;
use devbox_model::api::{Image, ProgressEvent};

use crate::progress::Progress;
use crate::{ImageError, ImageStore};
use archive::TarIndex;
use detect::Format;

pub(crate) async fn import(
    store: &ImageStore,
    reference: &ImageRef,
    upload: &Path,
    progress: Progress<'_>,
) -> Result<Image, ImageError> {
    let tag = match (reference.digest(), reference.tag()) {
        (None, Some(tag)) => tag.to_owned(),
        _ => {
            return Err(ImageError::InvalidReference {
                reference: reference.to_string(),
                reason: "an import is stored under a tag, not a digest",
            });
        }
    };
    let scratch = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(store.scratch())
        .map_err(|e| ImageError::io(store.scratch(), e))?;
    let path = upload.to_owned();
    let detected = tokio::task::spawn_blocking(move || detect::detect(&path)).await??;
    tracing::debug!(upload = %upload.display(), ?detected, "detected upload format");

    let staged = match detected.format {
        Format::Rootfs => {
            rootfs::import(
                store,
                upload,
                detected.compression,
                scratch.path(),
                progress,
            )
            .await?
        }
        format => {
            let index = open_archive(upload, detected.compression, scratch.path()).await?;
            if format == Format::OciLayout {
                oci_layout::import(store, index, &tag, progress).await?
            } else {
                docker::import(store, index, scratch.path(), reference, progress).await?
            }
        }
    };
    let image = crate::images::record(store, staged, &reference.repository(), Some(&tag)).await?;
    tracing::info!(reference = %reference, digest = %image.digest, format = ?detected.format, "imported image");
    progress(ProgressEvent::Done {
        image: image.clone(),
    });
    Ok(image)
}

/// Indexes an image archive, first decompressing it into scratch space when
/// the upload is compressed (members must be readable in place).
async fn open_archive(
    upload: &Path,
    compression: Compression,
    scratch: &Path,
) -> Result<Arc<TarIndex>, ImageError> {
    let upload = upload.to_owned();
    let scratch = scratch.to_owned();
    tokio::task::spawn_blocking(move || {
        let tar = if compression == Compression::None {
            upload
        } else {
            let plain = scratch.join("upload.tar");
            let input = File::open(&upload).map_err(|e| ImageError::io(&upload, e))?;
            let mut r = compression::decompress(input, compression)
                .map_err(|e| ImageError::archive(&upload, format!("cannot decompress: {e}")))?;
            let mut w =
                BufWriter::new(File::create(&plain).map_err(|e| ImageError::io(&plain, e))?);
            io::copy(&mut r, &mut w).map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                    ImageError::archive(&upload, format!("cannot decompress: {e}"))
                }
                _ => ImageError::io(&plain, e),
            })?;
            w.flush().map_err(|e| ImageError::io(&plain, e))?;
            plain
        };
        TarIndex::build(&tar).map(Arc::new)
    })
    .await?
}

/// Writes a blob file through `write` (which returns the digests it
/// computed) and makes it durable, so it can be renamed into the store.
pub(crate) fn write_blob_file(
    out: &Path,
    what: &str,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<LayerDigests, CompressionError>,
) -> Result<LayerDigests, ImageError> {
    let file = File::create(out).map_err(|e| ImageError::io(out, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let digests = write(&mut w).map_err(|e| ImageError::Layer {
        what: what.to_owned(),
        source: e,
    })?;
    let file = w
        .into_inner()
        .map_err(|e| ImageError::io(out, e.into_error()))?;
    file.sync_all().map_err(|e| ImageError::io(out, e))?;
    Ok(digests)
}

/// A reader that reports how many bytes went through it.
pub(crate) struct CountingReader<R, F> {
    inner: R,
    count: u64,
    report: F,
}

impl<R, F: FnMut(u64)> CountingReader<R, F> {
    pub fn new(inner: R, report: F) -> Self {
        Self {
            inner,
            count: 0,
            report,
        }
    }
}

impl<R: Read, F: FnMut(u64)> Read for CountingReader<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        (self.report)(self.count);
        Ok(n)
    }
}
