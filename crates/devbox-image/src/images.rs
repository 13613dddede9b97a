//! Images as the metadata database knows them: recording a manifest and its
//! tag, listing, resolving for the runtime, removing.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use devbox_layer::digest::Digest;
use devbox_model::ImageRef;
use devbox_model::api::Image;
use devbox_store::{ImageName, ManifestRecord, RepositoryManifest, StoreError};

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
        digest: staged.digest,
        media_type: staged.media_type,
        content: staged.content,
        config_digest: staged.config,
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
            Ok(image(repository, Some(tag), &rec))
        }
        None => {
            // The repository holds it without a tag, as a registry would,
            // so that it is listed and can be removed by its digest.
            meta.link_manifest(repository, &rec.digest).await?;
            Ok(image(repository, None, &rec))
        }
    }
}

/// How an image is shown: `repository:tag`, or `repository@digest` when the
/// repository holds it without a tag.
fn image(repository: &str, tag: Option<&str>, m: &ManifestRecord) -> Image {
    Image {
        reference: match tag {
            Some(tag) => format!("{repository}:{tag}"),
            None => format!("{repository}@{}", m.digest),
        },
        repository: repository.to_owned(),
        tag: tag.unwrap_or_default().to_owned(),
        digest: m.digest.clone(),
        size: m.size,
        layers: m.layers as usize,
        created_at: m.created_at,
    }
}

/// Every image: each tag, and each manifest a repository holds without a
/// tag, ordered by repository, then tagged images by tag, then untagged
/// ones by digest.
pub(crate) async fn list(store: &ImageStore) -> Result<Vec<Image>, ImageError> {
    let meta = store.metadata();
    let tags = meta.list_tags().await?;
    let tagged: HashSet<(&str, &Digest)> = tags
        .iter()
        .map(|t| (t.repository.as_str(), &t.digest))
        .collect();
    let untagged: Vec<RepositoryManifest> = meta
        .list_repository_manifests()
        .await?
        .into_iter()
        .filter(|h| !tagged.contains(&(h.repository.as_str(), &h.digest)))
        .collect();
    let mut manifests: HashMap<Digest, Option<ManifestRecord>> = HashMap::new();
    let mut out = Vec::new();
    let names = tags
        .iter()
        .map(|t| (t.repository.as_str(), Some(t.tag.as_str()), &t.digest))
        .chain(
            untagged
                .iter()
                .map(|h| (h.repository.as_str(), None, &h.digest)),
        );
    for (repository, tag, digest) in names {
        if !manifests.contains_key(digest) {
            let m = meta.get_manifest(digest).await?;
            manifests.insert(digest.clone(), m);
        }
        // A name always points at a stored manifest (the database enforces it).
        if let Some(Some(m)) = manifests.get(digest) {
            out.push(image(repository, tag, m));
        }
    }
    out.sort_by(|a, b| {
        (&a.repository, a.tag.is_empty(), &a.tag, &a.digest).cmp(&(
            &b.repository,
            b.tag.is_empty(),
            &b.tag,
            &b.digest,
        ))
    });
    Ok(out)
}

pub(crate) async fn resolve(
    store: &ImageStore,
    reference: &ImageRef,
) -> Result<ResolvedImage, ImageError> {
    let digest = match (reference.digest(), reference.tag()) {
        (Some(d), _) => parse_digest(reference, d)?,
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
    digest: &Digest,
) -> Result<ResolvedImage, ImageError> {
    resolve_manifest(store, digest, digest.to_string()).await
}

/// The digest a reference pins.
pub(crate) fn parse_digest(reference: &ImageRef, digest: &str) -> Result<Digest, ImageError> {
    digest.parse().map_err(|_| ImageError::InvalidReference {
        reference: reference.to_string(),
        reason: "only sha256 digests are supported",
    })
}

async fn resolve_manifest(
    store: &ImageStore,
    digest: &Digest,
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

/// Removes the name `reference` gives, and the manifest with it when it was
/// the last name; refuses, removing nothing, when that manifest's devboxes
/// would be left without their image.
pub(crate) async fn remove(store: &ImageStore, reference: &ImageRef) -> Result<(), ImageError> {
    let repository = reference.repository();
    let pinned = reference
        .digest()
        .map(|d| parse_digest(reference, d))
        .transpose()?;
    let name = match (reference.tag(), &pinned) {
        (Some(tag), Some(d)) => ImageName::TagAt(tag, d),
        (Some(tag), None) => ImageName::Tag(tag),
        (None, Some(d)) => ImageName::Digest(d),
        (None, None) => unreachable!("a reference without digest has a tag"),
    };
    let removal = match store.metadata().remove_image(&repository, name).await {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => {
            return Err(ImageError::NotFound {
                what: format!("image {reference}"),
            });
        }
        Err(StoreError::InUse { devboxes, .. }) => {
            return Err(ImageError::InUse {
                reference: reference.to_string(),
                devboxes,
            });
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(%reference, digest = %removal.digest, manifest_deleted = removal.manifest_deleted, "removed image");
    Ok(())
}
