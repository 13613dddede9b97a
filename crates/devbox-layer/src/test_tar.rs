//! Builds raw tar archives for tests, with any name at all (absolute, `..`,
//! empty), which the `tar` crate's own builder would refuse to write. Shared
//! by the unit tests and the integration tests.

#![allow(dead_code)]

use tar::{EntryType, Header};

/// A tar archive under construction.
#[derive(Debug, Default)]
pub struct TarBuilder {
    out: Vec<u8>,
}

impl TarBuilder {
    pub fn new() -> Self {
        TarBuilder::default()
    }

    pub fn file(self, name: &str, content: &[u8]) -> Self {
        self.entry(
            name.as_bytes(),
            EntryType::Regular,
            b"",
            0o644,
            content,
            &[],
        )
    }

    pub fn file_mode(self, name: &str, mode: u32, content: &[u8]) -> Self {
        self.entry(name.as_bytes(), EntryType::Regular, b"", mode, content, &[])
    }

    pub fn file_with_xattr(self, name: &str, xattr: &str, value: &[u8]) -> Self {
        let key = format!("SCHILY.xattr.{xattr}");
        self.entry(
            name.as_bytes(),
            EntryType::Regular,
            b"",
            0o644,
            b"",
            &[(key.as_bytes(), value)],
        )
    }

    pub fn dir(self, name: &str) -> Self {
        self.entry(name.as_bytes(), EntryType::Directory, b"", 0o755, b"", &[])
    }

    pub fn dir_mode(self, name: &str, mode: u32) -> Self {
        self.entry(name.as_bytes(), EntryType::Directory, b"", mode, b"", &[])
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(
            name.as_bytes(),
            EntryType::Symlink,
            target.as_bytes(),
            0o777,
            b"",
            &[],
        )
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(
            name.as_bytes(),
            EntryType::Link,
            target.as_bytes(),
            0o644,
            b"",
            &[],
        )
    }

    pub fn fifo(self, name: &str) -> Self {
        self.entry(name.as_bytes(), EntryType::Fifo, b"", 0o644, b"", &[])
    }

    pub fn char_dev(self, name: &str) -> Self {
        self.entry(name.as_bytes(), EntryType::Char, b"", 0o666, b"", &[])
    }

    pub fn block_dev(self, name: &str) -> Self {
        self.entry(name.as_bytes(), EntryType::Block, b"", 0o660, b"", &[])
    }

    /// Appends one entry. Names and link targets longer than the header
    /// fields go into PAX records, as do the given extra records.
    pub fn entry(
        mut self,
        name: &[u8],
        kind: EntryType,
        link: &[u8],
        mode: u32,
        content: &[u8],
        records: &[(&[u8], &[u8])],
    ) -> Self {
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = records
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        if name.len() > 100 {
            pax.push((b"path".to_vec(), name.to_vec()));
        }
        if link.len() > 100 {
            pax.push((b"linkpath".to_vec(), link.to_vec()));
        }
        if !pax.is_empty() {
            let mut body = Vec::new();
            for (k, v) in &pax {
                let base = k.len() + v.len() + 3;
                let mut len = base + 1;
                while len != base + len.to_string().len() {
                    len = base + len.to_string().len();
                }
                body.extend_from_slice(format!("{len} ").as_bytes());
                body.extend_from_slice(k);
                body.push(b'=');
                body.extend_from_slice(v);
                body.push(b'\n');
            }
            let mut h = Header::new_ustar();
            h.as_old_mut().name[..9].copy_from_slice(b"PaxHeader");
            h.set_entry_type(EntryType::XHeader);
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            self.push(h.as_bytes(), &body);
        }
        let mut h = Header::new_ustar();
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(100);
        h.as_old_mut().linkname[..l].copy_from_slice(&link[..l]);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(content.len() as u64);
        if matches!(kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        self.push(h.as_bytes(), content);
        self
    }

    fn push(&mut self, header: &[u8], data: &[u8]) {
        self.out.extend_from_slice(header);
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }

    pub fn build(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[0u8; 1024]);
        self.out
    }
}
