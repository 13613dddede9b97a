//! Unpacking an OCI layer tar into a layer directory in the form an overlayfs
//! lower directory needs, refusing anything that could write outside it.

mod create;
mod error;
pub(crate) mod tree;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;

pub use error::{Refusal, UnpackError};
pub use validate::validate;

use crate::entry::{self, Kind, Mtime};
use tree::Tree;

/// What an unpack did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries read (extension headers such as PAX records not counted).
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Whiteouts and opaque markers applied.
    pub whiteouts: u64,
    /// Device nodes under `dev/` that were dropped.
    pub dropped_devices: u64,
}

/// Unpacks the uncompressed OCI layer tar `tar` into `dest`, an existing,
/// empty directory, in the form an overlayfs lower directory needs:
///
/// - `.wh.<name>` becomes a character device 0/0 named `<name>`, and
///   `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory. Whiteouts
///   only hide lower layers: when this layer also has `<name>`, a file is kept
///   as it is and a directory is made opaque, whatever the order of the entries.
/// - Owners (numeric), modes including setuid, setgid and sticky, mtimes (of
///   directories after their content), xattrs, hard links, symlinks, fifos and
///   long names (PAX and GNU) are kept. A later entry for the same path replaces
///   the earlier one, as tar does; a directory over a directory merges.
/// - Hostile archives are refused with an error naming the entry, and nothing is
///   ever written outside `dest`: absolute names, `..`, parents that are symlinks
///   or not directories, hard links to absolute or escaping paths, through
///   symlinks or to entries not (yet) in the layer, overlay-private xattrs, and
///   device nodes (those under `dev/` are dropped and counted instead, because a
///   devbox's /dev comes from the runtime).
///
/// On error `dest` is left partly filled; the caller removes it.
pub fn unpack<R: Read>(tar: R, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let destination = |source| UnpackError::Destination {
        path: dest.to_path_buf(),
        source,
    };
    let mut tree = Tree::open(dest).map_err(destination)?;
    if !tree::is_empty_dir(tree.root()).map_err(destination)? {
        return Err(UnpackError::DestinationNotEmpty {
            path: dest.to_path_buf(),
        });
    }

    let mut stats = UnpackStats::default();
    // Directory mtimes are set last: creating their content would change them again.
    let mut dir_mtimes: BTreeMap<Vec<Vec<u8>>, Mtime> = BTreeMap::new();
    // Paths this layer whites out: a directory made at one later, even after
    // a file in between replaced the whiteout device, still hides the lower
    // layers' directory, as the whiteout says.
    let mut whited: HashSet<Vec<Vec<u8>>> = HashSet::new();
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|source| UnpackError::Archive { source })?;
    for raw in entries {
        let mut raw = raw.map_err(|source| UnpackError::Archive { source })?;
        let parsed = entry::parse(&mut raw)?;
        stats.entries += 1;
        if matches!(
            parsed.kind,
            Kind::File { .. } | Kind::Symlink { .. } | Kind::HardLink { .. } | Kind::Fifo
        ) {
            // A non-directory clears what was below its name, whiteouts included.
            let path = parsed.path.components();
            whited.retain(|w| !(w.len() > path.len() && w.starts_with(path)));
        }
        match &parsed.kind {
            Kind::File { size } => {
                stats.bytes += create::file(&mut tree, &parsed, &mut raw, *size)?
            }
            Kind::Dir => {
                create::dir(&mut tree, &parsed)?;
                if whited.contains(parsed.path.components()) {
                    create::make_opaque(&mut tree, &parsed)?;
                }
                dir_mtimes.insert(parsed.path.components().to_vec(), parsed.meta.mtime);
            }
            Kind::Symlink { target } => create::symlink(&mut tree, &parsed, target)?,
            Kind::HardLink { target } => create::hard_link(&mut tree, &parsed, target)?,
            Kind::Fifo => create::fifo(&mut tree, &parsed)?,
            Kind::Whiteout { hidden } => {
                create::whiteout(&mut tree, &parsed, hidden)?;
                let mut path = parsed.path.parent().to_vec();
                path.push(hidden.clone());
                whited.insert(path);
                stats.whiteouts += 1;
            }
            Kind::Opaque => {
                create::opaque(&mut tree, &parsed)?;
                stats.whiteouts += 1;
            }
            Kind::DroppedDevice => stats.dropped_devices += 1,
            Kind::Ignored => {}
        }
    }

    // Setting a directory's times leaves its parent's alone, so any order works.
    for (components, mtime) in &dir_mtimes {
        create::set_dir_mtime(&mut tree, components, *mtime)?;
    }
    Ok(stats)
}
