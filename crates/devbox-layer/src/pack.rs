//! Packing a directory, or an overlayfs upperdir, into an uncompressed layer
//! tar: all of it ([`pack_dir`]), or only what changed since its index was
//! taken at the previous commit ([`pack_changes`]).

mod error;
mod packer;

use std::io::{self, Read, Write};
use std::path::Path;

pub use error::PackError;

use crate::changes::{self, Walk};
use crate::ignore::IgnoreSet;
use crate::watermark::Watermark;
use packer::Packer;

/// How to read the source directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackOptions {
    /// The source is an overlayfs upperdir: translate its whiteouts and opaque
    /// directories into OCI whiteout entries.
    pub overlay: bool,
}

/// What a pack wrote, and what it left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Tar entries written, whiteouts and opaque markers included.
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Whiteout and opaque marker entries written.
    pub whiteouts: u64,
    /// Paths that are new, changed or deleted: what the diff listing lists.
    /// Zero means the layer holds nothing, and a commit can be skipped.
    /// (The rest of `entries` are unchanged parent directories.)
    pub changes: u64,
    /// Sockets and device nodes left out: neither can be carried by a layer
    /// (unpack refuses device nodes, and a devbox's /dev comes from the runtime).
    pub skipped: u64,
    /// Entries left out by the ignore rules, everything below an ignored
    /// directory included.
    pub ignored: u64,
    /// Bytes of the regular files among them.
    pub ignored_bytes: u64,
}

/// Writes `src` as an uncompressed tar stream to `out`.
///
/// Names are relative to `src` without a leading `./`, directories end in
/// `/`, and the root itself is not an entry. Entries come sorted by name
/// within each directory, each directory before its content, so the same tree
/// always gives the same bytes. Owners are numeric; modes, whole-second
/// mtimes, xattrs, symlinks, fifos, long names and large files (PAX) are kept;
/// files with several links become tar hard links to the first name seen.
/// Sockets and device nodes are skipped and counted.
///
/// With `opts.overlay`, `src` is an overlayfs upperdir: a character device 0/0
/// becomes `.wh.<name>` (never a tar hard link, although the kernel may link
/// whiteouts to one shared inode), a directory with `trusted.overlay.opaque=y`
/// gets a `<dir>/.wh..wh..opq` entry right after it, and overlay-private xattrs
/// are dropped (they are dropped without `overlay` too, since no layer may
/// carry them).
///
/// The tree may change while it is packed (a live commit): entries that vanish
/// are left out, and a file that shrinks is padded with zeros to the size it
/// had when its header was written.
pub fn pack_dir<W: Write>(src: &Path, out: W, opts: &PackOptions) -> Result<PackStats, PackError> {
    let walk = Walk::<io::Empty, io::Sink> {
        overlay: opts.overlay,
        ignore: &IgnoreSet::empty(),
        previous: None,
        index: None,
    };
    run(src, walk, out, opts.overlay)
}

/// Writes the changes of the overlayfs upperdir `upper` since the commit
/// that wrote `previous` (its index) as an uncompressed layer tar to `tar`,
/// and the upperdir's new index to `index`.
///
/// The layer holds the entries that are new or changed (inode, change time,
/// modification time, size, mode or owner differ from the index), the parent
/// directories they need (with their current metadata, so the layer unpacks
/// anywhere), the upperdir's own whiteouts and opaque directories as
/// [`pack_dir`] translates them, and a whiteout for each entry of the index
/// that is gone (a file created by an earlier commit and deleted since leaves
/// no overlay whiteout, since no lower layer had it). Names, order and
/// metadata are those of [`pack_dir`]; with no previous index the two write
/// the same bytes. Each entry is `lstat`ed once and only changed files are
/// read. A hard link in the layer only ever points at a name in the same
/// layer: the first name of a link group packed now carries the content.
///
/// Paths `ignore` matches are left out, never whited out, and counted; the
/// new index keeps whatever the previous one said about them.
///
/// `watermark` is the filesystem's clock at the start of the commit
/// ([`Watermark::take`]): an entry changed at or after it may have been read
/// half written, so the new index marks it and the next commit packs it again.
///
/// The new index is only valid together with this layer: keep it once the
/// commit that holds the layer is stored, and keep the previous one
/// otherwise. An upperdir that is replaced (after its content became a
/// layer directory) starts again with no index.
///
/// Errors: the previous index is corrupt, of another format version, or of
/// another directory; the watermark is of another filesystem; the upperdir
/// cannot be read or holds what no layer can carry; either output fails.
/// A corrupt index is found at the latest when its end is read, before this
/// returns, so a layer written with one is never reported as complete.
pub fn pack_changes<W: Write, I: Write>(
    upper: &Path,
    previous: Option<&mut dyn Read>,
    ignore: &IgnoreSet,
    watermark: Watermark,
    tar: W,
    index: I,
) -> Result<PackStats, PackError> {
    let walk = Walk {
        overlay: true,
        ignore,
        previous,
        index: Some((index, watermark)),
    };
    run(upper, walk, tar, true)
}

fn run<W: Write, P: Read, I: Write>(
    src: &Path,
    walk: Walk<'_, P, I>,
    out: W,
    overlay: bool,
) -> Result<PackStats, PackError> {
    let mut packer = Packer::new(out, overlay);
    changes::walk(src, walk, &mut packer)?;
    packer
        .out
        .finish()
        .map_err(|source| PackError::Write { source })?;
    Ok(packer.stats)
}

#[cfg(test)]
mod tests;
