//! Pushing a stored image to another registry (a team's own, to deploy
//! from), in two steps like a pull: [`begin`] finds the image and its blobs
//! and reaches the registry with the credentials; [`PendingPush::finish`]
//! uploads every blob the registry lacks, then the manifests verbatim (an
//! index's images first), so the image keeps its digest there.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use devbox_model::api::{Image, ProgressEvent, PushRequest};
use devbox_model::{Digest, ImageRef};
use devbox_store::ManifestRecord;
use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use url::Url;

use crate::media::{self, DocumentKind};
use crate::progress::Progress;
use crate::pull::client::RegistryClient;
use crate::pull::naming;
use crate::{ImageError, ImageStore};

/// Blobs uploaded at the same time.
const CONCURRENT_BLOBS: usize = 3;
/// How often a blob's upload reports its progress.
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// A push whose first step is done: the image and its blobs are known and
/// the registry answered.
#[derive(Debug)]
pub struct PendingPush {
    store: ImageStore,
    client: RegistryClient,
    destination: ImageRef,
    /// The image's manifest, pushed last.
    top: ManifestRecord,
    /// The images of an index, pushed by digest before it.
    children: Vec<ManifestRecord>,
    /// Every blob the manifests name, once each.
    blobs: Vec<(Digest, u64)>,
}

/// The blobs an image manifest names (its config and layers, but layers
/// registries do not serve), as `(digest, size)`.
fn manifest_blobs(m: &ManifestRecord) -> Result<Vec<(Digest, u64)>, ImageError> {
    let what = format!("manifest {}", m.digest);
    let doc: serde_json::Value =
        serde_json::from_slice(&m.content).map_err(|e| ImageError::document(&what, e))?;
    let descriptor = |d: &serde_json::Value| -> Result<(Digest, u64), ImageError> {
        let digest = d["digest"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ImageError::document(&what, "a descriptor without a sha256 digest"))?;
        Ok((digest, d["size"].as_u64().unwrap_or(0)))
    };
    let mut out = vec![descriptor(&doc["config"])?];
    for l in doc["layers"].as_array().into_iter().flatten() {
        let t = l["mediaType"].as_str().unwrap_or_default();
        if !t.contains(".foreign.") && !t.contains(".nondistributable.") {
            out.push(descriptor(l)?);
        }
    }
    Ok(out)
}

/// The manifests an index names.
fn index_children(m: &ManifestRecord) -> Result<Vec<Digest>, ImageError> {
    let what = format!("index {}", m.digest);
    let doc: serde_json::Value =
        serde_json::from_slice(&m.content).map_err(|e| ImageError::document(&what, e))?;
    doc["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            d["digest"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ImageError::document(&what, "a manifest without a sha256 digest"))
        })
        .collect()
}

pub(crate) async fn begin(
    store: &ImageStore,
    req: &PushRequest,
) -> Result<PendingPush, ImageError> {
    let meta = store.metadata();
    let source = &req.reference;
    let not_found = || ImageError::NotFound {
        what: format!("image {source}"),
    };
    let digest = match (source.digest(), source.tag()) {
        (Some(d), _) => crate::images::parse_digest(source, d)?,
        (None, Some(tag)) => {
            meta.get_tag(&source.repository(), tag)
                .await?
                .ok_or_else(not_found)?
                .digest
        }
        (None, None) => unreachable!("a reference without digest has a tag"),
    };
    let top = meta.get_manifest(&digest).await?.ok_or_else(not_found)?;
    let mut children = Vec::new();
    let mut blobs: Vec<(Digest, u64)> = Vec::new();
    match media::document_kind(&top.media_type) {
        Some(DocumentKind::Index) => {
            for child in index_children(&top)? {
                let m = meta
                    .get_manifest(&child)
                    .await?
                    .ok_or_else(|| ImageError::NotFound {
                        what: format!("manifest {child} of image {source}"),
                    })?;
                blobs.extend(manifest_blobs(&m)?);
                children.push(m);
            }
        }
        _ => blobs.extend(manifest_blobs(&top)?),
    }
    let mut seen = std::collections::HashSet::new();
    blobs.retain(|(d, _)| seen.insert(d.clone()));
    for (d, _) in &blobs {
        if !store.blobs().has_blob(d).await? {
            return Err(ImageError::NotFound {
                what: format!("blob {d} of image {source}"),
            });
        }
    }
    if let Some(d) = req.destination.digest()
        && d != digest.as_str()
    {
        return Err(ImageError::InvalidReference {
            reference: req.destination.to_string(),
            reason: "the destination's digest is not the image's",
        });
    }
    let remote = naming::remote_for(&req.destination, req.insecure);
    let credentials = req
        .username
        .clone()
        .map(|u| (u, req.password.clone().unwrap_or_default()));
    let client = RegistryClient::new(remote, credentials, req.insecure)?.for_push();
    // Reaching the registry (and logging in) now makes a wrong address or
    // password an error of this step.
    match blobs.first() {
        Some((first, _)) => {
            blob_exists(&client, first).await?;
        }
        None => {
            let url = client.remote().base.join("v2/").expect("a valid path");
            let resp = client
                .send(&url, "the registry", |h| h.get(url.clone()))
                .await?;
            if !resp.status().is_success() {
                return Err(client.unexpected(&url, resp).await);
            }
        }
    }
    Ok(PendingPush {
        store: store.clone(),
        client,
        destination: req.destination.clone(),
        top,
        children,
        blobs,
    })
}

/// Whether the remote repository has the blob.
async fn blob_exists(client: &RegistryClient, digest: &Digest) -> Result<bool, ImageError> {
    let url = client.remote().url("blobs", digest.as_str());
    let what = format!("blob {digest}");
    let resp = client.send(&url, &what, |h| h.head(url.clone())).await?;
    match resp.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(client.unexpected(&url, resp).await),
    }
}

impl PendingPush {
    /// The digest the image keeps at its destination.
    pub fn digest(&self) -> &Digest {
        &self.top.digest
    }

    /// Uploads what the registry lacks, then the manifests. Events:
    /// `Resolved` (every blob), `Progress` while a blob uploads,
    /// `LayerDone` per blob (`cached` when the registry had it), `Done`.
    pub async fn finish(
        self,
        progress: &(dyn Fn(ProgressEvent) + Send + Sync),
    ) -> Result<Image, ImageError> {
        let Self {
            store,
            client,
            destination,
            top,
            children,
            blobs,
        } = self;
        progress(ProgressEvent::Resolved {
            digest: top.digest.to_string(),
            layers: blobs
                .iter()
                .map(|(d, size)| devbox_model::api::LayerInfo {
                    digest: d.to_string(),
                    size: *size,
                })
                .collect(),
        });
        let (store, client) = (&store, &client);
        let uploads: Vec<_> = blobs
            .iter()
            .map(|(d, size)| push_blob(store, client, d, *size, progress))
            .collect();
        futures::stream::iter(uploads)
            .buffer_unordered(CONCURRENT_BLOBS)
            .try_collect::<Vec<()>>()
            .await?;
        for child in &children {
            put_manifest(client, child, child.digest.as_str()).await?;
        }
        let reference = match (destination.digest(), destination.tag()) {
            (_, Some(tag)) => tag.to_owned(),
            (Some(d), None) => d.to_owned(),
            (None, None) => unreachable!("a reference without digest has a tag"),
        };
        put_manifest(client, &top, &reference).await?;
        let image = Image {
            reference: destination.to_string(),
            repository: destination.repository(),
            tag: destination.tag().unwrap_or_default().to_owned(),
            digest: top.digest.clone(),
            size: top.size,
            layers: top.layers as usize,
            created_at: top.created_at,
        };
        tracing::info!(destination = %destination, digest = %top.digest, "pushed image");
        progress(ProgressEvent::Done {
            image: image.clone(),
        });
        Ok(image)
    }
}

/// Uploads one blob unless the registry has it: a session, then the whole
/// blob in one `PUT` with its digest.
async fn push_blob(
    store: &ImageStore,
    client: &RegistryClient,
    digest: &Digest,
    size: u64,
    progress: Progress<'_>,
) -> Result<(), ImageError> {
    let what = format!("blob {digest}");
    if blob_exists(client, digest).await? {
        progress(ProgressEvent::LayerDone {
            digest: digest.to_string(),
            cached: true,
        });
        return Ok(());
    }
    let start = client.remote().url("blobs", "uploads/");
    let resp = client
        .send(&start, &what, |h| {
            h.post(start.clone()).header(CONTENT_LENGTH, 0)
        })
        .await?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(client.unexpected(&start, resp).await);
    }
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| start.join(l).ok())
        .ok_or_else(|| {
            ImageError::document(&what, "the registry started an upload without a Location")
        })?;
    let mut put: Url = location;
    put.query_pairs_mut().append_pair("digest", digest.as_str());

    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let body = store
        .blobs()
        .blob_stream(digest)
        .await?
        .inspect_ok(move |c: &Bytes| {
            counter.fetch_add(c.len() as u64, Ordering::Relaxed);
        });
    let req = client
        .http()
        .put(put.clone())
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(body));
    let upload = client.send_once(&put, &what, req);
    tokio::pin!(upload);
    let mut tick = tokio::time::interval(REPORT_EVERY);
    let resp = loop {
        tokio::select! {
            r = &mut upload => break r?,
            _ = tick.tick() => progress(ProgressEvent::Progress {
                digest: digest.to_string(),
                current: sent.load(Ordering::Relaxed),
                total: size,
            }),
        }
    };
    if !resp.status().is_success() {
        return Err(client.unexpected(&put, resp).await);
    }
    progress(ProgressEvent::LayerDone {
        digest: digest.to_string(),
        cached: false,
    });
    Ok(())
}

/// Puts a manifest verbatim under `reference`; the registry must agree on
/// its digest.
async fn put_manifest(
    client: &RegistryClient,
    m: &ManifestRecord,
    reference: &str,
) -> Result<(), ImageError> {
    let url = client.remote().url("manifests", reference);
    let what = format!("manifest {}", m.digest);
    let body = Bytes::from(m.content.clone());
    let resp = client
        .send(&url, &what, |h| {
            h.put(url.clone())
                .header(CONTENT_TYPE, &m.media_type)
                .body(body.clone())
        })
        .await?;
    if !resp.status().is_success() {
        return Err(client.unexpected(&url, resp).await);
    }
    if let Some(stated) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok())
    {
        crate::blobs::check_digest(&what, &m.digest, &stated)?;
    }
    Ok(())
}
