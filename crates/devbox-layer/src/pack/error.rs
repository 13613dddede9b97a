//! Errors of packing a directory into a layer tar.

use std::io;
use std::path::PathBuf;

use crate::index::IndexError;

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot open directory to pack {}: {source}", path.display())]
    Source { path: PathBuf, source: io::Error },
    #[error("packing {entry:?}: cannot {action}: {source}")]
    Io {
        entry: String,
        action: &'static str,
        source: io::Error,
    },
    #[error(
        "packing {entry:?}: overlayfs xattr {xattr} means part of it lives in a lower layer; \
         the upperdir must be mounted with metacopy=off and redirect_dir=off"
    )]
    NotSelfContained { entry: String, xattr: String },
    #[error("packing {entry:?}: the path is longer than 4096 bytes, which no layer may hold")]
    NameTooLong { entry: String },
    #[error("writing the layer tar: {source}")]
    Write { source: io::Error },
    #[error("upperdir index of {}: {source}", path.display())]
    Index { path: PathBuf, source: IndexError },
    #[error(
        "the upperdir index was taken of another directory than {} (inode {expected}, this one \
         is {found}): an upperdir that was replaced starts with no index",
        path.display()
    )]
    IndexOfAnotherDirectory {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error(
        "the commit watermark was read on another filesystem than {}: take it in a directory \
         beside the upperdir",
        path.display()
    )]
    WatermarkElsewhere { path: PathBuf },
}
