//! Squashing several layers into one, streaming: applied on the same base,
//! the merged layer gives the same tree as the layers in order.
//!
//! A first pass reads every layer's entry headers (their content is skipped)
//! and decides which entries survive the stacking; a second pass writes the
//! survivors, oldest layer first, content streamed from the layer that owns
//! it. Memory is proportional to the number of entries, never to their bytes;
//! each layer is read twice, so the layers come as something re-openable.

mod plan;

use std::io::{self, Read, Write};

use crate::entry::{self, Kind, ParsedEntry};
use crate::tar_writer::{CopyError, EntryHeader, EntryKind, TarWriter};
use crate::unpack::UnpackError;
use crate::whiteout;
use plan::{NONE, Plan, RecKind, Record};

/// What a squash read and wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SquashStats {
    /// Tar entries read over all layers (in the first pass).
    pub entries_in: u64,
    /// Bytes of file content read over all layers (in the first pass).
    pub bytes_in: u64,
    /// Tar entries written, whiteouts and opaque markers included.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Whiteout and opaque marker entries written.
    pub whiteouts: u64,
    /// Entries of the layers that a newer one hides, and their bytes: what
    /// the squash reclaims.
    pub shadowed: u64,
    pub shadowed_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SquashError {
    #[error("cannot open layer {layer} (0 is the oldest) to squash it: {source}")]
    Open { layer: usize, source: io::Error },
    #[error("squashing layer {layer} (0 is the oldest): {source}")]
    Layer { layer: usize, source: UnpackError },
    #[error(
        "layer {layer} (0 is the oldest) read differently the second time: the squash needs \
         each layer to give the same tar whenever it is opened"
    )]
    Changed { layer: usize },
    #[error("writing the squashed layer: {source}")]
    Write { source: io::Error },
}

/// Merges `count` uncompressed layer tars, oldest first, into one, written
/// to `out`. `open(i)` must return a fresh reader over layer `i` each time it
/// is called; every layer is opened twice.
///
/// The merged layer holds each path's newest entry that nothing newer hides
/// (a later entry of the same path, or a whiteout, non-directory or opaque
/// marker of a newer layer above it), plus the whiteouts and opaque markers
/// that still act on the base below the merged layers (each once). A hard
/// link whose target does not survive carries the target's content instead.
/// Entries keep their layers' metadata; names are written in canonical form.
/// Layers are checked as unpack checks them: a hostile entry fails the squash.
pub fn squash<R, F, W>(count: usize, mut open: F, out: W) -> Result<SquashStats, SquashError>
where
    R: Read,
    F: FnMut(usize) -> io::Result<R>,
    W: Write,
{
    let mut stats = SquashStats::default();
    let mut plan = Plan::new();
    for layer in 0..count {
        let reader = open(layer).map_err(|source| SquashError::Open { layer, source })?;
        let layer_err = |source| SquashError::Layer { layer, source };
        let mut archive = tar::Archive::new(reader);
        let entries = archive
            .entries()
            .map_err(|source| layer_err(UnpackError::Archive { source }))?;
        let mut scan = plan.scan();
        for raw in entries {
            let mut raw = raw.map_err(|source| layer_err(UnpackError::Archive { source }))?;
            let parsed = entry::parse(&mut raw).map_err(layer_err)?;
            stats.entries_in += 1;
            if let Kind::File { size } = parsed.kind {
                stats.bytes_in += size;
            }
            scan.add(&parsed).map_err(layer_err)?;
        }
        scan.finish();
    }
    plan.decide();

    let mut writer = Writer {
        out: TarWriter::new(out),
        stats,
    };
    for layer in 0..count {
        let reader = open(layer).map_err(|source| SquashError::Open { layer, source })?;
        writer.layer(&plan, layer, reader)?;
    }
    writer
        .out
        .finish()
        .map_err(|source| SquashError::Write { source })?;
    Ok(writer.stats)
}

struct Writer<W: Write> {
    out: TarWriter<W>,
    stats: SquashStats,
}

impl<W: Write> Writer<W> {
    /// The second pass over one layer: its records and entries in step.
    fn layer<R: Read>(&mut self, plan: &Plan, layer: usize, reader: R) -> Result<(), SquashError> {
        let records = &plan.layers[layer];
        let layer_err = |source| SquashError::Layer { layer, source };
        let changed = || SquashError::Changed { layer };
        let mut archive = tar::Archive::new(reader);
        let mut entries = archive
            .entries()
            .map_err(|source| layer_err(UnpackError::Archive { source }))?;
        let mut index = 0;
        while index < records.len() {
            let record = &records[index];
            if record.kind == RecKind::ImplicitDir {
                if record.survives {
                    self.implicit_dir(plan, record)?;
                }
                index += 1;
                continue;
            }
            // The next entry with a record is this record's.
            let (mut raw, parsed) = loop {
                let mut raw = entries
                    .next()
                    .ok_or_else(changed)?
                    .map_err(|source| layer_err(UnpackError::Archive { source }))?;
                let parsed = entry::parse(&mut raw).map_err(layer_err)?;
                if has_record(&parsed) {
                    break (raw, parsed);
                }
            };
            if !matches_record(plan, record, &parsed) {
                return Err(changed());
            }
            self.entry(plan, records, index, &parsed, &mut raw)
                .map_err(|e| match e {
                    EntryError::Write(source) => SquashError::Write { source },
                    EntryError::Read(source) => layer_err(UnpackError::Archive { source }),
                    EntryError::Short => changed(),
                })?;
            index += 1;
        }
        Ok(())
    }

    fn implicit_dir(&mut self, plan: &Plan, record: &Record) -> Result<(), SquashError> {
        let mut name = plan.name(record.path).to_vec();
        name.push(b'/');
        let header = EntryHeader {
            name: &name,
            kind: EntryKind::Dir,
            link: b"",
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            xattrs: &[],
        };
        self.header(&header)
            .map_err(|source| SquashError::Write { source })
    }

    /// Writes the entry of record `index` if it survives, or the content it
    /// holds under the name of the hard link that carries it.
    fn entry<R: Read>(
        &mut self,
        plan: &Plan,
        records: &[Record],
        index: usize,
        parsed: &ParsedEntry,
        data: &mut R,
    ) -> Result<(), EntryError> {
        let record = &records[index];
        if record.hides_base {
            self.whiteout_of(plan, record).map_err(EntryError::Write)?;
        }
        let carrier = (record.carried_by != NONE).then(|| &records[record.carried_by as usize]);
        let name_of = |r: &Record| {
            let mut name = plan.name(r.path).to_vec();
            if r.kind == RecKind::Dir {
                name.push(b'/');
            }
            name
        };
        if !record.survives && carrier.is_none() {
            self.stats.shadowed += 1;
            self.stats.shadowed_bytes += record.size;
            return Ok(());
        }
        let name = match carrier {
            Some(link) if !record.survives => name_of(link),
            _ => name_of(record),
        };
        let meta = &parsed.meta;
        let mut header = EntryHeader {
            name: &name,
            kind: EntryKind::File,
            link: b"",
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime.secs,
            size: 0,
            xattrs: &meta.xattrs,
        };
        let link;
        let marker;
        match &parsed.kind {
            Kind::Dir => header.kind = EntryKind::Dir,
            Kind::File { size } => header.size = *size,
            Kind::Symlink { target } => {
                header.kind = EntryKind::Symlink;
                header.link = target;
            }
            Kind::Fifo => header.kind = EntryKind::Fifo,
            Kind::HardLink { .. } => {
                let content = &records[record.content as usize];
                // The carrier was written where the content was.
                if content.carried_by as usize == index {
                    return Ok(());
                }
                link = match content.survives {
                    true => name_of(content),
                    false => name_of(&records[content.carried_by as usize]),
                };
                header.kind = EntryKind::HardLink;
                header.link = &link;
                header.xattrs = &[];
            }
            Kind::Whiteout { .. } | Kind::Opaque => {
                marker = marker_name(plan, record);
                header.name = &marker;
                header.xattrs = &[];
                self.stats.whiteouts += 1;
            }
            Kind::Ignored | Kind::DroppedDevice => return Ok(()),
        }
        self.header(&header).map_err(EntryError::Write)?;
        if header.size > 0 {
            let read = self
                .out
                .write_content(&mut *data, header.size)
                .map_err(|e| match e {
                    CopyError::Read(e) => EntryError::Read(e),
                    CopyError::Write(e) => EntryError::Write(e),
                })?;
            if read != header.size {
                return Err(EntryError::Short);
            }
            self.stats.bytes += header.size;
        }
        Ok(())
    }

    /// A whiteout standing for a non-directory a newer layer made a directory.
    fn whiteout_of(&mut self, plan: &Plan, record: &Record) -> io::Result<()> {
        let name = marker_name(plan, record);
        let header = EntryHeader {
            name: &name,
            kind: EntryKind::File,
            link: b"",
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            xattrs: &[],
        };
        self.header(&header)?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    fn header(&mut self, header: &EntryHeader<'_>) -> io::Result<()> {
        self.out.append_header(header)?;
        self.stats.entries += 1;
        Ok(())
    }
}

enum EntryError {
    Write(io::Error),
    Read(io::Error),
    /// The layer's data ended before its header said.
    Short,
}

/// Whether the first pass gave this entry a record.
fn has_record(parsed: &ParsedEntry) -> bool {
    match &parsed.kind {
        Kind::Ignored | Kind::DroppedDevice => false,
        Kind::Dir => !parsed.path.is_root(),
        Kind::HardLink { target } => target != &parsed.path,
        _ => true,
    }
}

/// Whether an entry read in the second pass is the one the first pass recorded.
fn matches_record(plan: &Plan, record: &Record, parsed: &ParsedEntry) -> bool {
    let (components, kind) = match &parsed.kind {
        Kind::Whiteout { hidden } => {
            let mut c = parsed.path.parent().to_vec();
            c.push(hidden.clone());
            (c, RecKind::Whiteout)
        }
        Kind::Opaque => (parsed.path.parent().to_vec(), RecKind::Opaque),
        Kind::Dir => (parsed.path.components().to_vec(), RecKind::Dir),
        Kind::File { size } if *size == record.size => {
            (parsed.path.components().to_vec(), RecKind::File)
        }
        Kind::Symlink { .. } => (parsed.path.components().to_vec(), RecKind::Symlink),
        Kind::Fifo => (parsed.path.components().to_vec(), RecKind::Fifo),
        Kind::HardLink { .. } => (parsed.path.components().to_vec(), RecKind::HardLink),
        _ => return false,
    };
    kind == record.kind && plan.id_of(&components) == Some(record.path)
}

/// `<dir>/.wh.<name>` for a whiteout record, `<dir>/.wh..wh..opq` for an opaque one.
fn marker_name(plan: &Plan, record: &Record) -> Vec<u8> {
    let (dir, file) = match record.kind {
        RecKind::Opaque => (record.path, whiteout::OPAQUE_MARKER.to_vec()),
        _ => {
            let full = plan.name(record.path);
            let base = full.rsplit(|&b| b == b'/').next().unwrap_or(full);
            (plan.parent(record.path), whiteout::whiteout_name(base))
        }
    };
    let mut name = plan.name(dir).to_vec();
    if !name.is_empty() {
        name.push(b'/');
    }
    name.extend_from_slice(&file);
    name
}

#[cfg(test)]
mod tests;
