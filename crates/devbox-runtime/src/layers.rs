//! The local layer store: one directory per unpacked layer, named by the
//! layer's diffID (the sha256 of its uncompressed tar) and shared by every
//! devbox whose image contains it. The directories are overlay lower layers,
//! so they are never modified once in place.
//!
//! Beside them, `chains/<chain ID>/` holds directories that stand for a
//! whole run of layers at once: a stopped devbox's upper directory, moved
//! in after its run was committed as one or more layers. Its `fs/` shows
//! what those layers applied on the stack named by `parent` make, so a
//! start whose layers end with that run mounts it instead of unpacking
//! them. Chain IDs (see `devbox_layer::chain_ids`) name whole stacks, so a
//! chain directory is only ever used on top of the stack it was made on.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use devbox_layer::compression::{Compression, decompress};
use devbox_layer::digest::{Digest, HashingReader};
use rustix::fs::{CWD, RenameFlags};

use crate::error::RuntimeError;

/// Prefix of directories being unpacked or removed; never a valid diffID.
const TMP_PREFIX: &str = ".tmp-";

/// `<root>/layers/sha256/` and `<root>/layers/chains/`.
#[derive(Debug, Clone)]
pub struct LayerStore {
    dir: PathBuf,
    chains: PathBuf,
}

/// How a stack of layers is shown: its directories, topmost first, and the
/// layers among them the store must hold as plain layer directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub dirs: Vec<PathBuf>,
    /// Indexes (into the stack) of the layers used as plain directories.
    pub plain: Vec<usize>,
}

impl LayerStore {
    pub(crate) fn new(dir: PathBuf) -> Self {
        let chains = dir
            .parent()
            .map(|p| p.join("chains"))
            .unwrap_or_else(|| dir.join("chains"));
        Self { dir, chains }
    }

    fn chain_path(&self, chain: &Digest) -> PathBuf {
        self.chains.join(chain.hex())
    }

    /// The directory standing for the stack `chain`, and the chain it sits
    /// on, when the store has one.
    pub fn chain(&self, chain: &Digest) -> Option<(PathBuf, Option<Digest>)> {
        let dir = self.chain_path(chain);
        let parent = fs::read_to_string(dir.join("parent")).ok()?;
        let fs_dir = dir.join("fs");
        if !fs_dir.is_dir() {
            return None;
        }
        let parent = match parent.trim() {
            "" => None,
            p => Some(p.parse().ok()?),
        };
        Some((fs_dir, parent))
    }

    /// The directories that show `diff_ids` (bottom first) applied in
    /// order, topmost first: a chain directory wherever one stands for a
    /// run of the stack, plain layer directories elsewhere.
    pub fn resolve(&self, diff_ids: &[Digest]) -> Resolved {
        let chains = devbox_layer::chain_ids(diff_ids);
        let mut dirs = Vec::new();
        let mut plain = Vec::new();
        let mut i = diff_ids.len();
        while i > 0 {
            let top = i - 1;
            if let Some((fs_dir, parent)) = self.chain(&chains[top]) {
                let below = match &parent {
                    None => Some(0),
                    Some(p) => chains[..top].iter().position(|c| c == p).map(|j| j + 1),
                };
                if let Some(below) = below {
                    dirs.push(fs_dir);
                    i = below;
                    continue;
                }
            }
            dirs.push(self.path(&diff_ids[top]));
            plain.push(top);
            i = top;
        }
        plain.reverse();
        Resolved { dirs, plain }
    }

    /// Moves `src` (a stopped devbox's upper directory) into the store as
    /// the directory of stack `chain`, sitting on stack `parent`. When the
    /// store has that chain already, `src` is deleted instead.
    pub fn adopt_chain(
        &self,
        chain: &Digest,
        parent: Option<&Digest>,
        src: &Path,
    ) -> Result<PathBuf, RuntimeError> {
        if let Some((dir, _)) = self.chain(chain) {
            let doomed = self.tmp_dir(chain.hex());
            fs::rename(src, &doomed).map_err(RuntimeError::io("rename", src))?;
            remove_tree(&doomed);
            return Ok(dir);
        }
        fs::create_dir_all(&self.chains).map_err(RuntimeError::io("create", &self.chains))?;
        // Assembled beside, then renamed into place: a chain directory under
        // its final name is always complete.
        let tmp = self.chains.join(format!(
            "{TMP_PREFIX}{}-{}",
            chain.hex(),
            std::process::id()
        ));
        remove_if_exists(&tmp)?;
        fs::create_dir(&tmp).map_err(RuntimeError::io("create", &tmp))?;
        let parent_file = tmp.join("parent");
        fs::write(
            &parent_file,
            parent.map(|p| p.to_string()).unwrap_or_default(),
        )
        .map_err(RuntimeError::io("write", &parent_file))?;
        let fs_dir = tmp.join("fs");
        fs::rename(src, &fs_dir).map_err(RuntimeError::io("rename", src))?;
        let dest = self.chain_path(chain);
        match rustix::fs::renameat_with(CWD, &tmp, CWD, &dest, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(dest.join("fs")),
            Err(e) if e == rustix::io::Errno::EXIST || e == rustix::io::Errno::NOTEMPTY => {
                remove_tree(&tmp);
                Ok(dest.join("fs"))
            }
            Err(e) => Err(RuntimeError::io("rename into the layer store", &tmp)(
                e.into(),
            )),
        }
    }

    /// Every chain directory: its chain ID.
    pub fn list_chains(&self) -> Result<Vec<Digest>, RuntimeError> {
        list_hex_dirs(&self.chains)
    }

    /// Deletes a chain directory. The caller makes sure no devbox mounts
    /// it. Idempotent.
    pub fn remove_chain(&self, chain: &Digest) -> Result<(), RuntimeError> {
        let path = self.chain_path(chain);
        let doomed = self.tmp_dir(chain.hex());
        match fs::rename(&path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(RuntimeError::io("remove", &path)(e)),
        }
        fs::remove_dir_all(&doomed).map_err(RuntimeError::io("remove", &doomed))
    }

    /// The directory of a chain (whether or not it is present).
    pub fn chain_dir(&self, chain: &Digest) -> PathBuf {
        self.chain_path(chain)
    }

    /// The directory of a layer (whether or not it is present).
    pub fn path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join(diff_id.hex())
    }

    /// Whether the layer is unpacked in the store.
    pub fn contains(&self, diff_id: &Digest) -> bool {
        self.path(diff_id).is_dir()
    }

    /// Decompresses and unpacks a layer blob into the store and returns its
    /// directory.
    ///
    /// The layer is unpacked into a temporary sibling directory while the
    /// sha256 of the uncompressed stream is computed; it is renamed into place
    /// only when that digest equals `diff_id`, so the store never holds a
    /// layer that does not match its name. On a mismatch or any other error
    /// nothing is kept. Idempotent, and safe when two callers race to unpack
    /// the same layer: one rename wins, the other's copy is discarded.
    ///
    /// Blocking: call it from `spawn_blocking`.
    pub fn unpack(
        &self,
        diff_id: &Digest,
        compressed: impl Read,
        c: Compression,
    ) -> Result<PathBuf, RuntimeError> {
        let dest = self.path(diff_id);
        if dest.is_dir() {
            return Ok(dest);
        }
        let tmp = self.tmp_dir(diff_id.hex());
        fs::create_dir_all(&self.dir).map_err(RuntimeError::io("create", &self.dir))?;
        fs::create_dir(&tmp).map_err(RuntimeError::io("create", &tmp))?;
        let result = self.unpack_into(diff_id, compressed, c, &tmp);
        if let Err(e) = result {
            remove_tree(&tmp);
            return Err(e);
        }
        match rustix::fs::renameat_with(CWD, &tmp, CWD, &dest, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(dest),
            // Another caller put the same layer in place first.
            Err(e) if e == rustix::io::Errno::EXIST || e == rustix::io::Errno::NOTEMPTY => {
                remove_tree(&tmp);
                Ok(dest)
            }
            Err(e) => {
                remove_tree(&tmp);
                Err(RuntimeError::io("rename into place", &dest)(e.into()))
            }
        }
    }

    fn unpack_into(
        &self,
        diff_id: &Digest,
        compressed: impl Read,
        c: Compression,
        tmp: &Path,
    ) -> Result<(), RuntimeError> {
        let read_err = |source| RuntimeError::LayerRead {
            diff_id: diff_id.clone(),
            source,
        };
        let plain = decompress(compressed, c).map_err(|source| RuntimeError::Decompress {
            diff_id: diff_id.clone(),
            source,
        })?;
        let mut hashing = HashingReader::new(plain);
        devbox_layer::unpack::unpack(&mut hashing, tmp).map_err(|source| RuntimeError::Unpack {
            diff_id: diff_id.clone(),
            source,
        })?;
        // The tar reader stops at the end-of-archive marker; the digest covers
        // the whole stream, including any padding after it.
        io::copy(&mut hashing, &mut io::sink()).map_err(read_err)?;
        let (actual, _size) = hashing.finish();
        if &actual != diff_id {
            return Err(RuntimeError::DiffIdMismatch {
                expected: diff_id.clone(),
                actual,
            });
        }
        // Make the files durable before the rename publishes the layer: after
        // a crash, a layer directory under its final name is complete.
        let dir = fs::File::open(tmp).map_err(RuntimeError::io("open", tmp))?;
        rustix::fs::syncfs(&dir).map_err(|e| RuntimeError::io("sync", tmp)(e.into()))
    }

    /// Moves a finished directory (the upper directory of a stopped devbox,
    /// whose whiteouts are already in overlay form) into the store as the
    /// layer `diff_id`. When the store holds that layer already, `src` is
    /// deleted instead. The caller vouches that `src` is the unpacked form of
    /// the layer.
    pub fn adopt(&self, diff_id: &Digest, src: &Path) -> Result<PathBuf, RuntimeError> {
        let dest = self.path(diff_id);
        fs::create_dir_all(&self.dir).map_err(RuntimeError::io("create", &self.dir))?;
        match rustix::fs::renameat_with(CWD, src, CWD, &dest, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(dest),
            Err(e) if e == rustix::io::Errno::EXIST || e == rustix::io::Errno::NOTEMPTY => {
                let doomed = self.tmp_dir(diff_id.hex());
                fs::rename(src, &doomed).map_err(RuntimeError::io("rename", src))?;
                remove_tree(&doomed);
                Ok(dest)
            }
            Err(e) => Err(RuntimeError::io("rename into the layer store", src)(
                e.into(),
            )),
        }
    }

    /// Deletes a layer directory. The caller makes sure no devbox mounts it.
    /// Idempotent.
    pub fn remove(&self, diff_id: &Digest) -> Result<(), RuntimeError> {
        let path = self.path(diff_id);
        let doomed = self.tmp_dir(diff_id.hex());
        match fs::rename(&path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(RuntimeError::io("remove", &path)(e)),
        }
        fs::remove_dir_all(&doomed).map_err(RuntimeError::io("remove", &doomed))
    }

    /// The diffIDs of every layer in the store.
    pub fn list(&self) -> Result<Vec<Digest>, RuntimeError> {
        list_hex_dirs(&self.dir)
    }

    /// Removes what interrupted unpacks and removals left behind.
    pub(crate) fn clean_leftovers(&self) -> Result<(), RuntimeError> {
        for dir in [&self.dir, &self.chains] {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    let path = entry.path();
                    fs::remove_dir_all(&path).map_err(RuntimeError::io("remove", &path))?;
                }
            }
        }
        Ok(())
    }

    fn tmp_dir(&self, hex: &str) -> PathBuf {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!("{TMP_PREFIX}{hex}-{}-{n}", std::process::id()))
    }
}

/// The digests named by the directories of `dir` (`<hex>` each).
fn list_hex_dirs(dir: &Path) -> Result<Vec<Digest>, RuntimeError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RuntimeError::io("list", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(RuntimeError::io("list", dir))?;
        if let Some(d) = entry
            .file_name()
            .to_str()
            .and_then(|n| format!("sha256:{n}").parse::<Digest>().ok())
        {
            out.push(d);
        }
    }
    out.sort();
    Ok(out)
}

fn remove_if_exists(path: &Path) -> Result<(), RuntimeError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("remove", path)(e)),
    }
}

/// Best-effort removal of a temporary tree; a leftover is cleaned at the next
/// start of the runtime.
fn remove_tree(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove temporary layer directory");
    }
}
