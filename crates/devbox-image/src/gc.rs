//! Garbage collection of blobs: mark every blob a stored manifest names
//! (its config and layers, or the manifests an index lists), sweep the
//! rest. Blobs younger than a grace period are spared, since a commit, an
//! import or an upload writes its blobs before the manifest that names them.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use devbox_layer::digest::Digest;
use futures::TryStreamExt;

use crate::documents::{self, Document};
use crate::{ImageError, ImageStore};

/// What a collection removed (or would).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobGc {
    pub manifests: u64,
    pub blobs: u64,
    pub bytes: u64,
}

impl ImageStore {
    /// Removes every blob no stored manifest names and older than `grace`.
    /// With `dry_run`, removes nothing and reports what it would.
    pub async fn collect_blobs(
        &self,
        grace: Duration,
        dry_run: bool,
    ) -> Result<BlobGc, ImageError> {
        let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
        // Manifests nothing names any more go first, so their blobs are
        // unmarked below.
        let unnamed: HashSet<Digest> = self
            .metadata()
            .remove_unnamed_manifests(cutoff, dry_run)
            .await?
            .into_iter()
            .collect();
        let mut marked: HashSet<Digest> = HashSet::new();
        for m in self.metadata().list_manifests().await? {
            if unnamed.contains(&m.digest) {
                continue;
            }
            let what = format!("manifest {}", m.digest);
            marked.insert(m.digest.clone());
            match documents::parse_document(&what, &m.media_type, &m.content) {
                Ok(Document::Manifest(doc)) => {
                    marked.insert(m.config_digest.clone());
                    if let Ok(parts) = documents::manifest_parts(&what, &doc) {
                        marked.extend(parts.layers.into_iter().map(|l| l.digest));
                    }
                }
                Ok(Document::Index(index)) => {
                    for d in index.manifests() {
                        if let Ok(d) = documents::descriptor_digest(&what, d) {
                            marked.insert(d);
                        }
                    }
                }
                // A manifest this store cannot read keeps what it names as far
                // as the record says; nothing else can be known about it.
                Err(_) => {
                    marked.insert(m.config_digest.clone());
                }
            }
        }
        let doomed: Vec<(Digest, u64)> = self
            .blobs()
            .list_blob_meta()
            .try_filter(|(d, _, modified)| {
                std::future::ready(!marked.contains(d) && *modified < cutoff)
            })
            .map_ok(|(d, size, _)| (d, size))
            .try_collect()
            .await?;
        let mut report = BlobGc {
            manifests: unnamed.len() as u64,
            ..BlobGc::default()
        };
        for (digest, size) in doomed {
            if !dry_run {
                self.blobs().delete_blob(&digest).await?;
            }
            report.blobs += 1;
            report.bytes += size;
        }
        Ok(report)
    }
}
