//! Manifests, indexes and image configs: parsing what others wrote and
//! writing our own.

use devbox_layer::compression::Compression;
use devbox_layer::digest::Digest;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::media::{self, DocumentKind};
use crate::{ImageError, ImageRuntimeConfig};

/// Largest manifest or index accepted (the distribution spec's suggestion).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest image config accepted; long build histories make configs grow.
pub const MAX_CONFIG: u64 = 16 << 20;

/// The `PATH` of images this store generates, as Docker sets it.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A manifest or index as fetched or read, with its media type resolved.
#[derive(Debug)]
pub enum Document {
    Manifest(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

/// Media type of a manifest-like document: the transport's (a registry's
/// Content-Type or a descriptor's), else the document's own `mediaType`.
/// Content-Types that name no manifest type (`application/json`, or nothing)
/// defer to the document.
pub fn media_type_of(declared: Option<&str>, bytes: &[u8]) -> Option<String> {
    if let Some(d) = declared
        && media::document_kind(d).is_some()
    {
        return Some(media::essence(d).to_owned());
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    match probe.media_type {
        Some(m) => Some(m),
        // An OCI document may omit its media type; its shape tells.
        None if probe.manifests.is_some() => Some(media::OCI_INDEX.to_owned()),
        None if probe.layers.is_some() => Some(media::OCI_MANIFEST.to_owned()),
        None => declared.map(|d| media::essence(d).to_owned()),
    }
}

/// Parses a manifest or index of the given media type.
pub fn parse_document(what: &str, media_type: &str, bytes: &[u8]) -> Result<Document, ImageError> {
    match media::document_kind(media_type) {
        Some(DocumentKind::Manifest) => serde_json::from_slice::<ImageManifest>(bytes)
            .map(|m| Document::Manifest(Box::new(m)))
            .map_err(|e| ImageError::document(what, e)),
        Some(DocumentKind::Index) => serde_json::from_slice::<ImageIndex>(bytes)
            .map(|i| Document::Index(Box::new(i)))
            .map_err(|e| ImageError::document(what, e)),
        None => Err(ImageError::UnsupportedMediaType {
            what: what.to_owned(),
            media_type: media_type.to_owned(),
        }),
    }
}

/// The digest a descriptor names.
pub fn descriptor_digest(what: &str, d: &Descriptor) -> Result<Digest, ImageError> {
    d.digest()
        .to_string()
        .parse::<Digest>()
        .map_err(|_| ImageError::document(what, format!("unsupported digest {}", d.digest())))
}

/// A layer of a manifest, checked for a media type this store can unpack.
#[derive(Debug, Clone)]
pub struct LayerDesc {
    pub digest: Digest,
    pub size: u64,
    pub compression: Compression,
}

/// The config and layers of an image manifest, checked.
#[derive(Debug, Clone)]
pub struct ManifestParts {
    pub config: Digest,
    pub config_size: u64,
    pub layers: Vec<LayerDesc>,
}

impl ManifestParts {
    /// The event announcing the layers of the manifest `digest`.
    pub fn resolved_event(&self, digest: &str) -> devbox_model::api::ProgressEvent {
        devbox_model::api::ProgressEvent::Resolved {
            digest: digest.to_owned(),
            layers: self
                .layers
                .iter()
                .map(|l| devbox_model::api::LayerInfo {
                    digest: l.digest.to_string(),
                    size: l.size,
                })
                .collect(),
        }
    }
}

/// Checks a manifest's config and layer descriptors.
pub fn manifest_parts(what: &str, m: &ImageManifest) -> Result<ManifestParts, ImageError> {
    let config_type = m.config().media_type().to_string();
    if !media::is_image_config(&config_type) {
        return Err(ImageError::UnsupportedMediaType {
            what: format!("config of {what}"),
            media_type: config_type,
        });
    }
    let layers = m
        .layers()
        .iter()
        .map(|l| {
            let media_type = l.media_type().to_string();
            let compression = media::layer_compression(&media_type).ok_or_else(|| {
                ImageError::UnsupportedMediaType {
                    what: format!("layer {} of {what}", l.digest()),
                    media_type: media_type.clone(),
                }
            })?;
            Ok(LayerDesc {
                digest: descriptor_digest(what, l)?,
                size: l.size(),
                compression,
            })
        })
        .collect::<Result<Vec<_>, ImageError>>()?;
    Ok(ManifestParts {
        config: descriptor_digest(what, m.config())?,
        config_size: m.config().size(),
        layers,
    })
}

/// The parts of an image config this store reads. Docker writes `null` for
/// empty lists, so every list is optional.
#[derive(Debug, Deserialize)]
struct ConfigDoc {
    #[serde(default)]
    config: Option<RunConfigDoc>,
    rootfs: RootFsDoc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfigDoc {
    env: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RootFsDoc {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

/// What an image config says: layer diff IDs and the runtime settings.
#[derive(Debug, Clone)]
pub struct ConfigParts {
    pub diff_ids: Vec<Digest>,
    pub runtime: ImageRuntimeConfig,
}

/// Parses an image config.
pub fn parse_config(what: &str, bytes: &[u8]) -> Result<ConfigParts, ImageError> {
    let doc: ConfigDoc =
        serde_json::from_slice(bytes).map_err(|e| ImageError::document(what, e))?;
    if doc.rootfs.kind != "layers" {
        return Err(ImageError::document(
            what,
            format!("rootfs type {:?} is not \"layers\"", doc.rootfs.kind),
        ));
    }
    let diff_ids = doc
        .rootfs
        .diff_ids
        .unwrap_or_default()
        .iter()
        .map(|d| {
            d.parse::<Digest>()
                .map_err(|_| ImageError::document(what, format!("bad diff id {d:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let run = doc.config.unwrap_or_default();
    Ok(ConfigParts {
        diff_ids,
        runtime: ImageRuntimeConfig {
            env: run.env.unwrap_or_default(),
            entrypoint: run.entrypoint.filter(|v| !v.is_empty()),
            cmd: run.cmd.filter(|v| !v.is_empty()),
            working_dir: run.working_dir.filter(|w| !w.is_empty()),
            user: run.user.filter(|u| !u.is_empty()),
        },
    })
}

/// The config this store generates for an image made from a rootfs tarball.
///
/// It depends on the layer alone: no time is recorded (`created` is
/// optional in the OCI image spec, in the config and in its history), so
/// importing the same rootfs twice gives the same config and so the same
/// manifest digest.
pub fn rootfs_config(diff_id: &Digest) -> Vec<u8> {
    let config = serde_json::json!({
        "architecture": crate::platform::host_arch(),
        "os": "linux",
        "config": {
            "Env": [DEFAULT_PATH],
            "Cmd": ["/bin/sh"],
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
        "history": [{ "created_by": "devbox image import" }],
    });
    serde_json::to_vec(&config).expect("a JSON value serializes")
}

/// A descriptor for an OCI manifest of our own.
#[derive(Debug, Clone)]
pub struct BlobRef {
    pub media_type: &'static str,
    pub digest: Digest,
    pub size: u64,
}

/// Serializes an OCI image manifest naming `config` and `layers`.
pub fn oci_manifest(config: &BlobRef, layers: &[BlobRef]) -> Vec<u8> {
    let desc = |b: &BlobRef| serde_json::json!({ "mediaType": b.media_type, "digest": b.digest.to_string(), "size": b.size });
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": desc(config),
        "layers": layers.iter().map(desc).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&manifest).expect("a JSON value serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_configs_with_nulls_parse() {
        let c = br#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Cmd":["sh"],"Entrypoint":null,"WorkingDir":"","User":"1000"},
            "rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#;
        let p = parse_config("config", c).unwrap();
        assert_eq!(p.diff_ids.len(), 1);
        assert!(p.runtime.env.is_empty());
        assert_eq!(p.runtime.cmd, Some(vec!["sh".to_owned()]));
        assert_eq!(p.runtime.entrypoint, None);
        assert_eq!(p.runtime.working_dir, None);
        assert_eq!(p.runtime.user.as_deref(), Some("1000"));
        let e = parse_config("config x", br#"{"rootfs":{"type":"other"}}"#).unwrap_err();
        assert!(e.to_string().contains("config x"), "{e}");
    }

    #[test]
    fn generated_documents_parse_back() {
        let diff = Digest::of(b"tar");
        let config = rootfs_config(&diff);
        assert_eq!(
            config,
            rootfs_config(&diff),
            "the config depends on the layer alone"
        );
        let p = parse_config("c", &config).unwrap();
        assert_eq!(p.diff_ids, vec![diff.clone()]);
        assert_eq!(p.runtime.cmd, Some(vec!["/bin/sh".to_owned()]));
        assert_eq!(p.runtime.env, vec![DEFAULT_PATH.to_owned()]);
        let c = BlobRef {
            media_type: media::OCI_CONFIG,
            digest: Digest::of(&config),
            size: config.len() as u64,
        };
        let l = BlobRef {
            media_type: media::OCI_LAYER_GZIP,
            digest: Digest::of(b"gz"),
            size: 2,
        };
        let m = oci_manifest(&c, &[l]);
        let mt = media_type_of(None, &m).unwrap();
        assert_eq!(mt, media::OCI_MANIFEST);
        let Document::Manifest(doc) = parse_document("m", &mt, &m).unwrap() else {
            panic!("not a manifest")
        };
        let parts = manifest_parts("m", &doc).unwrap();
        assert_eq!(parts.config, c.digest);
        assert_eq!(parts.layers[0].compression, Compression::Gzip);
    }

    #[test]
    fn media_type_comes_from_transport_or_document() {
        let idx = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            media_type_of(Some("application/json"), idx).unwrap(),
            media::OCI_INDEX
        );
        let dm = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#;
        assert_eq!(media_type_of(None, dm).unwrap(), media::DOCKER_MANIFEST);
        assert_eq!(
            media_type_of(Some(media::OCI_INDEX), dm).unwrap(),
            media::OCI_INDEX
        );
        let e = parse_document(
            "m",
            "application/vnd.docker.distribution.manifest.v1+json",
            dm,
        )
        .unwrap_err();
        assert!(matches!(e, ImageError::UnsupportedMediaType { .. }), "{e}");
    }
}
