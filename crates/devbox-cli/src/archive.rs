//! Writing a directory as a tar stream for `image import`: an OCI layout
//! directory as it is, or a root filesystem with owners, modes, times,
//! symlinks, hard links and device nodes kept.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{Builder, EntryType, Header, HeaderMode};

/// Writes everything under `dir` to `out` as a tar stream, with names
/// relative to `dir` (`etc/passwd`, never `./etc/passwd`), entries sorted so
/// that the same tree always gives the same stream. Sockets are skipped: a
/// tar cannot hold them.
pub fn tar_dir(dir: &Path, out: impl Write) -> io::Result<()> {
    let mut builder = Builder::new(out);
    // First name seen for each (device, inode) of a multiply linked file.
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(dir.join(&rel_dir))
            .map_err(|e| annotate(e, &dir.join(&rel_dir)))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        // Children are pushed in reverse so they are popped in order.
        let mut subdirs = Vec::new();
        for name in names {
            let rel = rel_dir.join(&name);
            let full = dir.join(&rel);
            let meta = fs::symlink_metadata(&full).map_err(|e| annotate(e, &full))?;
            append(&mut builder, &full, &rel, &meta, &mut links).map_err(|e| annotate(e, &full))?;
            if meta.is_dir() {
                subdirs.push(rel);
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    builder.into_inner()?.flush()
}

fn append<W: Write>(
    builder: &mut Builder<W>,
    full: &Path,
    rel: &Path,
    meta: &Metadata,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let mut header = Header::new_gnu();
    header.set_metadata_in_mode(meta, HeaderMode::Complete);
    let ft = meta.file_type();
    if ft.is_file() {
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&key) {
                header.set_entry_type(EntryType::Link);
                header.set_size(0);
                return builder.append_link(&mut header, rel, first);
            }
            links.insert(key, rel.to_owned());
        }
        header.set_entry_type(EntryType::Regular);
        header.set_size(meta.len());
        let file = File::open(full)?;
        return builder.append_data(&mut header, rel, Exact::new(file, meta.len()));
    }
    header.set_size(0);
    if ft.is_dir() {
        header.set_entry_type(EntryType::Directory);
        builder.append_data(&mut header, rel, io::empty())
    } else if ft.is_symlink() {
        header.set_entry_type(EntryType::Symlink);
        let target = fs::read_link(full)?;
        builder.append_link(&mut header, rel, target)
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        let kind = if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else {
            EntryType::Fifo
        };
        header.set_entry_type(kind);
        header.set_device_major(rustix::fs::major(meta.rdev()))?;
        header.set_device_minor(rustix::fs::minor(meta.rdev()))?;
        builder.append_data(&mut header, rel, io::empty())
    } else {
        tracing::warn!("skipping socket {}", full.display());
        Ok(())
    }
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Yields exactly `len` bytes of a file: the header already promised that
/// size, so a file that shrank or grew while it was read must fail the
/// stream rather than corrupt it.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Exact<R> {
    fn new(inner: R, len: u64) -> Self {
        Self { inner, left: len }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn entries(tar_bytes: &[u8]) -> Vec<(String, EntryType, Vec<u8>, String, u32)> {
        let mut ar = tar::Archive::new(tar_bytes);
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                let kind = e.header().entry_type();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default();
                let mode = e.header().mode().unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, kind, data, link, mode)
            })
            .collect()
    }

    #[test]
    fn a_tree_becomes_relative_sorted_entries() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("etc/ssh")).unwrap();
        fs::write(root.join("etc/passwd"), "root:x:0:0\n").unwrap();
        fs::write(root.join("etc/ssh/key"), "k").unwrap();
        fs::set_permissions(root.join("etc/ssh/key"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::create_dir(root.join("bin")).unwrap();
        fs::write(root.join("bin/busybox"), "elf").unwrap();
        fs::hard_link(root.join("bin/busybox"), root.join("bin/sh")).unwrap();
        symlink("busybox", root.join("bin/ls")).unwrap();
        let long = "n".repeat(150);
        fs::write(root.join(&long), "long").unwrap();

        let mut out = Vec::new();
        tar_dir(root, &mut out).unwrap();
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "etc",
                long.as_str(),
                "bin/busybox",
                "bin/ls",
                "bin/sh",
                "etc/passwd",
                "etc/ssh",
                "etc/ssh/key"
            ]
        );
        let by = |n: &str| got.iter().find(|e| e.0 == n).unwrap();
        assert_eq!(by("bin").1, EntryType::Directory);
        assert_eq!(by("bin/busybox").2, b"elf");
        assert_eq!(by("bin/sh").1, EntryType::Link);
        assert_eq!(by("bin/sh").3, "bin/busybox");
        assert_eq!(by("bin/ls").1, EntryType::Symlink);
        assert_eq!(by("bin/ls").3, "busybox");
        assert_eq!(by("etc/passwd").2, b"root:x:0:0\n");
        assert_eq!(by("etc/ssh/key").4 & 0o7777, 0o600);
        assert_eq!(by(&long).2, b"long");
    }

    #[test]
    fn device_nodes_and_fifos_are_kept() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let mut out = Vec::new();
        tar_dir(d.path(), &mut out).unwrap();
        let got = entries(&out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, EntryType::Fifo);
    }

    #[test]
    fn a_file_that_shrinks_fails_the_stream() {
        let mut r = Exact::new(&b"abc"[..], 5);
        let mut buf = Vec::new();
        assert!(r.read_to_end(&mut buf).is_err());
        let mut r = Exact::new(&b"abcdef"[..], 3);
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).unwrap();
        assert_eq!(buf, b"abc");
    }

    #[test]
    fn a_missing_directory_is_named_in_the_error() {
        let e = tar_dir(Path::new("/nonexistent/rootfs"), Vec::new()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/rootfs"), "{e}");
    }
}
