//! Importing an uploaded archive: an OCI image layout, a `docker save`
//! archive, or a plain rootfs tarball, told apart by their content.

mod archive;
mod detect;
mod docker;
mod oci_layout;
mod rootfs;

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use devbox_layer::CompressionError;
use devbox_layer::compression::{self, Compression, LayerDigests};
use devbox_model::ImageRef;
use devbox_model::api::{Image, ProgressEvent};

use crate::origin::Origin;
use crate::{ImageError, ImageStore};
use archive::TarIndex;
use detect::Format;

/// An import whose first, quick step is done: the reference names a tag and
/// the upload's format is known. What remains (converting and storing the
/// layers) can only fail with errors found on the way.
#[derive(Debug)]
pub struct PendingImport {
    store: ImageStore,
    reference: ImageRef,
    tag: String,
    upload: PathBuf,
    origin: Origin,
    detected: detect::Detected,
    scratch: tempfile::TempDir,
}

pub(crate) async fn begin(
    store: &ImageStore,
    reference: &ImageRef,
    upload: &Path,
    origin: Origin,
) -> Result<PendingImport, ImageError> {
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
    let (path, o) = (upload.to_owned(), origin.clone());
    let detected = tokio::task::spawn_blocking(move || detect::detect(&path, &o)).await??;
    tracing::debug!(upload = %upload.display(), ?detected, "detected upload format");
    Ok(PendingImport {
        store: store.clone(),
        reference: reference.clone(),
        tag,
        upload: upload.to_owned(),
        origin,
        detected,
        scratch,
    })
}

impl PendingImport {
    /// Converts and stores the image, then tags it. See
    /// [`ImageStore::import`] for the events reported.
    pub async fn finish(
        self,
        progress: &(dyn Fn(ProgressEvent) + Send + Sync),
    ) -> Result<Image, ImageError> {
        let Self {
            store,
            reference,
            tag,
            upload,
            origin,
            detected,
            scratch,
        } = self;
        let staged = match detected.format {
            Format::Rootfs => {
                rootfs::import(
                    &store,
                    &upload,
                    &origin,
                    detected.compression,
                    scratch.path(),
                    progress,
                )
                .await?
            }
            format => {
                let index =
                    open_archive(&upload, &origin, detected.compression, scratch.path()).await?;
                if format == Format::OciLayout {
                    oci_layout::import(&store, index, &tag, progress).await?
                } else {
                    docker::import(&store, index, scratch.path(), &reference, progress).await?
                }
            }
        };
        let image =
            crate::images::record(&store, staged, &reference.repository(), Some(&tag)).await?;
        tracing::info!(reference = %reference, digest = %image.digest, format = ?detected.format, "imported image");
        progress(ProgressEvent::Done {
            image: image.clone(),
        });
        Ok(image)
    }
}

/// Indexes an image archive, first decompressing it into scratch space when
/// the upload is compressed (members must be readable in place).
async fn open_archive(
    upload: &Path,
    origin: &Origin,
    compression: Compression,
    scratch: &Path,
) -> Result<Arc<TarIndex>, ImageError> {
    let upload = upload.to_owned();
    let scratch = scratch.to_owned();
    let origin = origin.clone();
    tokio::task::spawn_blocking(move || {
        let tar = if compression == Compression::None {
            upload
        } else {
            let plain = scratch.join("upload.tar");
            let input = File::open(&upload).map_err(|e| ImageError::io(&upload, e))?;
            let mut r = compression::decompress(input, compression)
                .map_err(|e| ImageError::archive(&origin, format!("cannot decompress: {e}")))?;
            let mut w =
                BufWriter::new(File::create(&plain).map_err(|e| ImageError::io(&plain, e))?);
            io::copy(&mut r, &mut w).map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                    ImageError::archive(&origin, format!("cannot decompress: {e}"))
                }
                _ => ImageError::io(&plain, e),
            })?;
            w.flush().map_err(|e| ImageError::io(&plain, e))?;
            plain
        };
        TarIndex::build(&tar, origin).map(Arc::new)
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
