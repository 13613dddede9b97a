//! Pulling an image from an OCI distribution registry.
//!
//! The manifest is asked for with every manifest and index media type this
//! store understands (OCI and Docker schema 2); an index resolves to the
//! `linux/<host arch>` image. The config and each layer are fetched unless
//! already stored, every blob verified while it streams (digest, size, and
//! for layers the diff ID of the uncompressed tar). The manifest is stored
//! verbatim under its own media type once all its blobs are in, and the tag
//! is set last.

pub mod auth;
pub(crate) mod client;
pub mod naming;

use bytes::Bytes;
use devbox_layer::digest::Digest;
use devbox_model::ImageRef;
use devbox_model::api::{Image, ProgressEvent, PullRequest};
use futures::{StreamExt, TryStreamExt};
use reqwest::header::CONTENT_TYPE;

use crate::blobs::check_digest;
use crate::documents::{self, Document, LayerDesc, MAX_CONFIG, MAX_MANIFEST, ManifestParts};
use crate::images::{StagedManifest, check_layer_count};
use crate::media::MANIFEST_ACCEPT;
use crate::platform;
use crate::progress::Progress;
use crate::{ImageError, ImageStore};
use client::RegistryClient;

/// Layers fetched at the same time.
const CONCURRENT_LAYERS: usize = 3;
/// How many index levels are followed before giving up.
const MAX_INDEX_DEPTH: usize = 2;

/// A pull whose first step is done: the registry answered and the
/// manifest is fetched and checked. What remains is fetching the blobs.
#[derive(Debug)]
pub struct PendingPull {
    store: ImageStore,
    reference: ImageRef,
    client: RegistryClient,
    digest: Digest,
    media_type: String,
    content: Bytes,
    parts: ManifestParts,
}

pub(crate) async fn begin(
    store: &ImageStore,
    req: &PullRequest,
) -> Result<PendingPull, ImageError> {
    let reference = &req.reference;
    let remote = naming::remote_for(reference, req.insecure);
    let credentials = match (&req.username, &req.password) {
        (Some(u), Some(p)) => Some((u.clone(), p.clone())),
        (Some(u), None) => Some((u.clone(), String::new())),
        _ => None,
    };
    let pinned = reference
        .digest()
        .map(|d| crate::images::parse_digest(reference, d))
        .transpose()?;
    let wanted = match (&pinned, reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => unreachable!("a reference without digest has a tag"),
    };
    let client = RegistryClient::new(remote, credentials, req.insecure)?;
    let (digest, media_type, content, parts) =
        fetch_manifest(&client, &wanted, pinned.as_ref()).await?;
    Ok(PendingPull {
        store: store.clone(),
        reference: reference.clone(),
        client,
        digest,
        media_type,
        content,
        parts,
    })
}

impl PendingPull {
    /// The manifest digest the pull resolved to.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Fetches the config and the layers, then records the manifest and the
    /// tag. See [`ImageStore::begin_pull`] for the events reported.
    pub async fn finish(
        self,
        progress: &(dyn Fn(ProgressEvent) + Send + Sync),
    ) -> Result<Image, ImageError> {
        let Self {
            store,
            reference,
            client,
            digest,
            media_type,
            content,
            parts,
        } = self;
        progress(parts.resolved_event(digest.as_str()));
        let store = &store;
        let client = &client;

        let diff_ids = fetch_config(store, client, &parts).await?;
        check_layer_count(
            &format!("manifest {digest}"),
            parts.layers.len(),
            diff_ids.len(),
        )?;

        // The futures are built up front (they do nothing until polled): a
        // closure inside the stream would make this future's Send-ness depend
        // on higher-ranked lifetimes the compiler cannot prove, and the server
        // must run pulls on spawned tasks.
        let fetches: Vec<_> = parts
            .layers
            .iter()
            .zip(&diff_ids)
            .map(|(layer, diff_id)| fetch_layer(store, client, layer, diff_id, progress))
            .collect();
        futures::stream::iter(fetches)
            .buffer_unordered(CONCURRENT_LAYERS)
            .try_collect::<Vec<()>>()
            .await?;

        let staged = StagedManifest {
            digest,
            media_type,
            content: content.to_vec(),
            config: parts.config.clone(),
            layers: parts
                .layers
                .iter()
                .map(|l| (l.digest.clone(), l.size))
                .collect(),
        };
        let image =
            crate::images::record(store, staged, &reference.repository(), reference.tag()).await?;
        tracing::info!(reference = %reference, digest = %image.digest, "pulled image");
        progress(ProgressEvent::Done {
            image: image.clone(),
        });
        Ok(image)
    }
}

/// Fetches the manifest for `wanted` (a tag or digest), following an index
/// to this platform's manifest. Returns its digest, media type, bytes and
/// checked parts.
async fn fetch_manifest(
    client: &RegistryClient,
    wanted: &str,
    pinned: Option<&Digest>,
) -> Result<(Digest, String, Bytes, ManifestParts), ImageError> {
    let mut wanted = wanted.to_owned();
    let mut expected = pinned.cloned();
    let mut expected_size = None;
    for _ in 0..=MAX_INDEX_DEPTH {
        let what = format!("manifest {}:{wanted}", client.remote().repository);
        let url = client.remote().url("manifests", &wanted);
        let (body, headers) = client
            .get_bounded(&url, Some(MANIFEST_ACCEPT), &what, MAX_MANIFEST)
            .await?;
        let digest = Digest::of(&body);
        if let Some(e) = &expected {
            check_digest(&what, e, &digest)?;
        }
        if let Some(n) = expected_size
            && n != body.len() as u64
        {
            return Err(ImageError::SizeMismatch {
                what,
                expected: n,
                actual: body.len() as u64,
            });
        }
        // The registry's own statement of the digest must agree too.
        if let Some(stated) = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
        {
            check_digest(&what, &stated, &digest)?;
        }
        let declared = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let media_type = documents::media_type_of(declared, &body).ok_or_else(|| {
            ImageError::UnsupportedMediaType {
                what: what.clone(),
                media_type: declared.unwrap_or("none").to_owned(),
            }
        })?;
        match documents::parse_document(&what, &media_type, &body)? {
            Document::Manifest(m) => {
                let parts = documents::manifest_parts(&what, &m)?;
                return Ok((digest, media_type, body, parts));
            }
            Document::Index(index) => {
                let arch = platform::host_arch();
                let chosen = platform::select(index.manifests(), arch).ok_or_else(|| {
                    ImageError::NoMatchingPlatform {
                        what: what.clone(),
                        arch: arch.to_owned(),
                    }
                })?;
                let d = documents::descriptor_digest(&what, chosen)?;
                wanted = d.to_string();
                expected = Some(d);
                expected_size = Some(chosen.size());
            }
        }
    }
    Err(ImageError::document(
        format!("manifest {}:{wanted}", client.remote().repository),
        "image indexes nest too deeply",
    ))
}

/// Stores the config blob (fetching it unless stored) and returns its diff IDs.
async fn fetch_config(
    store: &ImageStore,
    client: &RegistryClient,
    parts: &ManifestParts,
) -> Result<Vec<Digest>, ImageError> {
    let what = format!("config {}", parts.config);
    let config = if store.blobs().has_blob(&parts.config).await? {
        let bytes = store.blobs().read_blob(&parts.config, MAX_CONFIG).await?;
        documents::parse_config(&what, &bytes)?
    } else {
        let url = client.remote().url("blobs", parts.config.as_str());
        let (body, _) = client
            .get_bounded(&url, None, &what, MAX_CONFIG.min(parts.config_size))
            .await?;
        // Parse before storing so a malformed config is never kept.
        let config = documents::parse_config(&what, &body)?;
        store.blobs().put_bytes(Some(&parts.config), body).await?;
        config
    };
    Ok(config.diff_ids)
}

async fn fetch_layer(
    store: &ImageStore,
    client: &RegistryClient,
    layer: &LayerDesc,
    diff_id: &Digest,
    progress: Progress<'_>,
) -> Result<(), ImageError> {
    let cached = store.blobs().has_blob(&layer.digest).await?;
    if !cached {
        let what = format!("layer {}", layer.digest);
        let url = client.remote().url("blobs", layer.digest.as_str());
        let body = client.get_stream(&url, &what).await?;
        let remote = client.remote();
        let source = format!("{}/{}", remote.registry, remote.repository);
        crate::verify::store_layer(store.blobs(), layer, diff_id, body, &source, progress).await?;
    }
    progress(ProgressEvent::LayerDone {
        digest: layer.digest.to_string(),
        cached,
    });
    Ok(())
}
