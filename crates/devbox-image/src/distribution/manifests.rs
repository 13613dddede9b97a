//! Manifests as a registry receives and serves them: the checks a pushed
//! manifest passes before it is stored, lookups by tag or digest within a
//! repository, deletes, and the referrers index.
//!
//! A pushed manifest is stored verbatim under the media type it was pushed
//! with. It is refused unless every blob it names is stored (an index: unless
//! the repository holds every manifest it names), so a stored manifest never
//! names missing content. An image manifest's config may be of any media
//! type (artifacts carry their own), and so may its layers.

use bytes::Bytes;
use chrono::Utc;
use devbox_model::{Digest, is_repository_name, is_tag};
use devbox_store::{ImageName, ManifestRecord, StoreError};
use serde::Deserialize;

use super::DistributionError;
use crate::ImageStore;
use crate::documents::MAX_MANIFEST;
use crate::media::{self, DocumentKind};

/// The config an image index is recorded with, having none of its own: the
/// digest of `{}`, the OCI image spec's empty descriptor.
pub const EMPTY_CONFIG: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// What follows `/manifests/` in a request: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    /// A tag, or (with a `:`) a digest.
    pub fn parse(s: &str) -> Result<Self, DistributionError> {
        if s.contains(':') {
            return parse_digest(s).map(Reference::Digest);
        }
        if is_tag(s) {
            Ok(Reference::Tag(s.to_owned()))
        } else {
            Err(DistributionError::TagInvalid { tag: s.to_owned() })
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => f.write_str(d.as_str()),
        }
    }
}

/// A digest a client sent.
pub fn parse_digest(s: &str) -> Result<Digest, DistributionError> {
    s.parse().map_err(
        |e: devbox_model::DigestError| DistributionError::DigestInvalid {
            reason: e.to_string(),
        },
    )
}

/// Refuses what is not a repository name.
pub fn check_repository(name: &str) -> Result<(), DistributionError> {
    if is_repository_name(name) {
        Ok(())
    } else {
        Err(DistributionError::NameInvalid {
            name: name.to_owned(),
        })
    }
}

/// A manifest the registry accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    pub digest: Digest,
    /// The manifest it refers to, for the `OCI-Subject` answer.
    pub subject: Option<Digest>,
}

/// The parts of a manifest or index this registry reads; everything else
/// is kept verbatim and never looked at.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Desc>,
    layers: Option<Vec<Desc>>,
    manifests: Option<Vec<Desc>>,
    subject: Option<Desc>,
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Desc {
    media_type: String,
    digest: String,
    size: u64,
}

fn invalid(reason: impl Into<String>) -> DistributionError {
    DistributionError::ManifestInvalid {
        reason: reason.into(),
    }
}

/// The media type a push stores its manifest under: its `Content-Type`,
/// which must be a manifest or index type and agree with the document's own
/// `mediaType` when it has one. Without a usable `Content-Type`, the
/// document's own type, or its shape for an OCI document without one.
fn push_media_type(content_type: Option<&str>, doc: &Doc) -> Result<String, DistributionError> {
    let declared = content_type
        .map(media::essence)
        .filter(|t| !t.is_empty() && *t != "application/json");
    let own = doc.media_type.as_deref().map(media::essence);
    let chosen = match (declared, own) {
        (Some(d), Some(o)) if d != o => {
            return Err(invalid(format!(
                "the Content-Type {d} differs from the manifest's mediaType {o}"
            )));
        }
        (Some(d), _) => d.to_owned(),
        (None, Some(o)) => o.to_owned(),
        (None, None) if doc.manifests.is_some() => media::OCI_INDEX.to_owned(),
        (None, None) => media::OCI_MANIFEST.to_owned(),
    };
    if media::document_kind(&chosen).is_none() {
        return Err(invalid(format!(
            "media type {chosen} is not an OCI image manifest or index, nor a Docker schema 2 manifest or list"
        )));
    }
    Ok(chosen)
}

fn desc_digest(d: &Desc) -> Result<Digest, DistributionError> {
    d.digest
        .parse()
        .map_err(|e: devbox_model::DigestError| invalid(e.to_string()))
}

/// Layers whose content registries do not serve; they need not be stored.
fn is_foreign(media_type: &str) -> bool {
    let t = media::essence(media_type);
    t.starts_with("application/vnd.docker.image.rootfs.foreign.")
        || t.starts_with("application/vnd.oci.image.layer.nondistributable.")
}

impl ImageStore {
    /// The manifest `reference` names in `repository`.
    pub async fn registry_manifest(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<ManifestRecord, DistributionError> {
        check_repository(repository)?;
        let meta = self.metadata();
        let digest = match reference {
            Reference::Tag(tag) => meta.get_tag(repository, tag).await?.map(|t| t.digest),
            Reference::Digest(d) => meta.holds_manifest(repository, d).await?.then(|| d.clone()),
        };
        let found = match digest {
            Some(d) => meta.get_manifest(&d).await?,
            None => None,
        };
        match found {
            Some(m) => Ok(m),
            None => Err(self.unknown_manifest(repository, reference).await),
        }
    }

    /// `MANIFEST_UNKNOWN` in a repository that exists, else `NAME_UNKNOWN`.
    async fn unknown_manifest(&self, repository: &str, reference: &Reference) -> DistributionError {
        match self.metadata().repository_exists(repository).await {
            Ok(true) => DistributionError::ManifestUnknown {
                repository: repository.to_owned(),
                reference: reference.to_string(),
            },
            Ok(false) => DistributionError::NameUnknown {
                name: repository.to_owned(),
            },
            Err(e) => e.into(),
        }
    }

    /// Stores a pushed manifest in `repository` under `reference` (a tag, or
    /// the digest it must hash to). See the module's documentation for what
    /// is refused.
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<PushedManifest, DistributionError> {
        check_repository(repository)?;
        if body.len() as u64 > MAX_MANIFEST {
            return Err(DistributionError::SizeInvalid {
                reason: format!(
                    "a manifest of {} bytes is larger than the limit of {MAX_MANIFEST}",
                    body.len()
                ),
            });
        }
        let digest = Digest::of(&body);
        if let Reference::Digest(d) = reference
            && *d != digest
        {
            return Err(DistributionError::DigestInvalid {
                reason: format!("the manifest pushed as {d} has the digest {digest}"),
            });
        }
        let doc: Doc = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
        if doc.schema_version != Some(2) {
            return Err(invalid(
                "schemaVersion must be 2 (schema 1 is not supported)",
            ));
        }
        let media_type = push_media_type(content_type, &doc)?;
        let blobs = self.blobs();
        let meta = self.metadata();
        let (config, size, layers) = match media::document_kind(&media_type) {
            Some(DocumentKind::Manifest) => {
                let config = doc
                    .config
                    .as_ref()
                    .ok_or_else(|| invalid("an image manifest needs a config"))?;
                let layers = doc
                    .layers
                    .as_deref()
                    .ok_or_else(|| invalid("an image manifest needs layers"))?;
                let config_digest = desc_digest(config)?;
                let mut named = vec![(config_digest.clone(), config.size, "config")];
                for l in layers {
                    if !is_foreign(&l.media_type) {
                        named.push((desc_digest(l)?, l.size, "layer"));
                    }
                }
                for (d, stated, what) in &named {
                    match blobs.blob_size(d).await? {
                        None => {
                            return Err(DistributionError::ManifestBlobUnknown {
                                repository: repository.to_owned(),
                                what,
                                digest: d.to_string(),
                            });
                        }
                        Some(n) if n != *stated => {
                            return Err(invalid(format!(
                                "the manifest says {what} {d} is {stated} bytes, but it is {n}"
                            )));
                        }
                        Some(_) => {}
                    }
                }
                (
                    config_digest,
                    layers.iter().map(|l| l.size).sum::<u64>(),
                    layers.len(),
                )
            }
            Some(DocumentKind::Index) => {
                let manifests = doc
                    .manifests
                    .as_deref()
                    .ok_or_else(|| invalid("an image index needs manifests"))?;
                for m in manifests {
                    let d = desc_digest(m)?;
                    if !meta.holds_manifest(repository, &d).await? {
                        return Err(DistributionError::ManifestBlobUnknown {
                            repository: repository.to_owned(),
                            what: "manifest",
                            digest: d.to_string(),
                        });
                    }
                }
                (
                    EMPTY_CONFIG.parse().expect("a valid digest"),
                    manifests.iter().map(|m| m.size).sum::<u64>(),
                    0,
                )
            }
            None => unreachable!("push_media_type accepts manifest and index types only"),
        };
        let subject = doc.subject.as_ref().map(desc_digest).transpose()?;
        meta.put_manifest(&ManifestRecord {
            digest: digest.clone(),
            media_type,
            content: body.to_vec(),
            config_digest: config,
            size,
            layers: u32::try_from(layers).unwrap_or(u32::MAX),
            created_at: Utc::now(),
        })
        .await?;
        match reference {
            Reference::Tag(tag) => meta.set_tag(repository, tag, &digest).await?,
            Reference::Digest(_) => meta.link_manifest(repository, &digest).await?,
        }
        tracing::info!(%repository, %reference, %digest, "manifest pushed");
        Ok(PushedManifest { digest, subject })
    }

    /// Deletes a tag, or a manifest with every tag of the repository naming
    /// it. The manifest record goes when no repository names it any more;
    /// refused while it is the image of devboxes.
    pub async fn delete_registry_manifest(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<(), DistributionError> {
        check_repository(repository)?;
        let name = match reference {
            Reference::Tag(t) => ImageName::Tag(t),
            Reference::Digest(d) => ImageName::Digest(d),
        };
        match self.metadata().remove_image(repository, name).await {
            Ok(removal) => {
                tracing::info!(%repository, %reference, manifest_deleted = removal.manifest_deleted, "manifest deleted");
                Ok(())
            }
            Err(StoreError::NotFound { .. }) => {
                Err(self.unknown_manifest(repository, reference).await)
            }
            Err(StoreError::InUse { devboxes, .. }) => Err(DistributionError::InUse {
                reference: format!("{repository}@{reference}"),
                devboxes,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The referrers of `subject` in `repository` as an OCI image index,
    /// only those of `artifact_type` when given. An unknown subject has no
    /// referrers (an empty index), as the spec asks.
    pub async fn referrers(
        &self,
        repository: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<u8>, DistributionError> {
        check_repository(repository)?;
        let found = self.metadata().list_referrers(repository, subject).await?;
        let mut descriptors = Vec::new();
        for m in found {
            let Ok(doc) = serde_json::from_slice::<Doc>(&m.content) else {
                continue;
            };
            let kind = doc
                .artifact_type
                .clone()
                .or_else(|| doc.config.as_ref().map(|c| c.media_type.clone()));
            if artifact_type.is_some_and(|wanted| kind.as_deref() != Some(wanted)) {
                continue;
            }
            let mut d = serde_json::json!({
                "mediaType": m.media_type,
                "digest": m.digest.as_str(),
                "size": m.content.len(),
            });
            if let Some(k) = kind {
                d["artifactType"] = k.into();
            }
            if let Some(a) = doc.annotations {
                d["annotations"] = a.into();
            }
            descriptors.push(d);
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": descriptors,
        });
        Ok(serde_json::to_vec(&index).expect("a JSON value serializes"))
    }

    /// Up to `n` tags of `repository` after `last`, and whether more follow.
    pub async fn registry_tags(
        &self,
        repository: &str,
        last: Option<&str>,
        n: usize,
    ) -> Result<(Vec<String>, bool), DistributionError> {
        check_repository(repository)?;
        let meta = self.metadata();
        if !meta.repository_exists(repository).await? {
            return Err(DistributionError::NameUnknown {
                name: repository.to_owned(),
            });
        }
        let mut tags = meta
            .list_repository_tags(repository, last, n.saturating_add(1))
            .await?;
        let more = tags.len() > n;
        tags.truncate(n);
        Ok((tags, more))
    }

    /// Up to `n` repositories after `last` that `visible` lets through, and
    /// whether more follow. Repositories whose stored names a registry
    /// client cannot write (an image pulled from `localhost:5000/x` keeps
    /// that name) are left out.
    pub async fn registry_catalog(
        &self,
        last: Option<&str>,
        n: usize,
        visible: &(dyn Fn(&str) -> bool + Send + Sync),
    ) -> Result<(Vec<String>, bool), DistributionError> {
        const PAGE: usize = 500;
        let meta = self.metadata();
        let mut out = Vec::new();
        let mut cursor = last.map(str::to_owned);
        loop {
            let page = meta.list_repositories(cursor.as_deref(), PAGE).await?;
            let exhausted = page.len() < PAGE;
            cursor = page.last().cloned();
            for r in page {
                if is_repository_name(&r) && visible(&r) {
                    if out.len() == n {
                        return Ok((out, true));
                    }
                    out.push(r);
                }
            }
            if exhausted {
                return Ok((out, false));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> Doc {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn references_are_tags_or_digests() {
        assert_eq!(Reference::parse("v1").unwrap(), Reference::Tag("v1".into()));
        let d = Digest::of(b"x");
        assert_eq!(Reference::parse(d.as_str()).unwrap(), Reference::Digest(d));
        assert!(matches!(
            Reference::parse("sha512:ab"),
            Err(DistributionError::DigestInvalid { .. })
        ));
        assert!(matches!(
            Reference::parse(".bad"),
            Err(DistributionError::TagInvalid { .. })
        ));
    }

    #[test]
    fn the_media_type_of_a_push_must_agree_with_the_document() {
        let oci =
            doc(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#);
        assert_eq!(
            push_media_type(Some(media::OCI_MANIFEST), &oci).unwrap(),
            media::OCI_MANIFEST
        );
        assert_eq!(push_media_type(None, &oci).unwrap(), media::OCI_MANIFEST);
        let e = push_media_type(Some(media::DOCKER_MANIFEST), &oci).unwrap_err();
        assert!(e.to_string().contains("differs"), "{e}");
        let bare = doc(r#"{"schemaVersion":2,"manifests":[]}"#);
        assert_eq!(
            push_media_type(Some("application/json"), &bare).unwrap(),
            media::OCI_INDEX
        );
        let e = push_media_type(Some("text/plain"), &bare).unwrap_err();
        assert!(e.to_string().contains("text/plain"), "{e}");
        let e = push_media_type(
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            &bare,
        )
        .unwrap_err();
        assert!(
            matches!(e, DistributionError::ManifestInvalid { .. }),
            "{e}"
        );
    }

    #[test]
    fn the_empty_config_is_the_digest_of_an_empty_object() {
        assert_eq!(Digest::of(b"{}").as_str(), EMPTY_CONFIG);
    }
}
