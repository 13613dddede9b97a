//! Importing an OCI image layout from a tar: its blobs are copied as they
//! are, each verified against the digest that names it.

use std::sync::Arc;

use bytes::Bytes;
use devbox_layer::digest::Digest;
use devbox_model::api::ProgressEvent;
use futures::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, ImageIndex};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::archive::TarIndex;
use crate::blobs::check_digest;
use crate::documents::{self, Document, MAX_CONFIG, MAX_MANIFEST};
use crate::images::{StagedManifest, check_layer_count};
use crate::platform;
use crate::progress::Progress;
use crate::{ImageError, ImageStore};

/// The annotation naming an image of a layout (skopeo and umoci set it to
/// the tag).
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// How many index levels are followed before giving up.
const MAX_INDEX_DEPTH: usize = 2;

pub(crate) async fn import(
    store: &ImageStore,
    index: Arc<TarIndex>,
    tag: &str,
    progress: Progress<'_>,
) -> Result<StagedManifest, ImageError> {
    let origin = index.origin().clone();
    let layout = read(&index, "oci-layout", 4096).await?;
    let version = serde_json::from_slice::<serde_json::Value>(&layout)
        .ok()
        .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_owned))
        .ok_or_else(|| ImageError::archive(&origin, "oci-layout has no imageLayoutVersion"))?;
    tracing::debug!(%version, "importing an OCI image layout");

    let top: ImageIndex = serde_json::from_slice(&read(&index, "index.json", MAX_MANIFEST).await?)
        .map_err(|e| ImageError::document("index.json", e))?;
    let mut chosen = choose(top.manifests(), tag).ok_or_else(|| {
        ImageError::archive(
            &origin,
            format!(
                "index.json names {} images and none is tagged {tag:?} or made for linux/{}",
                top.manifests().len(),
                platform::host_arch()
            ),
        )
    })?;

    let mut depth = 0;
    let (digest, media_type, content, manifest) = loop {
        let what = format!("manifest {}", chosen.digest());
        let digest = documents::descriptor_digest(&what, &chosen)?;
        let content = read_blob(&index, &digest, chosen.size(), MAX_MANIFEST).await?;
        let declared = chosen.media_type().to_string();
        let media_type =
            documents::media_type_of(Some(&declared), &content).unwrap_or(declared.clone());
        match documents::parse_document(&what, &media_type, &content)? {
            Document::Manifest(m) => break (digest, media_type, content, m),
            Document::Index(i) if depth < MAX_INDEX_DEPTH => {
                depth += 1;
                chosen = platform::select(i.manifests(), platform::host_arch())
                    .cloned()
                    .ok_or_else(|| ImageError::NoMatchingPlatform {
                        what,
                        arch: platform::host_arch().to_owned(),
                    })?;
            }
            Document::Index(_) => {
                return Err(ImageError::document(what, "image indexes nest too deeply"));
            }
        }
    };
    let what = format!("manifest {digest}");
    let parts = documents::manifest_parts(&what, &manifest)?;
    progress(parts.resolved_event(digest.as_str()));

    let config = read_blob(&index, &parts.config, parts.config_size, MAX_CONFIG).await?;
    let diff_ids = documents::parse_config(&format!("config {}", parts.config), &config)?.diff_ids;
    check_layer_count(&what, parts.layers.len(), diff_ids.len())?;
    store
        .blobs()
        .put_bytes(Some(&parts.config), Bytes::from(config))
        .await?;

    for (layer, diff_id) in parts.layers.iter().zip(&diff_ids) {
        let cached = store.blobs().has_blob(&layer.digest).await?;
        if !cached {
            let body = member_stream(&index, &blob_name(&layer.digest)).await?;
            let source = format!("the uploaded image{origin}");
            crate::verify::store_layer(store.blobs(), layer, diff_id, body, &source, progress)
                .await?;
        }
        progress(ProgressEvent::LayerDone {
            digest: layer.digest.to_string(),
            cached,
        });
    }

    Ok(StagedManifest {
        digest,
        media_type,
        content,
        config: parts.config.clone(),
        layers: parts
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.size))
            .collect(),
    })
}

/// The image of a layout to import: the only one; else the one whose
/// `ref.name` is the tag; else the one for this platform.
pub(crate) fn choose(manifests: &[Descriptor], tag: &str) -> Option<Descriptor> {
    if let [only] = manifests {
        return Some(only.clone());
    }
    let named: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .is_some_and(|n| n == tag)
        })
        .collect();
    if let [one] = named.as_slice() {
        return Some((*one).clone());
    }
    platform::select(manifests, platform::host_arch()).cloned()
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// A blob of the layout read whole and checked against its descriptor.
async fn read_blob(
    index: &Arc<TarIndex>,
    digest: &Digest,
    size: u64,
    max: u64,
) -> Result<Vec<u8>, ImageError> {
    let what = format!("blob {digest}");
    let content = read(index, &blob_name(digest), max).await?;
    if content.len() as u64 != size {
        return Err(ImageError::SizeMismatch {
            what,
            expected: size,
            actual: content.len() as u64,
        });
    }
    check_digest(&what, digest, &Digest::of(&content))?;
    Ok(content)
}

async fn read(index: &Arc<TarIndex>, name: &str, max: u64) -> Result<Vec<u8>, ImageError> {
    let index = index.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || index.read(&name, max)).await?
}

/// A member's data as a stream, read in place from the tar file.
async fn member_stream(
    index: &Arc<TarIndex>,
    name: &str,
) -> Result<futures::stream::BoxStream<'static, Result<Bytes, ImageError>>, ImageError> {
    let (offset, size) = index.locate(name)?;
    let path = index.path().to_owned();
    let mut f = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ImageError::io(&path, e))?;
    f.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| ImageError::io(&path, e))?;
    Ok(
        tokio_util::io::ReaderStream::with_capacity(f.take(size), 1 << 20)
            .map_err(move |e| ImageError::io(&path, e))
            .boxed(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tagged_image_of_a_layout_is_chosen() {
        let d = |tag: &str, arch: &str, size: u64| -> Descriptor {
            serde_json::from_value(serde_json::json!({
                "mediaType": crate::media::OCI_MANIFEST,
                "digest": format!("sha256:{}", "a".repeat(64)),
                "size": size,
                "annotations": { REF_NAME: tag },
                "platform": { "os": "linux", "architecture": arch },
            }))
            .unwrap()
        };
        let host = platform::host_arch();
        let m = vec![d("1", "s390x", 1), d("2", host, 2)];
        assert_eq!(choose(&m, "1").unwrap().size(), 1);
        assert_eq!(choose(&m, "other").unwrap().size(), 2);
        assert_eq!(choose(&m[..1], "other").unwrap().size(), 1);
        assert!(
            choose(&[d("1", "s390x", 1), d("2", "s390x", 2)], "3").is_none() || host == "s390x"
        );
    }
}
