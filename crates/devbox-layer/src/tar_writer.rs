//! A small deterministic tar writer: ustar headers, with a PAX extended header
//! in front whenever a name, link target, size, owner or time does not fit, or
//! the entry has xattrs. The same entry always gives the same bytes.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;
const NAME_FIELD: usize = 100;
/// Largest value of an 8-byte octal header field (uid, gid).
const MAX_OCTAL_8: u64 = 0o7_777_777;
/// Largest value of a 12-byte octal header field (size, mtime).
const MAX_OCTAL_12: u64 = 0o77_777_777_777;
const COPY_BUFFER: usize = 128 * 1024;

/// The type of an entry this writer emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    File,
    Dir,
    Symlink,
    HardLink,
    Fifo,
}

/// One entry's header. `name` is the full canonical name (directories end in `/`).
#[derive(Debug)]
pub(crate) struct EntryHeader<'a> {
    pub name: &'a [u8],
    pub kind: EntryKind,
    /// Symlink or hard link target; empty otherwise.
    pub link: &'a [u8],
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Whole seconds: layers carry no sub-second times, which keeps them reproducible.
    pub mtime: i64,
    /// Content length; zero for everything but files.
    pub size: u64,
    /// Extended attributes, written in the given order.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// Where copying an entry's content failed.
#[derive(Debug)]
pub(crate) enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

#[derive(Debug)]
pub(crate) struct TarWriter<W> {
    out: W,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        TarWriter { out }
    }

    /// Writes the header blocks of an entry. A file's content must follow with
    /// [`TarWriter::write_content`].
    pub(crate) fn append_header(&mut self, h: &EntryHeader<'_>) -> io::Result<()> {
        let pax = pax_records(h);
        if !pax.is_empty() {
            let mut xh = tar::Header::new_ustar();
            set_name(&mut xh, &pax_header_name(h.name));
            xh.set_entry_type(tar::EntryType::XHeader);
            xh.set_mode(0o644);
            xh.set_uid(0);
            xh.set_gid(0);
            xh.set_mtime(0);
            xh.set_size(pax.len() as u64);
            xh.set_cksum();
            self.out.write_all(xh.as_bytes())?;
            self.out.write_all(&pax)?;
            self.out
                .write_all(&[0u8; BLOCK][..padding(pax.len() as u64)])?;
        }

        let mut header = tar::Header::new_ustar();
        set_name(&mut header, h.name);
        header.set_entry_type(match h.kind {
            EntryKind::File => tar::EntryType::Regular,
            EntryKind::Dir => tar::EntryType::Directory,
            EntryKind::Symlink => tar::EntryType::Symlink,
            EntryKind::HardLink => tar::EntryType::Link,
            EntryKind::Fifo => tar::EntryType::Fifo,
        });
        if !h.link.is_empty() {
            let field = &mut header.as_old_mut().linkname;
            let n = h.link.len().min(NAME_FIELD);
            field[..n].copy_from_slice(&h.link[..n]);
        }
        header.set_mode(h.mode & 0o7777);
        header.set_uid(u64::from(h.uid).min(MAX_OCTAL_8));
        header.set_gid(u64::from(h.gid).min(MAX_OCTAL_8));
        header.set_mtime(u64::try_from(h.mtime).unwrap_or(0).min(MAX_OCTAL_12));
        header.set_size(h.size);
        header.set_cksum();
        self.out.write_all(header.as_bytes())
    }

    /// Writes exactly `size` bytes of content taken from `src`, then the block
    /// padding. A source that ends early (a file truncated while it is being
    /// packed) is padded with zeros, and one that grew is cut at `size`, so the
    /// archive always matches its header. Returns the bytes actually read.
    pub(crate) fn write_content<R: Read>(
        &mut self,
        mut src: R,
        size: u64,
    ) -> Result<u64, CopyError> {
        let mut buf = vec![
            0u8;
            COPY_BUFFER
                .min(usize::try_from(size).unwrap_or(COPY_BUFFER))
                .max(1)
        ];
        let mut remaining = size;
        let mut read_total = 0;
        while remaining > 0 {
            let want = buf
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let n = match src.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Read(e)),
            };
            self.out.write_all(&buf[..n]).map_err(CopyError::Write)?;
            remaining -= n as u64;
            read_total += n as u64;
        }
        buf.fill(0);
        while remaining > 0 {
            let n = buf
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            self.out.write_all(&buf[..n]).map_err(CopyError::Write)?;
            remaining -= n as u64;
        }
        self.out
            .write_all(&[0u8; BLOCK][..padding(size)])
            .map_err(CopyError::Write)?;
        Ok(read_total)
    }

    /// Writes the end-of-archive marker, flushes, and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn padding(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}

/// Writes `name` into the header's name field, cut to the field's length when
/// it is longer (a PAX `path` record then carries the whole name).
fn set_name(header: &mut tar::Header, name: &[u8]) {
    let field = &mut header.as_old_mut().name;
    let n = name.len().min(NAME_FIELD);
    field[..n].copy_from_slice(&name[..n]);
}

/// The name of a PAX extended header: `PaxHeaders/<entry's base name>`, which
/// is what a tar reader that ignores PAX would extract the records as.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let base = trimmed.rsplit(|&b| b == b'/').next().unwrap_or(trimmed);
    let mut out = b"PaxHeaders/".to_vec();
    out.extend_from_slice(base);
    out.truncate(NAME_FIELD);
    out
}

/// The PAX records an entry needs; empty when the ustar header says it all.
fn pax_records(h: &EntryHeader<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    if h.name.len() > NAME_FIELD {
        push_record(&mut out, b"path", h.name);
    }
    if h.link.len() > NAME_FIELD {
        push_record(&mut out, b"linkpath", h.link);
    }
    if h.size > MAX_OCTAL_12 {
        push_record(&mut out, b"size", h.size.to_string().as_bytes());
    }
    if u64::from(h.uid) > MAX_OCTAL_8 {
        push_record(&mut out, b"uid", h.uid.to_string().as_bytes());
    }
    if u64::from(h.gid) > MAX_OCTAL_8 {
        push_record(&mut out, b"gid", h.gid.to_string().as_bytes());
    }
    if h.mtime < 0 || h.mtime as u64 > MAX_OCTAL_12 {
        push_record(&mut out, b"mtime", h.mtime.to_string().as_bytes());
    }
    for (name, value) in h.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        push_record(&mut out, &key, value);
    }
    out
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, whose length counts its own digits.
fn push_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(name: &'a [u8], xattrs: &'a [(Vec<u8>, Vec<u8>)]) -> EntryHeader<'a> {
        EntryHeader {
            name,
            kind: EntryKind::File,
            link: b"",
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            size: 3,
            xattrs,
        }
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for value_len in [0, 1, 4, 5, 6, 90, 94, 95, 96, 995, 996, 997] {
            let mut out = Vec::new();
            let value = vec![b'x'; value_len];
            push_record(&mut out, b"path", &value);
            let text = String::from_utf8(out.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), out.len(), "{text}");
        }
    }

    #[test]
    fn long_names_big_owners_and_xattrs_read_back_through_the_tar_crate() {
        let long = "d/".repeat(80) + "file";
        let xattrs = vec![(b"user.k".to_vec(), b"v\0binary".to_vec())];
        let mut h = header(long.as_bytes(), &xattrs);
        h.uid = 3_000_000;
        h.gid = 4_000_000;
        let mut w = TarWriter::new(Vec::new());
        w.append_header(&h).unwrap();
        assert_eq!(w.write_content(&b"abc"[..], 3).unwrap(), 3);
        let bytes = w.finish().unwrap();

        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = archive.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        assert_eq!(&*e.path_bytes(), long.as_bytes());
        assert_eq!(e.header().uid().unwrap(), 3_000_000);
        assert_eq!(e.header().gid().unwrap(), 4_000_000);
        let pax: Vec<_> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|r| r.unwrap())
            .filter(|r| r.key() == Ok("SCHILY.xattr.user.k"))
            .map(|r| r.value_bytes().to_vec())
            .collect();
        assert_eq!(pax, vec![b"v\0binary".to_vec()]);
        let mut content = String::new();
        e.read_to_string(&mut content).unwrap();
        assert_eq!(content, "abc");
        assert!(entries.next().is_none());
    }

    #[test]
    fn short_sources_are_padded_and_long_ones_cut() {
        let xattrs = [];
        let mut w = TarWriter::new(Vec::new());
        let mut h = header(b"short", &xattrs);
        h.size = 5;
        w.append_header(&h).unwrap();
        assert_eq!(w.write_content(&b"ab"[..], 5).unwrap(), 2);
        h.name = b"long";
        h.size = 2;
        w.append_header(&h).unwrap();
        assert_eq!(w.write_content(&b"abcdef"[..], 2).unwrap(), 2);
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % BLOCK, 0);

        let mut archive = tar::Archive::new(&bytes[..]);
        let contents: Vec<Vec<u8>> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut v = Vec::new();
                e.unwrap().read_to_end(&mut v).unwrap();
                v
            })
            .collect();
        assert_eq!(contents, vec![b"ab\0\0\0".to_vec(), b"ab".to_vec()]);
    }

    #[test]
    fn same_entries_give_same_bytes() {
        let write = || {
            let xattrs = vec![(b"user.a".to_vec(), b"1".to_vec())];
            let mut w = TarWriter::new(Vec::new());
            w.append_header(&header(b"f", &xattrs)).unwrap();
            w.write_content(&b"abc"[..], 3).unwrap();
            w.finish().unwrap()
        };
        assert_eq!(write(), write());
    }
}
