//! Where blobs are kept: the local filesystem under the data directory (the
//! default), or a bucket of any S3-compatible service. Manifests and tags
//! stay in the metadata database either way, and scratch files stay local.
//!
//! S3 credentials come from the environment as AWS tools read them
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_DEFAULT_REGION`); the bucket must exist. Blobs are written with
//! multipart uploads that the service publishes only on completion, so a
//! crash leaves at most an unfinished upload, which the service never shows
//! (a bucket lifecycle rule can expire them).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use devbox_store::Store;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

use crate::{BlobStore, ImageError, ImageStore};

/// Where the blob store keeps blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BlobLocation {
    /// `<dir>/blobs` on the local filesystem.
    #[default]
    Local,
    /// A bucket (and optionally a prefix in it) of an S3-compatible service.
    S3(S3Location),
}

/// A bucket of an S3-compatible service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Objects are kept under this prefix of the bucket.
    pub prefix: Option<String>,
    /// The service's URL (`http://` allows plain HTTP); AWS when `None`.
    pub endpoint: Option<String>,
    /// The region; from the environment, else `us-east-1`, when `None`.
    pub region: Option<String>,
}

/// Why a blob location was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid blob store {input:?}: {reason}")]
pub struct BlobLocationError {
    input: String,
    reason: &'static str,
}

impl FromStr for BlobLocation {
    type Err = BlobLocationError;

    /// `local`, or `s3://<bucket>[/<prefix>]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| BlobLocationError {
            input: s.to_owned(),
            reason,
        };
        if s == "local" {
            return Ok(BlobLocation::Local);
        }
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| err("expected `local` or s3://<bucket>[/<prefix>]"))?;
        let (bucket, prefix) = match rest.split_once('/') {
            Some((b, p)) => (b, Some(p.trim_matches('/')).filter(|p| !p.is_empty())),
            None => (rest, None),
        };
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(err(
                "a bucket name is 3 to 63 lowercase letters, digits, '-' and '.'",
            ));
        }
        Ok(BlobLocation::S3(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.map(str::to_owned),
            endpoint: None,
            region: None,
        }))
    }
}

impl std::fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobLocation::Local => f.write_str("local"),
            BlobLocation::S3(s) => {
                write!(f, "s3://{}", s.bucket)?;
                if let Some(p) = &s.prefix {
                    write!(f, "/{p}")?;
                }
                Ok(())
            }
        }
    }
}

/// The object store of an S3 location.
fn s3_store(s: &S3Location) -> Result<Arc<dyn ObjectStore>, ImageError> {
    let what = BlobLocation::S3(s.clone()).to_string();
    let mut b = AmazonS3Builder::from_env().with_bucket_name(&s.bucket);
    if let Some(e) = &s.endpoint {
        b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
    }
    let region = s
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".to_owned());
    let store = b
        .with_region(region)
        .build()
        .map_err(|e| ImageError::storage(&what, e))?;
    Ok(match &s.prefix {
        Some(p) => Arc::new(object_store::prefix::PrefixStore::new(store, p.as_str())),
        None => Arc::new(store),
    })
}

impl ImageStore {
    /// A store keeping blobs at `location` and scratch files under
    /// `<dir>/tmp` (removed first: they are left over from a crash). For
    /// object storage the bucket is reached once, so that a wrong endpoint,
    /// bucket or credentials fail here rather than at the first push.
    pub async fn open(
        dir: &Path,
        store: Arc<dyn Store>,
        location: &BlobLocation,
    ) -> Result<Self, ImageError> {
        let s3 = match location {
            BlobLocation::Local => return Self::open_local(dir, store),
            BlobLocation::S3(s) => s,
        };
        let objects = s3_store(s3)?;
        let probe = object_store::path::Path::from("sha256/.devbox-probe");
        match objects.head(&probe).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(ImageError::storage(location, e)),
        }
        let scratch = dir.join("tmp");
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch).map_err(|e| ImageError::io(&scratch, e))?;
        }
        std::fs::create_dir_all(&scratch).map_err(|e| ImageError::io(&scratch, e))?;
        tracing::info!(%location, endpoint = s3.endpoint.as_deref().unwrap_or("AWS"), "blobs on object storage");
        Ok(Self::new(BlobStore::new(objects, None), store, scratch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_locations_parse() {
        assert_eq!("local".parse(), Ok(BlobLocation::Local));
        let BlobLocation::S3(s) = "s3://devbox-blobs/prod/".parse().unwrap() else {
            panic!("not s3")
        };
        assert_eq!(s.bucket, "devbox-blobs");
        assert_eq!(s.prefix.as_deref(), Some("prod"));
        assert_eq!(
            "s3://devbox-blobs/prod"
                .parse::<BlobLocation>()
                .unwrap()
                .to_string(),
            "s3://devbox-blobs/prod"
        );
        for bad in ["", "/var/blobs", "s3://", "s3://UPPER", "gs://bucket"] {
            let e = bad.parse::<BlobLocation>().unwrap_err();
            assert!(e.to_string().contains("invalid blob store"), "{e}");
        }
    }
}
