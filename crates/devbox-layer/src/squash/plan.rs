//! The first pass of a squash: every layer's entry headers, and which of them
//! survive once the layers are stacked.
//!
//! Survival is decided newest entry first (the last layer, and within a
//! layer its last entry). A path's entry survives unless a later entry
//! defines the same path, or one of its ancestors is hidden: by a later
//! non-directory in the same layer (unpack clears what was below it), by a
//! newer layer in which it ends up a non-directory, or by a whiteout or
//! opaque marker of a newer layer. Whiteouts and opaque markers only act on
//! older layers, as in unpack, whatever the order within a layer; and only
//! a path's final state in a layer acts on older layers, since a layer is
//! unpacked on its own and stacked as a whole.
//! Whiteouts and markers survive too (once per path), since the merged layer
//! must hide the same things in the base it is applied on; for the same
//! reason a layer's non-directory that a newer layer's directory replaces
//! becomes a whiteout (it cut the base's directory off, and the newer
//! directory alone would merge with it again).

use std::collections::{HashMap, HashSet};

use crate::entry::{EntryPath, Kind, ParsedEntry};
use crate::unpack::{Refusal, UnpackError};

pub(super) const ROOT: u32 = 0;
pub(super) const NONE: u32 = u32::MAX;

/// What a record stands for in its layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecKind {
    Dir,
    /// A parent directory the layer does not list, which unpack would make.
    ImplicitDir,
    File,
    Symlink,
    Fifo,
    HardLink,
    /// `.wh.<name>`: the record's path is the hidden one.
    Whiteout,
    /// `.wh..wh..opq`: the record's path is the opaque directory.
    Opaque,
}

impl RecKind {
    fn is_nondir(self) -> bool {
        matches!(
            self,
            RecKind::File | RecKind::Symlink | RecKind::Fifo | RecKind::HardLink
        )
    }

    fn defines(self) -> bool {
        !matches!(self, RecKind::Whiteout | RecKind::Opaque)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Record {
    pub path: u32,
    pub kind: RecKind,
    /// Content bytes of a file.
    pub size: u64,
    /// For a hard link: the index (in its layer) of the record holding the content.
    pub content: u32,
    pub survives: bool,
    /// A non-directory replaced by a newer layer's directory: written as a
    /// whiteout of its path, so the base's directory stays hidden.
    pub hides_base: bool,
    /// For content whose own record does not survive: the surviving hard
    /// link that carries it instead (its first in the layer).
    pub carried_by: u32,
}

/// A path seen in any layer.
#[derive(Debug, Clone, Copy)]
struct PathInfo {
    parent: u32,
    flags: u8,
}

/// A newer layer defines the path.
const DEFINED: u8 = 1;
/// A newer layer ends with it a non-directory: everything below is hidden.
const NONDIR: u8 = 2;
/// A newer layer whites it out: it and everything below is hidden.
const WHITED: u8 = 4;
/// A newer layer makes it opaque: everything below is hidden.
const OPAQUE: u8 = 8;
/// A whiteout of it is already kept.
const WHITEOUT_KEPT: u8 = 16;
/// An opaque marker of it is already kept.
const OPAQUE_KEPT: u8 = 32;
/// Its newest definition is a directory.
const TOP_DIR: u8 = 64;

/// Every layer's records, and the paths they name.
#[derive(Debug, Default)]
pub(super) struct Plan {
    ids: HashMap<Vec<u8>, u32>,
    names: Vec<Vec<u8>>,
    paths: Vec<PathInfo>,
    pub layers: Vec<Vec<Record>>,
}

/// Collects one layer's records, in tar order.
pub(super) struct LayerScan<'p> {
    plan: &'p mut Plan,
    records: Vec<Record>,
    /// Directories this layer has made so far, listed or implicit.
    dirs: HashSet<u32>,
    /// The latest record defining each path, for hard link targets.
    latest: HashMap<u32, u32>,
}

impl Plan {
    pub(super) fn new() -> Plan {
        let mut plan = Plan::default();
        plan.ids.insert(Vec::new(), ROOT);
        plan.names.push(Vec::new());
        plan.paths.push(PathInfo {
            parent: NONE,
            flags: 0,
        });
        plan
    }

    pub(super) fn scan(&mut self) -> LayerScan<'_> {
        LayerScan {
            plan: self,
            records: Vec::new(),
            dirs: HashSet::from([ROOT]),
            latest: HashMap::new(),
        }
    }

    /// The id of a path given by its components, interning it and its parents.
    fn intern(&mut self, components: &[Vec<u8>]) -> u32 {
        let key = components.join(&b'/');
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let parent = match components.split_last() {
            Some((_, parent)) => self.intern(parent),
            None => ROOT,
        };
        let id = u32::try_from(self.paths.len()).expect("fewer than 2^32 paths");
        self.ids.insert(key.clone(), id);
        self.names.push(key);
        self.paths.push(PathInfo { parent, flags: 0 });
        id
    }

    /// The id of an already interned path.
    pub(super) fn id_of(&self, components: &[Vec<u8>]) -> Option<u32> {
        self.ids.get(&components.join(&b'/')).copied()
    }

    /// The joined name of a path.
    pub(super) fn name(&self, id: u32) -> &[u8] {
        &self.names[id as usize]
    }

    pub(super) fn parent(&self, id: u32) -> u32 {
        self.paths[id as usize].parent
    }

    /// Whether `test(id, flags)` holds for a proper ancestor of `id`.
    fn any_ancestor(&self, id: u32, test: impl Fn(u32, u8) -> bool) -> bool {
        let mut at = self.paths[id as usize].parent;
        while at != NONE {
            if test(at, self.paths[at as usize].flags) {
                return true;
            }
            at = self.paths[at as usize].parent;
        }
        false
    }

    fn flags(&self, id: u32) -> u8 {
        self.paths[id as usize].flags
    }

    fn set(&mut self, id: u32, flag: u8) {
        self.paths[id as usize].flags |= flag;
    }

    /// Decides which records survive, and which hard links carry content
    /// whose own record does not.
    ///
    /// Within a layer, entries act by position: a later entry replaces an
    /// earlier one of the same path, and a later non-directory clears what
    /// was below it. On older layers, a layer acts through its final state
    /// only (what unpacking it alone leaves), so those effects are staged and
    /// applied once the layer is done.
    pub(super) fn decide(&mut self) {
        for k in (0..self.layers.len()).rev() {
            let mut records = std::mem::take(&mut self.layers[k]);
            let mut staged = Vec::new();
            // Paths a later entry of this layer defines, or makes non-directories.
            let mut redefined = HashSet::new();
            let mut nondir_here = HashSet::new();
            for r in records.iter_mut().rev() {
                let own = self.flags(r.path);
                let cleared_here = self.any_ancestor(r.path, |id, _| nondir_here.contains(&id));
                let hidden = self.any_ancestor(r.path, |_, f| f & (NONDIR | WHITED | OPAQUE) != 0);
                match r.kind {
                    RecKind::Whiteout => {
                        let last = !cleared_here;
                        r.survives = last && !hidden && own & (WHITED | WHITEOUT_KEPT) == 0;
                        if r.survives {
                            self.set(r.path, WHITEOUT_KEPT);
                        }
                        if last {
                            staged.push((r.path, WHITED));
                        }
                    }
                    RecKind::Opaque => {
                        let last = !cleared_here && !nondir_here.contains(&r.path);
                        r.survives =
                            last && !hidden && own & (NONDIR | WHITED | OPAQUE | OPAQUE_KEPT) == 0;
                        if r.survives {
                            self.set(r.path, OPAQUE_KEPT);
                        }
                        if last {
                            staged.push((r.path, OPAQUE));
                        }
                    }
                    kind => {
                        let last = !cleared_here && !redefined.contains(&r.path);
                        r.survives = last && !hidden && own & (DEFINED | WHITED) == 0;
                        r.hides_base = last
                            && kind.is_nondir()
                            && own & TOP_DIR != 0
                            && !hidden
                            && own & (WHITED | WHITEOUT_KEPT) == 0;
                        if r.hides_base {
                            self.set(r.path, WHITEOUT_KEPT);
                        }
                        if last {
                            staged.push((r.path, DEFINED));
                            if kind.is_nondir() {
                                staged.push((r.path, NONDIR));
                            } else if own & DEFINED == 0 {
                                staged.push((r.path, TOP_DIR));
                            }
                        }
                        redefined.insert(r.path);
                        if kind.is_nondir() {
                            nondir_here.insert(r.path);
                        }
                    }
                }
            }
            for (id, flag) in staged {
                self.set(id, flag);
            }
            // The first surviving link of each content record that does not
            // survive carries the content in its place.
            for i in 0..records.len() {
                let r = &records[i];
                if r.kind == RecKind::HardLink && r.survives {
                    let c = r.content as usize;
                    if !records[c].survives && records[c].carried_by == NONE {
                        records[c].carried_by = i as u32;
                    }
                }
            }
            self.layers[k] = records;
        }
    }
}

impl LayerScan<'_> {
    /// Adds the record of one parsed entry (and of the parent directories
    /// unpack would make for it). Returns whether the entry has a record:
    /// entries that carry nothing for the tree have none.
    pub(super) fn add(&mut self, parsed: &ParsedEntry) -> Result<bool, UnpackError> {
        let (components, kind, size, content) = match &parsed.kind {
            Kind::Ignored | Kind::DroppedDevice => return Ok(false),
            // The layer root's metadata is the runtime's business, as with pack_dir.
            Kind::Dir if parsed.path.is_root() => return Ok(false),
            Kind::Dir => (parsed.path.components().to_vec(), RecKind::Dir, 0, NONE),
            Kind::File { size } => (
                parsed.path.components().to_vec(),
                RecKind::File,
                *size,
                NONE,
            ),
            Kind::Symlink { .. } => (parsed.path.components().to_vec(), RecKind::Symlink, 0, NONE),
            Kind::Fifo => (parsed.path.components().to_vec(), RecKind::Fifo, 0, NONE),
            Kind::HardLink { target } if target == &parsed.path => return Ok(false),
            Kind::HardLink { target } => {
                let content = self.link_content(parsed, target)?;
                (
                    parsed.path.components().to_vec(),
                    RecKind::HardLink,
                    0,
                    content,
                )
            }
            Kind::Whiteout { hidden } => {
                let mut c = parsed.path.parent().to_vec();
                c.push(hidden.clone());
                (c, RecKind::Whiteout, 0, NONE)
            }
            Kind::Opaque => (parsed.path.parent().to_vec(), RecKind::Opaque, 0, NONE),
        };
        // The directory the entry is written in must exist in this layer.
        let location = match kind {
            RecKind::Opaque => &components[..],
            _ => &components[..components.len().saturating_sub(1)],
        };
        for depth in 1..=location.len() {
            let id = self.plan.intern(&location[..depth]);
            if self.dirs.insert(id) {
                self.push(id, RecKind::ImplicitDir, 0, NONE);
            }
        }
        let id = self.plan.intern(&components);
        match kind {
            RecKind::Dir => {
                self.dirs.insert(id);
            }
            k if k.is_nondir() => {
                self.dirs.remove(&id);
            }
            _ => {}
        }
        let index = self.push(id, kind, size, content);
        if kind.defines() {
            self.latest.insert(id, index);
        }
        Ok(true)
    }

    fn push(&mut self, path: u32, kind: RecKind, size: u64, content: u32) -> u32 {
        let index = u32::try_from(self.records.len()).expect("fewer than 2^32 entries");
        self.records.push(Record {
            path,
            kind,
            size,
            content,
            survives: false,
            hides_base: false,
            carried_by: NONE,
        });
        index
    }

    /// The record holding the content a hard link points at.
    fn link_content(&self, parsed: &ParsedEntry, target: &EntryPath) -> Result<u32, UnpackError> {
        let shown = || crate::entry::display(target.components());
        let record = self
            .plan
            .id_of(target.components())
            .and_then(|id| self.latest.get(&id))
            .map(|&i| (i, &self.records[i as usize]))
            .ok_or_else(|| parsed.refuse(Refusal::HardLinkTargetMissing { target: shown() }))?;
        match record {
            (_, r) if r.kind == RecKind::HardLink => Ok(r.content),
            (_, r) if !r.kind.is_nondir() => {
                Err(parsed.refuse(Refusal::HardLinkToDirectory { target: shown() }))
            }
            (i, _) => Ok(i),
        }
    }

    /// Ends the layer: its records join the plan.
    pub(super) fn finish(self) {
        self.plan.layers.push(self.records);
    }
}
