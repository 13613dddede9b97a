//! Images made from stored ones. A commit appends a layer of a devbox's
//! changes to the image it runs from; a squash replaces a devbox's own
//! layers by one that merges them. Both write their layer blob in one
//! streaming pass and their config blob, then hand back the manifest
//! without recording it: the caller records it together with what it
//! means (a commit) in one transaction, so a crash before that leaves the
//! previous state and at worst unreferenced blobs for garbage collection.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use devbox_layer::compression::{Compression, LayerDigests};
use devbox_layer::digest::Digest;
use devbox_store::ManifestRecord;
use serde_json::Value;

use crate::documents::{self, BlobRef, Document, MAX_CONFIG};
use crate::{ImageError, ImageStore, ResolvedLayer, media};

/// A layer blob written to the store's scratch space, not yet stored.
#[derive(Debug)]
pub struct PendingLayer {
    file: PathBuf,
    pub digests: LayerDigests,
    pub compression: Compression,
}

/// A layer blob in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLayer {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub compression: Compression,
}

/// One entry of an image config's `history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub created: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

fn layer_media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => media::OCI_LAYER,
        Compression::Gzip => media::OCI_LAYER_GZIP,
        Compression::Zstd => media::OCI_LAYER_ZSTD,
    }
}

impl PendingLayer {
    /// Moves the blob into the store (a rename on local storage).
    pub async fn store(self, images: &ImageStore) -> Result<StoredLayer, ImageError> {
        images
            .blobs()
            .adopt_file(&self.file, &self.digests.digest)
            .await?;
        Ok(StoredLayer {
            digest: self.digests.digest,
            diff_id: self.digests.diff_id,
            size: self.digests.size,
            compression: self.compression,
        })
    }

    /// Drops the blob (a commit with nothing in it).
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

impl ImageStore {
    /// Compresses the uncompressed layer tar `tar` (a blocking reader) into a
    /// blob file, computing its diffID and digest on the way, with every
    /// core: one streaming pass, memory flat whatever the size. A read
    /// error of `tar` (a walk that failed) fails it: a truncated layer is
    /// never taken for a whole one.
    pub async fn write_layer(
        &self,
        tar: Box<dyn Read + Send>,
        compression: Compression,
    ) -> Result<PendingLayer, ImageError> {
        let dir = self.scratch().to_owned();
        tokio::task::spawn_blocking(move || {
            let file = tempfile::Builder::new()
                .prefix("layer-")
                .tempfile_in(&dir)
                .map_err(|e| ImageError::io(&dir, e))?;
            let (file, path) = file.keep().map_err(|e| ImageError::io(&dir, e.error))?;
            let result = (|| {
                let mut w = BufWriter::with_capacity(1 << 20, file);
                let digests = devbox_layer::write_layer(tar, &mut w, compression).map_err(|e| {
                    ImageError::Layer {
                        what: "the commit's layer".into(),
                        source: e,
                    }
                })?;
                let file: File = w
                    .into_inner()
                    .map_err(|e| ImageError::io(&path, e.into_error()))?;
                file.sync_all().map_err(|e| ImageError::io(&path, e))?;
                Ok(digests)
            })();
            match result {
                Ok(digests) => Ok(PendingLayer {
                    file: path,
                    digests,
                    compression,
                }),
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| ImageError::io(self.scratch(), std::io::Error::other(e)))?
    }

    /// Merges `layers` (oldest first) into one layer blob whose tree, on the
    /// same base, is the one they make together.
    pub async fn squash_layers(
        &self,
        layers: &[ResolvedLayer],
        compression: Compression,
    ) -> Result<PendingLayer, ImageError> {
        let handle = tokio::runtime::Handle::current();
        let (store, layers) = (self.clone(), layers.to_vec());
        let (r, w) = std::io::pipe().map_err(|e| ImageError::io(self.scratch(), e))?;
        let merging = tokio::task::spawn_blocking(move || {
            // Everything here runs on this blocking thread; the readers
            // never cross threads.
            let open = |i: usize| -> std::io::Result<Box<dyn Read>> {
                let layer = &layers[i];
                let blob = handle
                    .block_on(store.open_blob(&layer.digest))
                    .map_err(std::io::Error::other)?;
                devbox_layer::decompress(blob, layer.compression)
                    .map(|r| Box::new(r) as Box<dyn Read>)
                    .map_err(std::io::Error::other)
            };
            let mut w = w;
            devbox_layer::squash(layers.len(), open, &mut w).map_err(|e| e.to_string())
        });
        let pending = self.write_layer(Box::new(r), compression).await;
        let merged = merging
            .await
            .map_err(|e| ImageError::io(self.scratch(), std::io::Error::other(e)))?;
        match (pending, merged) {
            (Ok(p), Ok(_)) => Ok(p),
            (Ok(p), Err(reason)) => {
                p.discard();
                Err(ImageError::document("the squashed layer", reason))
            }
            (Err(e), _) => Err(e),
        }
    }

    /// The image `base` with its layers after the first `keep` replaced by
    /// `layers`, and `history` appended to its config's history; the config
    /// blob is stored, the manifest is returned unrecorded. History entries
    /// of replaced layers stay, marked as empty layers except the last
    /// `layers.len()` of them, so the history still tells every step.
    /// Always an OCI manifest (a Docker schema 2 base is converted: its
    /// blobs are the same).
    pub async fn derive(
        &self,
        base: &Digest,
        keep: usize,
        layers: &[StoredLayer],
        history: &[HistoryEntry],
    ) -> Result<ManifestRecord, ImageError> {
        let rec =
            self.metadata()
                .get_manifest(base)
                .await?
                .ok_or_else(|| ImageError::NotFound {
                    what: format!("image {base}"),
                })?;
        let what = format!("manifest {base}");
        let Document::Manifest(m) =
            documents::parse_document(&what, &rec.media_type, &rec.content)?
        else {
            return Err(ImageError::UnsupportedMediaType {
                what,
                media_type: rec.media_type,
            });
        };
        let parts = documents::manifest_parts(&what, &m)?;
        let config_bytes = self.blobs().read_blob(&parts.config, MAX_CONFIG).await?;
        let old_layers = parts.layers.len();
        if keep > old_layers {
            return Err(ImageError::document(
                &what,
                format!("cannot keep {keep} of its {old_layers} layers"),
            ));
        }
        let config = derive_config(&config_bytes, keep, layers, history)
            .map_err(|reason| ImageError::document(format!("config {}", parts.config), reason))?;
        let config_digest = Digest::of(&config);
        self.blobs()
            .put_bytes(Some(&config_digest), bytes::Bytes::from(config.clone()))
            .await?;
        let mut refs: Vec<BlobRef> = parts.layers[..keep]
            .iter()
            .map(|l| BlobRef {
                media_type: layer_media_type(l.compression),
                digest: l.digest.clone(),
                size: l.size,
            })
            .collect();
        refs.extend(layers.iter().map(|l| BlobRef {
            media_type: layer_media_type(l.compression),
            digest: l.digest.clone(),
            size: l.size,
        }));
        let content = documents::oci_manifest(
            &BlobRef {
                media_type: media::OCI_CONFIG,
                digest: config_digest.clone(),
                size: config.len() as u64,
            },
            &refs,
        );
        Ok(ManifestRecord {
            digest: Digest::of(&content),
            media_type: media::OCI_MANIFEST.to_owned(),
            content,
            config_digest,
            size: refs.iter().map(|r| r.size).sum(),
            layers: refs.len() as u32,
            created_at: Utc::now(),
        })
    }
}

/// The config `base` with layers after the first `keep` replaced by
/// `layers` (diff IDs and history) and `history` appended.
fn derive_config(
    base: &[u8],
    keep: usize,
    layers: &[StoredLayer],
    history: &[HistoryEntry],
) -> Result<Vec<u8>, String> {
    let mut config: Value = serde_json::from_slice(base).map_err(|e| e.to_string())?;
    let obj = config
        .as_object_mut()
        .ok_or("the config is not a JSON object")?;
    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| serde_json::json!({"type": "layers", "diff_ids": []}));
    let diff_ids = rootfs
        .as_object_mut()
        .ok_or("rootfs is not an object")?
        .entry("diff_ids")
        .or_insert_with(|| Value::Array(Vec::new()));
    let ids = diff_ids.as_array_mut().ok_or("diff_ids is not a list")?;
    if keep > ids.len() {
        return Err(format!("cannot keep {keep} of {} diff ids", ids.len()));
    }
    let replaced = ids.len() - keep;
    ids.truncate(keep);
    ids.extend(layers.iter().map(|l| Value::String(l.diff_id.to_string())));

    let hist = obj
        .entry("history")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or("history is not a list")?;
    // Entries that stand for a layer, in order; the ones of replaced layers
    // become empty but for the last ones, which now stand for the new layers.
    let layered: Vec<usize> = hist
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            !h.get("empty_layer")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
        .map(|(i, _)| i)
        .collect();
    if replaced > 0 && layered.len() >= keep + replaced {
        let replaced_entries = &layered[keep..keep + replaced];
        let stay = layers.len().min(replaced_entries.len());
        for &i in &replaced_entries[..replaced_entries.len() - stay] {
            if let Some(h) = hist[i].as_object_mut() {
                h.insert("empty_layer".into(), Value::Bool(true));
            }
        }
    }
    for h in history {
        hist.push(serde_json::json!({
            "created": h.created.to_rfc3339_opts(SecondsFormat::Secs, true),
            "created_by": h.created_by,
            "comment": h.comment,
        }));
    }
    if let Some(last) = history.last() {
        obj.insert(
            "created".into(),
            Value::String(last.created.to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
    }
    serde_json::to_vec(&config).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(c: char) -> StoredLayer {
        let d: Digest = format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap();
        StoredLayer {
            digest: d.clone(),
            diff_id: d,
            size: 10,
            compression: Compression::Gzip,
        }
    }

    fn entry(by: &str) -> HistoryEntry {
        HistoryEntry {
            created: Utc::now(),
            created_by: by.into(),
            comment: String::new(),
        }
    }

    #[test]
    fn a_commit_appends_its_layer_and_its_history() {
        let base = br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"]},
            "rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},
            "history":[{"created_by":"import"}]}"#;
        let out = derive_config(base, 1, &[layer('a')], &[entry("devbox commit")]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(v["history"].as_array().unwrap().len(), 2);
        assert_eq!(v["config"]["Env"][0], "A=1", "the rest of the config stays");
        assert!(v["created"].is_string());
    }

    #[test]
    fn a_squash_keeps_every_history_entry_and_marks_the_merged_ones_empty() {
        let base = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "sha256:2222222222222222222222222222222222222222222222222222222222222222"]},
            "history":[{"created_by":"import"},{"created_by":"c1"},{"created_by":"c2"}]}"#;
        let out = derive_config(base, 1, &[layer('b')], &[]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let ids = v["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1], layer('b').diff_id.to_string());
        let h = v["history"].as_array().unwrap();
        assert_eq!(h.len(), 3, "no entry is lost");
        assert_eq!(h[1]["empty_layer"], true);
        assert!(
            h[2].get("empty_layer").is_none(),
            "the last one stands for the merged layer"
        );
        let layered = h.iter().filter(|e| e.get("empty_layer").is_none()).count();
        assert_eq!(layered, ids.len(), "one history entry per layer");
    }
}
