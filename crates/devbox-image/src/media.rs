//! Media types of manifests, indexes, configs and layers (OCI and Docker
//! schema 2), and what each means to this store.

use devbox_layer::compression::Compression;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The `Accept` header for manifest requests: every manifest and index type
/// this store understands.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// What a manifest-like document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// An image manifest (OCI or Docker schema 2).
    Manifest,
    /// An image index or Docker manifest list.
    Index,
}

/// Classifies a manifest media type; `None` for types this store cannot use
/// (Docker schema 1, artifacts, anything else).
pub fn document_kind(media_type: &str) -> Option<DocumentKind> {
    match essence(media_type) {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(DocumentKind::Manifest),
        OCI_INDEX | DOCKER_LIST => Some(DocumentKind::Index),
        _ => None,
    }
}

/// The compression of a layer media type; `None` for types that are not
/// image layers this store can unpack (foreign and non-distributable layers
/// included, since their content is not served by registries).
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match essence(media_type) {
        OCI_LAYER | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
        OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => Some(Compression::Gzip),
        OCI_LAYER_ZSTD | "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
            Some(Compression::Zstd)
        }
        _ => None,
    }
}

/// Whether a config media type is an image config (OCI or Docker).
pub fn is_image_config(media_type: &str) -> bool {
    matches!(essence(media_type), OCI_CONFIG | DOCKER_CONFIG)
}

/// A media type without parameters (`; charset=...`) and surrounding space.
pub fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_classify() {
        assert_eq!(
            document_kind("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
            Some(DocumentKind::Manifest)
        );
        assert_eq!(document_kind(OCI_INDEX), Some(DocumentKind::Index));
        assert_eq!(
            document_kind("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            None
        );
        assert_eq!(
            layer_compression(DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(layer_compression(OCI_LAYER_ZSTD), Some(Compression::Zstd));
        assert_eq!(layer_compression(OCI_LAYER), Some(Compression::None));
        assert_eq!(
            layer_compression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            None
        );
        assert!(is_image_config(DOCKER_CONFIG));
        assert!(!is_image_config("application/vnd.cncf.helm.config.v1+json"));
    }
}
