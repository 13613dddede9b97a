//! The image store as the runtime's [`LayerSource`]: a node that lacks a
//! layer of a devbox's image fetches the blob from here.

use std::io::Read;

use async_trait::async_trait;
use devbox_layer::compression::Compression;
use devbox_layer::{LayerDescriptor, LayerSource, LayerSourceError};

use crate::media;
use crate::{ImageStore, ResolvedLayer};

impl ResolvedLayer {
    /// The layer as a runtime's start spec names it.
    pub fn descriptor(&self) -> LayerDescriptor {
        let media_type = match self.compression {
            Compression::None => media::OCI_LAYER,
            Compression::Gzip => media::OCI_LAYER_GZIP,
            Compression::Zstd => media::OCI_LAYER_ZSTD,
        };
        LayerDescriptor {
            digest: self.digest.clone(),
            diff_id: self.diff_id.clone(),
            size: self.size,
            media_type: media_type.to_owned(),
            compression: self.compression,
        }
    }
}

#[async_trait]
impl LayerSource for ImageStore {
    async fn open_layer(
        &self,
        layer: &LayerDescriptor,
    ) -> Result<Box<dyn Read + Send>, LayerSourceError> {
        self.open_blob(&layer.digest)
            .await
            .map_err(|e| LayerSourceError {
                digest: layer.digest.clone(),
                source: Box::new(e),
            })
    }
}
