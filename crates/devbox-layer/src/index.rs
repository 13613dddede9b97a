//! The upperdir index: the state of an overlayfs upper directory at a commit,
//! one entry per path, so the next commit can pack only what changed since.
//!
//! # On-disk format (version 1)
//!
//! All integers are little-endian; `varint` is unsigned LEB128 and `svarint`
//! is a zigzag-encoded signed LEB128.
//!
//! ```text
//! header   magic "DBXINDEX" (8 bytes) | version u32 = 1 | flags u32 = 0
//!          | root inode u64 | watermark ns i64                      (32 bytes)
//! entry    tag u8 = 1 | shared varint | suffix_len varint | suffix bytes
//!          | flags u8 (1 whiteout, 2 opaque, 4 recheck) | mode varint
//!          | uid varint | gid varint | inode varint | nlink varint
//!          | size varint | ctime ns svarint | mtime ns svarint
//! end      tag u8 = 0 | entry count u64 | crc32 u32 of every byte before it
//! ```
//!
//! A path is stored as the number of bytes it shares with the previous path
//! plus the rest. Entries come in walk order: depth first, names sorted
//! bytewise within a directory, each directory before its content (the order
//! of [`cmp_paths`]), so a commit reads the previous index in lockstep with
//! its walk and never holds it in memory. A reader refuses another magic,
//! another version, entries out of order, and a checksum or count that does
//! not match; the checksum is checked when the end record is read, so a
//! consumer that reads every entry finds corruption before it finishes.

mod codec;

use std::cmp::Ordering;
use std::io::{self, Read, Write};

use codec::{CrcReader, CrcWriter, ReadError};

use crate::entry::MAX_NAME_LEN;

/// The first bytes of every index file.
pub const INDEX_MAGIC: &[u8; 8] = b"DBXINDEX";
/// The format version this crate writes and reads.
pub const INDEX_VERSION: u32 = 1;

const TAG_END: u8 = 0;
const TAG_ENTRY: u8 = 1;
const FLAG_WHITEOUT: u8 = 1;
const FLAG_OPAQUE: u8 = 2;
const FLAG_RECHECK: u8 = 4;
const KNOWN_FLAGS: u8 = FLAG_WHITEOUT | FLAG_OPAQUE | FLAG_RECHECK;

/// What the index says about the whole upperdir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexHeader {
    /// The inode of the upperdir itself: an index is only valid for the
    /// directory it was taken from, never for a replacement created since.
    pub root_ino: u64,
    /// The filesystem time at the start of the commit that wrote the index.
    pub watermark_ns: i64,
}

/// One path of the upperdir as a commit saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexEntry {
    /// Relative to the upperdir: components joined by `/`, no leading or
    /// trailing slash; any bytes but `/` and NUL in a component.
    pub path: Vec<u8>,
    pub ino: u64,
    /// Status change time in nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i64,
    pub size: u64,
    /// File type and permission bits, as in `st_mode`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    /// An overlayfs whiteout (a character device 0/0): the path is deleted.
    pub whiteout: bool,
    /// A directory marked opaque by overlayfs (`trusted.overlay.opaque=y`).
    pub opaque: bool,
    /// The entry changed at or after the watermark of the commit that recorded
    /// it (or vanished while it was packed), so that commit may have caught it
    /// half written: the next commit packs it again whatever its metadata says.
    pub recheck: bool,
}

impl IndexEntry {
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170000 == 0o040000
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("not a devbox upperdir index (bad magic bytes)")]
    NotAnIndex,
    #[error(
        "the upperdir index has format version {found}, and this devbox reads only version \
         {INDEX_VERSION}: it was written by a newer devbox; upgrade, or commit without it"
    )]
    UnsupportedVersion { found: u32 },
    #[error("the upperdir index is truncated")]
    Truncated,
    #[error("the upperdir index is corrupt: {reason}")]
    Corrupt { reason: String },
    #[error("the upperdir index is corrupt: its checksum does not match its content")]
    Checksum,
    #[error("index entry {path:?} is out of order after {previous:?}")]
    OutOfOrder { path: String, previous: String },
    #[error("index entry {path:?} is not a relative path of plain components")]
    BadPath { path: String },
    #[error("reading the upperdir index: {source}")]
    Read { source: io::Error },
    #[error("writing the upperdir index: {source}")]
    Write { source: io::Error },
}

impl From<ReadError> for IndexError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(source) => IndexError::Read { source },
            ReadError::Truncated => IndexError::Truncated,
            ReadError::Overflow => corrupt("a number does not fit in 64 bits"),
        }
    }
}

fn corrupt(reason: impl Into<String>) -> IndexError {
    IndexError::Corrupt {
        reason: reason.into(),
    }
}

fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Orders relative paths the way a depth-first walk with sorted names visits
/// them: component by component, so `a/b` comes before `a.b` (bytewise it
/// would not, since `.` sorts before `/`), and a directory before its content.
pub fn cmp_paths(a: &[u8], b: &[u8]) -> Ordering {
    let key = |&c: &u8| if c == b'/' { 0 } else { c };
    a.iter().map(key).cmp(b.iter().map(key))
}

/// Whether `path` is `dir` itself or lies below it.
pub(crate) fn is_within(path: &[u8], dir: &[u8]) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
}

fn check_path(path: &[u8]) -> Result<(), IndexError> {
    let plain = !path.is_empty()
        && path.len() <= MAX_NAME_LEN
        && !path.contains(&0)
        && path
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..");
    if plain {
        Ok(())
    } else {
        Err(IndexError::BadPath { path: lossy(path) })
    }
}

/// Writes an index, one entry at a time, in walk order.
#[derive(Debug)]
pub struct IndexWriter<W: Write> {
    out: CrcWriter<W>,
    previous: Vec<u8>,
    count: u64,
}

impl<W: Write> IndexWriter<W> {
    /// Starts an index on `out` by writing its header.
    pub fn new(out: W, header: IndexHeader) -> Result<Self, IndexError> {
        let write = |source| IndexError::Write { source };
        let mut out = CrcWriter::new(out);
        let mut head = Vec::with_capacity(32);
        head.extend_from_slice(INDEX_MAGIC);
        head.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(&header.root_ino.to_le_bytes());
        head.extend_from_slice(&header.watermark_ns.to_le_bytes());
        out.bytes(&head).map_err(write)?;
        Ok(IndexWriter {
            out,
            previous: Vec::new(),
            count: 0,
        })
    }

    /// Appends `entry`, which must come after the previous one in [`cmp_paths`] order.
    pub fn push(&mut self, entry: &IndexEntry) -> Result<(), IndexError> {
        check_path(&entry.path)?;
        if self.count > 0 && cmp_paths(&self.previous, &entry.path) != Ordering::Less {
            return Err(IndexError::OutOfOrder {
                path: lossy(&entry.path),
                previous: lossy(&self.previous),
            });
        }
        let shared = self
            .previous
            .iter()
            .zip(&entry.path)
            .take_while(|(a, b)| a == b)
            .count();
        let suffix = &entry.path[shared..];
        let flag = |set: bool, bit: u8| if set { bit } else { 0 };
        let flags = flag(entry.whiteout, FLAG_WHITEOUT)
            | flag(entry.opaque, FLAG_OPAQUE)
            | flag(entry.recheck, FLAG_RECHECK);
        let out = &mut self.out;
        (|| -> io::Result<()> {
            out.u8(TAG_ENTRY)?;
            out.varint(shared as u64)?;
            out.varint(suffix.len() as u64)?;
            out.bytes(suffix)?;
            out.u8(flags)?;
            out.varint(entry.mode.into())?;
            out.varint(entry.uid.into())?;
            out.varint(entry.gid.into())?;
            out.varint(entry.ino)?;
            out.varint(entry.nlink)?;
            out.varint(entry.size)?;
            out.signed(entry.ctime_ns)?;
            out.signed(entry.mtime_ns)
        })()
        .map_err(|source| IndexError::Write { source })?;
        self.previous.truncate(shared);
        self.previous.extend_from_slice(suffix);
        self.count += 1;
        Ok(())
    }

    /// Entries written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the end record and checksum, flushes, and returns the writer.
    pub fn finish(mut self) -> Result<W, IndexError> {
        let write = |source| IndexError::Write { source };
        self.out.u8(TAG_END).map_err(write)?;
        self.out.bytes(&self.count.to_le_bytes()).map_err(write)?;
        let crc = self.out.crc();
        self.out.finish(&crc.to_le_bytes()).map_err(write)
    }
}

/// Reads an index entry by entry, checking order, and the count and checksum at the end.
#[derive(Debug)]
pub struct IndexReader<R: Read> {
    input: CrcReader<R>,
    header: IndexHeader,
    previous: Vec<u8>,
    count: u64,
    done: bool,
}

impl<R: Read> IndexReader<R> {
    /// Reads and checks the header.
    pub fn new(input: R) -> Result<Self, IndexError> {
        let mut input = CrcReader::new(input);
        let mut head = [0u8; 32];
        match input.exact(&mut head) {
            Ok(()) => {}
            // Too short to hold a header: say what it is not, rather than "truncated".
            Err(ReadError::Truncated) => return Err(IndexError::NotAnIndex),
            Err(e) => return Err(e.into()),
        }
        if &head[..8] != INDEX_MAGIC {
            return Err(IndexError::NotAnIndex);
        }
        let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().unwrap());
        let version = word(8);
        if version != INDEX_VERSION {
            return Err(IndexError::UnsupportedVersion { found: version });
        }
        if word(12) != 0 {
            return Err(corrupt("unknown header flags"));
        }
        let header = IndexHeader {
            root_ino: u64::from_le_bytes(head[16..24].try_into().unwrap()),
            watermark_ns: i64::from_le_bytes(head[24..32].try_into().unwrap()),
        };
        Ok(IndexReader {
            input,
            header,
            previous: Vec::new(),
            count: 0,
            done: false,
        })
    }

    pub fn header(&self) -> IndexHeader {
        self.header
    }

    /// The next entry, or `None` after the end record, once the count and
    /// checksum have been found right.
    pub fn next_entry(&mut self) -> Result<Option<IndexEntry>, IndexError> {
        if self.done {
            return Ok(None);
        }
        match self.input.u8()? {
            TAG_ENTRY => self.entry().map(Some),
            TAG_END => {
                self.end()?;
                self.done = true;
                Ok(None)
            }
            other => Err(corrupt(format!("unknown record tag {other}"))),
        }
    }

    fn entry(&mut self) -> Result<IndexEntry, IndexError> {
        let input = &mut self.input;
        let shared = input.varint()?;
        let suffix = input.varint()?;
        let too_long = |n: u64| n > MAX_NAME_LEN as u64;
        if shared > self.previous.len() as u64 || too_long(suffix) || too_long(shared + suffix) {
            return Err(corrupt("a path length is out of range"));
        }
        let mut path = self.previous[..shared as usize].to_vec();
        input.append(&mut path, suffix as usize)?;
        let flags = input.u8()?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(corrupt(format!("unknown entry flags {flags:#x}")));
        }
        let small = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| corrupt(format!("{what} does not fit in 32 bits")))
        };
        let entry = IndexEntry {
            mode: small(input.varint()?, "a mode")?,
            uid: small(input.varint()?, "a uid")?,
            gid: small(input.varint()?, "a gid")?,
            ino: input.varint()?,
            nlink: input.varint()?,
            size: input.varint()?,
            ctime_ns: input.signed()?,
            mtime_ns: input.signed()?,
            whiteout: flags & FLAG_WHITEOUT != 0,
            opaque: flags & FLAG_OPAQUE != 0,
            recheck: flags & FLAG_RECHECK != 0,
            path,
        };
        check_path(&entry.path)?;
        if self.count > 0 && cmp_paths(&self.previous, &entry.path) != Ordering::Less {
            return Err(IndexError::OutOfOrder {
                path: lossy(&entry.path),
                previous: lossy(&self.previous),
            });
        }
        self.previous.clone_from(&entry.path);
        self.count += 1;
        Ok(entry)
    }

    fn end(&mut self) -> Result<(), IndexError> {
        let mut count = [0u8; 8];
        self.input.exact(&mut count)?;
        let expected = self.input.crc();
        let mut crc = [0u8; 4];
        self.input.unchecked(&mut crc)?;
        if u32::from_le_bytes(crc) != expected {
            return Err(IndexError::Checksum);
        }
        if u64::from_le_bytes(count) != self.count {
            return Err(corrupt("the entry count does not match"));
        }
        if !self.input.at_end()? {
            return Err(corrupt("bytes follow the end record"));
        }
        Ok(())
    }
}

impl<R: Read> Iterator for IndexReader<R> {
    type Item = Result<IndexEntry, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_entry() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests;
