//! Errors of unpacking and normalizing layer tars.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot open layer directory {}: {source}", path.display())]
    Destination { path: PathBuf, source: io::Error },
    #[error("layer directory {} is not empty", path.display())]
    DestinationNotEmpty { path: PathBuf },
    #[error("reading the layer tar: {source}")]
    Archive { source: io::Error },
    #[error("refusing tar entry {entry:?}: {reason}")]
    Refused { entry: String, reason: Refusal },
    #[error("unpacking tar entry {entry:?}: cannot {action}: {source}")]
    Io {
        entry: String,
        action: &'static str,
        source: io::Error,
    },
    #[error("writing the normalized layer tar: {source}")]
    Write { source: io::Error },
}

/// Why a tar entry is refused. Every refusal is decided before anything is
/// written for that entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("empty name")]
    EmptyName,
    #[error("name longer than 4096 bytes")]
    NameTooLong,
    #[error("name contains a NUL byte")]
    NulByte,
    #[error("absolute path")]
    AbsolutePath,
    #[error("path leaves the layer directory")]
    ParentComponent,
    #[error("the layer root can only be a directory")]
    RootNotDirectory,
    #[error("invalid whiteout name")]
    InvalidWhiteout,
    #[error("parent {parent:?} is a symlink")]
    SymlinkParent { parent: String },
    #[error("parent {parent:?} is not a directory")]
    NotDirectoryParent { parent: String },
    #[error("symlink has an empty target")]
    EmptySymlinkTarget,
    #[error("hard link target {target:?} is an absolute path")]
    HardLinkAbsolute { target: String },
    #[error("hard link target {target:?} leaves the layer directory")]
    HardLinkEscapes { target: String },
    #[error("hard link target {target:?} goes through symlink {through:?}")]
    HardLinkThroughSymlink { target: String, through: String },
    #[error("hard link target {target:?} does not exist in the layer")]
    HardLinkTargetMissing { target: String },
    #[error("hard link target {target:?} is a directory")]
    HardLinkToDirectory { target: String },
    #[error("overlay-private xattr {name:?} is not allowed in a layer")]
    OverlayXattr { name: String },
    #[error("invalid xattr name {name:?}")]
    InvalidXattrName { name: String },
    #[error("{kind} device nodes are only allowed under dev/, where they are dropped")]
    DeviceNode { kind: &'static str },
    #[error("unsupported entry type {0:?}")]
    UnsupportedType(char),
    #[error("pax sparse files are not supported")]
    PaxSparse,
    #[error("invalid {field} in the entry header")]
    InvalidHeader { field: &'static str },
}
