//! Images as the metadata database knows them: recording a manifest and its
//! tag, listing, resolving for the runtime, removing.

use chrono::Utc;
use devbox_layer::digest::Digest;
use devbox_model::ImageRef;
use devbox_model::api::Image;
use devbox_store::{ManifestRecord, TagRecord};

use crate::documents::{self, Document, MAX_CONFIG};
use crate::{ImageError, ImageStore, ResolvedImage, ResolvedLayer};

/// A manifest whose blobs are all stored, ready to be recorded.
#[derive(Debug)]
pub(crate) struct StagedManifest {
    pub digest: Digest,
    pub media_type: String,
    /// The exact bytes; `digest` is their hash.
    pub content: Vec<u8>,
    pub config: Digest,
    /// Digest and size of each layer blob.
    pub layers: Vec<(Digest, u64)>,
}

/// Records the manifest, then points `repository:tag` at it (when a tag is
/// given). Every blob is checked to be present first, so a record never
/// names missing content.
pub(crate) async fn record(
    store: &ImageStore,
    staged: StagedManifest,
    repository: &str,
    tag: Option<&str>,
) -> Result<Image, ImageError> {
    debug_assert_eq!(Digest::of(&staged.content), staged.digest);
    for d in std::iter::once(&staged.config).chain(staged.layers.iter().map(|(d, _)| d)) {
        if !store.blobs().has_blob(d).await? {
            return Err(ImageError::NotFound {
                what: format!("blob {d} of manifest {}", staged.digest),
            });
        }
    }
    let rec = ManifestRecord {
        digest: staged.digest.to_string(),
        media_type: staged.media_type,
        content: staged.content,
        config_digest: staged.config.to_string(),
        size: staged.layers.iter().map(|(_, s)| s).sum(),
        layers: staged.layers.len() as u32,
        created_at: Utc::now(),
    };
    let meta = store.metadata();
    meta.put_manifest(&rec).await?;
    // Storing an existing digest changes nothing, so read back the record
    // to report when the image was first stored.
    let rec = meta.get_manifest(&rec.digest).await?.unwrap_or(rec);
    match tag {
        Some(tag) => {
            meta.set_tag(repository, tag, &rec.digest).await?;
            Ok(image(repository, tag, &rec))
        }
        None => Ok(Image {
            reference: format!("{repository}@{}", rec.digest),
            repository: repository.to_owned(),
            tag: String::new(),
            digest: rec.digest.clone(),
            size: rec.size,
            layers: rec.layers as usize,
            created_at: rec.created_at,
        }),
    }
}

fn image(repository: &str, tag: &str, m: &ManifestRecord) -> Image {
    Image {
        reference: format!("{repository}:{tag}"),
        repository: repository.to_owned(),
        tag: tag.to_owned(),
        digest: m.digest.clone(),
        size: m.size,
        layers: m.layers as usize,
        created_at: m.created_at,
    }
}

pub(crate) async fn list(store: &ImageStore) -> Result<Vec<Image>, ImageError> {
    let meta = store.metadata();
    let mut out = Vec::new();
    for TagRecord {
        repository,
        tag,
        digest,
        ..
    } in meta.list_tags().await?
    {
        // A tag always names a stored manifest (the database enforces it).
        if let Some(m) = meta.get_manifest(&digest).await? {
            out.push(image(&repository, &tag, &m));
        }
    }
    Ok(out)
}

pub(crate) async fn resolve(
    store: &ImageStore,
    reference: &ImageRef,
) -> Result<ResolvedImage, ImageError> {
    let digest = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_owned(),
        (None, Some(tag)) => {
            store
                .metadata()
                .get_tag(&reference.repository(), tag)
                .await?
                .ok_or_else(|| ImageError::NotFound {
                    what: format!("image {reference}"),
                })?
                .digest
        }
        (None, None) => unreachable!("a reference without digest has a tag"),
    };
    resolve_manifest(store, &digest, reference.to_string()).await
}

pub(crate) async fn resolve_digest(
    store: &ImageStore,
    digest: &str,
) -> Result<ResolvedImage, ImageError> {
    resolve_manifest(store, digest, digest.to_owned()).await
}

async fn resolve_manifest(
    store: &ImageStore,
    digest: &str,
    reference: String,
) -> Result<ResolvedImage, ImageError> {
    let rec = store
        .metadata()
        .get_manifest(digest)
        .await?
        .ok_or_else(|| ImageError::NotFound {
            what: format!("image {reference}"),
        })?;
    let what = format!("manifest {digest}");
    let Document::Manifest(m) = documents::parse_document(&what, &rec.media_type, &rec.content)?
    else {
        return Err(ImageError::UnsupportedMediaType {
            what,
            media_type: rec.media_type,
        });
    };
    let parts = documents::manifest_parts(&what, &m)?;
    let config_bytes = store.blobs().read_blob(&parts.config, MAX_CONFIG).await?;
    let config = documents::parse_config(&format!("config {}", parts.config), &config_bytes)?;
    check_layer_count(&what, parts.layers.len(), config.diff_ids.len())?;
    let layers = parts
        .layers
        .into_iter()
        .zip(config.diff_ids)
        .map(|(l, diff_id)| ResolvedLayer {
            digest: l.digest,
            diff_id,
            compression: l.compression,
            size: l.size,
        })
        .collect();
    Ok(ResolvedImage {
        digest: rec.digest,
        reference,
        layers,
        config: config.runtime,
    })
}

/// A manifest and its config must agree on the number of layers.
pub(crate) fn check_layer_count(
    what: &str,
    layers: usize,
    diff_ids: usize,
) -> Result<(), ImageError> {
    if layers == diff_ids {
        Ok(())
    } else {
        Err(ImageError::document(
            what,
            format!("{layers} layers but the config lists {diff_ids} diff ids"),
        ))
    }
}

pub(crate) async fn remove(store: &ImageStore, reference: &ImageRef) -> Result<(), ImageError> {
    let meta = store.metadata();
    let repository = reference.repository();
    let not_found = || ImageError::NotFound {
        what: format!("image {reference}"),
    };
    let digest = match (reference.tag(), reference.digest()) {
        (Some(tag), pinned) => {
            let t = meta
                .get_tag(&repository, tag)
                .await?
                .ok_or_else(not_found)?;
            if pinned.is_some_and(|d| d != t.digest) {
                return Err(not_found());
            }
            meta.delete_tag(&repository, tag).await?;
            t.digest
        }
        (None, Some(digest)) => {
            let mut found = meta.get_manifest(digest).await?.is_some();
            for t in meta.list_tags().await? {
                if t.repository == repository && t.digest == digest {
                    meta.delete_tag(&t.repository, &t.tag).await?;
                    found = true;
                }
            }
            if !found {
                return Err(not_found());
            }
            digest.to_owned()
        }
        (None, None) => unreachable!("a reference without digest has a tag"),
    };
    let deleted = meta.delete_manifest_if_untagged(&digest).await?;
    tracing::info!(%reference, %digest, manifest_deleted = deleted, "removed image");
    Ok(())
}
