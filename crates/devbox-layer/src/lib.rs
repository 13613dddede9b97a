//! OCI image layers as tar streams: unpacking a layer into a directory that
//! overlayfs can use as a lower layer, packing a directory (or an overlayfs
//! upperdir) into a layer, whiteouts in both directions, digests and compression.
//!
//! It also holds the library half of a commit: [`pack_changes`] packs only
//! what changed in an upperdir since its [`index`] was taken, leaving out
//! what the [`ignore`] rules say, judged against a [`Watermark`];
//! [`diff_changes`] lists the same decisions without packing; a
//! [`LayerWriter`] hashes and compresses the tar on all cores as it is
//! written; [`squash()`] merges layers; [`testing`] compares trees.
//!
//! The crate knows nothing of registries, databases or mounts: it turns byte
//! streams into directory trees and back, and it treats every tar it reads as
//! hostile: nothing an archive says can make it write outside its destination.

pub mod compression;
pub mod diff;
pub mod digest;
pub mod ignore;
pub mod index;
pub mod normalize;
pub mod pack;
pub mod source;
pub mod squash;
pub mod testing;
pub mod unpack;
pub mod watermark;
pub mod whiteout;

mod changes;
mod entry;
mod stat;
mod tar_writer;
mod xattr;

pub use compression::{
    Compression, CompressionError, LayerDigests, LayerWriter, decompress, default_threads,
    write_layer, write_layer_threads,
};
pub use diff::{Change, DiffItem, DiffStats, FileKind, diff_changes};
pub use digest::{Digest, DigestError, HashingReader, HashingWriter, chain_ids};
pub use ignore::{IgnoreError, IgnoreSet};
pub use index::{IndexEntry, IndexError, IndexHeader, IndexReader, IndexWriter};
pub use normalize::{NormalizeStats, normalize};
pub use pack::{PackError, PackOptions, PackStats, pack_changes, pack_dir};
pub use source::{LayerDescriptor, LayerSource, LayerSourceError};
pub use squash::{SquashError, SquashStats, squash};
pub use unpack::{Refusal, UnpackError, UnpackStats, unpack, validate};
pub use watermark::{Watermark, WatermarkError};

#[cfg(test)]
mod test_tar;
#[cfg(test)]
mod test_tree;
