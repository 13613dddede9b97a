//! Importing a `docker save` archive: `manifest.json` names the config and
//! the layer tars; the layers (uncompressed) are compressed with gzip and an
//! OCI manifest is written for them. The config is kept byte for byte, so
//! the image ID stays the same.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use devbox_layer::compression::{self, Compression};
use devbox_layer::digest::Digest;
use devbox_model::ImageRef;
use devbox_model::api::{LayerInfo, ProgressEvent};
use serde::Deserialize;

use super::CountingReader;
use super::archive::TarIndex;
use crate::blobs::check_digest;
use crate::documents::{self, BlobRef, MAX_CONFIG, MAX_MANIFEST};
use crate::images::{StagedManifest, check_layer_count};
use crate::media;
use crate::progress::{Progress, ProgressSender, Throttle, run_blocking};
use crate::{ImageError, ImageStore};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

pub(crate) async fn import(
    store: &ImageStore,
    index: Arc<TarIndex>,
    scratch: &Path,
    reference: &ImageRef,
    progress: Progress<'_>,
) -> Result<StagedManifest, ImageError> {
    let origin = index.origin().clone();
    let idx = index.clone();
    let manifest =
        tokio::task::spawn_blocking(move || idx.read("manifest.json", MAX_MANIFEST)).await??;
    let entries: Vec<Entry> =
        serde_json::from_slice(&manifest).map_err(|e| ImageError::document("manifest.json", e))?;
    let entry =
        choose(entries, reference).map_err(|reason| ImageError::archive(&origin, reason))?;

    let idx = index.clone();
    let config_name = entry.config.clone();
    let config = tokio::task::spawn_blocking(move || idx.read(&config_name, MAX_CONFIG)).await??;
    let config_digest = Digest::of(&config);
    // Docker names the config after its digest (the image ID); check it.
    if let Some(hex) = digest_in_name(&entry.config) {
        let stated: Digest = format!("sha256:{hex}").parse().map_err(|_| {
            ImageError::archive(&origin, format!("bad config name {}", entry.config))
        })?;
        check_digest(&format!("config {}", entry.config), &stated, &config_digest)?;
    }
    let diff_ids = documents::parse_config(&format!("config {}", entry.config), &config)?.diff_ids;
    check_layer_count("manifest.json", entry.layers.len(), diff_ids.len())?;

    let mut layers = Vec::new();
    let mut cached = Vec::new();
    for (name, diff_id) in entry.layers.iter().zip(&diff_ids) {
        let (file, digest, size) = convert_layer(&index, name, diff_id, scratch, progress).await?;
        cached.push(store.blobs().adopt_file(&file, &digest).await?);
        layers.push(BlobRef {
            media_type: media::OCI_LAYER_GZIP,
            digest,
            size,
        });
    }
    let config_ref = BlobRef {
        media_type: media::OCI_CONFIG,
        digest: config_digest.clone(),
        size: config.len() as u64,
    };
    store
        .blobs()
        .put_bytes(Some(&config_digest), Bytes::from(config))
        .await?;
    let content = documents::oci_manifest(&config_ref, &layers);
    let digest = Digest::of(&content);
    progress(ProgressEvent::Resolved {
        digest: digest.to_string(),
        layers: layers
            .iter()
            .map(|l| LayerInfo {
                digest: l.digest.to_string(),
                size: l.size,
            })
            .collect(),
    });
    for (l, cached) in layers.iter().zip(cached) {
        progress(ProgressEvent::LayerDone {
            digest: l.digest.to_string(),
            cached,
        });
    }
    Ok(StagedManifest {
        digest,
        media_type: media::OCI_MANIFEST.to_owned(),
        content,
        config: config_digest,
        layers: layers.into_iter().map(|l| (l.digest, l.size)).collect(),
    })
}

/// The entry to import: the only one, else the one tagged with the
/// reference.
fn choose(entries: Vec<Entry>, reference: &ImageRef) -> Result<Entry, String> {
    let n = entries.len();
    if n == 1 {
        return Ok(entries.into_iter().next().expect("one entry"));
    }
    let wanted = reference.to_string();
    let short = format!(
        "{}:{}",
        reference.path(),
        reference.tag().unwrap_or_default()
    );
    entries
        .into_iter()
        .find(|e| {
            e.repo_tags
                .iter()
                .flatten()
                .any(|t| *t == wanted || *t == short)
        })
        .ok_or_else(|| format!("manifest.json lists {n} images and none is tagged {wanted}"))
}

/// The hex digest a member is named after (`<hex>.json`,
/// `blobs/sha256/<hex>`), if it is.
fn digest_in_name(name: &str) -> Option<&str> {
    let base = name.rsplit('/').next()?;
    let hex = base.strip_suffix(".json").unwrap_or(base);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Compresses one layer tar of the archive into a scratch file, checking its
/// diff ID. Returns the file, its digest and size.
async fn convert_layer(
    index: &Arc<TarIndex>,
    name: &str,
    diff_id: &Digest,
    scratch: &Path,
    progress: Progress<'_>,
) -> Result<(std::path::PathBuf, Digest, u64), ImageError> {
    let index = index.clone();
    let name = name.to_owned();
    let diff_id = diff_id.clone();
    let out = scratch.join(format!("layer-{}", diff_id.hex()));
    run_blocking(progress, move |tx| {
        let (digest, size) = convert_blocking(&index, &name, &diff_id, &out, tx)?;
        Ok((out, digest, size))
    })
    .await
}

/// The uncompressed tar of a layer member. Layers are normally plain tars,
/// but some tools store them compressed.
fn layer_tar<'a, R: Read + 'a>(
    member: R,
    index: &TarIndex,
    name: &str,
) -> Result<Box<dyn Read + 'a>, ImageError> {
    let mut input = BufReader::with_capacity(1 << 20, member);
    let head = input
        .fill_buf()
        .map_err(|e| ImageError::io(index.path(), e))?;
    let found = Compression::detect(head);
    compression::decompress(input, found)
        .map_err(|e| ImageError::archive(index.origin(), format!("layer {name}: {e}")))
}

/// Applies the unpacker's refusals to a layer of the archive. This is a
/// pass of its own over the member, which lies in a local file, so that the
/// conversion stays one plain stream and a refused layer is never
/// compressed at all.
fn validate_member(index: &TarIndex, name: &str) -> Result<(), ImageError> {
    let (member, _) = index.open(name)?;
    match devbox_layer::validate(layer_tar(member, index, name)?) {
        Ok(_) => Ok(()),
        Err(devbox_layer::UnpackError::Archive { source }) => Err(ImageError::archive(
            index.origin(),
            format!("layer {name} is not a readable tar: {source}"),
        )),
        Err(e) => Err(ImageError::refused_layer(
            format!("layer {name} of the uploaded image{}", index.origin()),
            e,
        )),
    }
}

fn convert_blocking(
    index: &TarIndex,
    name: &str,
    diff_id: &Digest,
    out: &Path,
    tx: &ProgressSender,
) -> Result<(Digest, u64), ImageError> {
    validate_member(index, name)?;
    let (member, total) = index.open(name)?;
    let mut throttle = Throttle::default();
    let key = diff_id.to_string();
    let counted = CountingReader::new(member, |current| {
        if throttle.ready() {
            let _ = tx.send(ProgressEvent::Progress {
                digest: key.clone(),
                current,
                total,
            });
        }
    });
    let tar = layer_tar(counted, index, name)?;
    let digests = super::write_blob_file(out, name, |w| {
        compression::write_layer(tar, w, Compression::Gzip)
    })?;
    check_digest(
        &format!("diff id of layer {name}"),
        diff_id,
        &digests.diff_id,
    )?;
    Ok((digests.digest, digests.size))
}
