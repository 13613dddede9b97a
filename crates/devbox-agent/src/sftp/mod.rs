//! SFTP server mode: one SFTP version 3 session on standard input and
//! output, as OpenSSH's `sftp-server`, run by the SSH server as the login
//! user (so the kernel checks every access) in the login's home.
//!
//! Requests are served in order, one at a time; clients keep many in
//! flight, so responses are written through a buffer that is flushed
//! whenever no further request is waiting. Paths are bytes, as the
//! filesystem has them. OpenSSH's extensions for atomic renames, hard links
//! and fsync are offered, and `SYMLINK` takes its arguments in OpenSSH's
//! order (target first).

mod wire;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, ReadDir};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wire::{Attrs, Reader, Short, Writer};

/// Largest request accepted: a 256 KiB write and its header.
const MAX_PACKET: usize = 256 * 1024 + 1024;

/// Largest read served at once.
const MAX_READ: u32 = 256 * 1024;

/// Handles open at once.
const MAX_HANDLES: usize = 1024;

/// Entries sent per `READDIR` response.
const DIR_BATCH: usize = 100;

enum Open {
    File(File),
    Dir(ReadDir, PathBuf),
}

struct Server {
    handles: HashMap<u32, Open>,
    next: u32,
}

fn path_of(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

fn code_of(e: &io::Error) -> u32 {
    match e.kind() {
        io::ErrorKind::NotFound => wire::NO_SUCH_FILE,
        io::ErrorKind::PermissionDenied => wire::PERMISSION_DENIED,
        _ => wire::FAILURE,
    }
}

fn status(id: u32, code: u32, message: &str) -> Vec<u8> {
    let mut w = Writer::new(wire::STATUS);
    w.u32(id).u32(code).bytes(message.as_bytes()).bytes(b"en");
    w.finish()
}

fn io_status(id: u32, r: io::Result<()>) -> Vec<u8> {
    match r {
        Ok(()) => status(id, wire::OK, "Success"),
        Err(e) => status(id, code_of(&e), &e.to_string()),
    }
}

fn attrs_reply(id: u32, m: io::Result<fs::Metadata>) -> Vec<u8> {
    match m {
        Ok(m) => {
            let mut w = Writer::new(wire::ATTRS);
            w.u32(id).attrs(&Attrs::of(&m));
            w.finish()
        }
        Err(e) => status(id, code_of(&e), &e.to_string()),
    }
}

fn name_reply(id: u32, entries: &[(Vec<u8>, Vec<u8>, Attrs)]) -> Vec<u8> {
    let mut w = Writer::new(wire::NAME);
    w.u32(id).u32(entries.len() as u32);
    for (name, long, attrs) in entries {
        w.bytes(name).bytes(long).attrs(attrs);
    }
    w.finish()
}

/// Applies the attributes a client sets: permissions, owner, size, times.
fn set_attrs(path: &Path, file: Option<&File>, a: &Attrs) -> io::Result<()> {
    if let Some(size) = a.size {
        match file {
            Some(f) => f.set_len(size)?,
            None => OpenOptions::new().write(true).open(path)?.set_len(size)?,
        }
    }
    if let Some(mode) = a.permissions {
        let p = fs::Permissions::from_mode(mode & 0o7777);
        match file {
            Some(f) => f.set_permissions(p)?,
            None => fs::set_permissions(path, p)?,
        }
    }
    if let Some((uid, gid)) = a.uid_gid {
        match file {
            Some(f) => std::os::unix::fs::fchown(f, Some(uid), Some(gid))?,
            None => std::os::unix::fs::lchown(path, Some(uid), Some(gid))?,
        }
    }
    if let Some((atime, mtime)) = a.times {
        use std::time::{Duration, UNIX_EPOCH};
        let times = fs::FileTimes::new()
            .set_accessed(UNIX_EPOCH + Duration::from_secs(u64::from(atime)))
            .set_modified(UNIX_EPOCH + Duration::from_secs(u64::from(mtime)));
        match file {
            Some(f) => f.set_times(times)?,
            None => File::options().write(true).open(path)?.set_times(times)?,
        }
    }
    Ok(())
}

impl Server {
    fn insert(&mut self, open: Open) -> Option<u32> {
        if self.handles.len() >= MAX_HANDLES {
            return None;
        }
        let h = self.next;
        self.next = self.next.wrapping_add(1);
        self.handles.insert(h, open);
        Some(h)
    }

    fn handle_reply(&mut self, id: u32, open: io::Result<Open>) -> Vec<u8> {
        match open {
            Ok(o) => match self.insert(o) {
                Some(h) => {
                    let mut w = Writer::new(wire::HANDLE);
                    w.u32(id).bytes(&h.to_be_bytes());
                    w.finish()
                }
                None => status(id, wire::FAILURE, "too many open handles"),
            },
            Err(e) => status(id, code_of(&e), &e.to_string()),
        }
    }

    fn handle_of(r: &mut Reader<'_>) -> Result<u32, Short> {
        let b = r.bytes()?;
        Ok(b.try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX))
    }

    /// Serves one request; `None` for a malformed one.
    fn serve(&mut self, kind: u8, r: &mut Reader<'_>) -> Result<Vec<u8>, Short> {
        if kind == wire::INIT {
            let mut w = Writer::new(wire::VERSION);
            w.u32(3);
            for (name, version) in [
                ("posix-rename@openssh.com", "1"),
                ("hardlink@openssh.com", "1"),
                ("fsync@openssh.com", "1"),
            ] {
                w.bytes(name.as_bytes()).bytes(version.as_bytes());
            }
            return Ok(w.finish());
        }
        let id = r.u32()?;
        Ok(match kind {
            wire::OPEN => {
                let path = path_of(r.bytes()?);
                let flags = r.u32()?;
                let attrs = r.attrs()?;
                let mut o = OpenOptions::new();
                o.read(flags & wire::FLAG_READ != 0)
                    .write(flags & (wire::FLAG_WRITE | wire::FLAG_APPEND) != 0)
                    .append(flags & wire::FLAG_APPEND != 0)
                    .truncate(flags & wire::FLAG_TRUNC != 0)
                    .mode(attrs.permissions.map_or(0o666, |p| p & 0o7777));
                if flags & wire::FLAG_CREAT != 0 {
                    if flags & wire::FLAG_EXCL != 0 {
                        o.create_new(true);
                    } else {
                        o.create(true);
                    }
                }
                self.handle_reply(id, o.open(path).map(Open::File))
            }
            wire::CLOSE => {
                let h = Self::handle_of(r)?;
                match self.handles.remove(&h) {
                    Some(_) => status(id, wire::OK, "Success"),
                    None => status(id, wire::FAILURE, "no such handle"),
                }
            }
            wire::READ => {
                let h = Self::handle_of(r)?;
                let offset = r.u64()?;
                let len = r.u32()?.min(MAX_READ) as usize;
                match self.handles.get(&h) {
                    Some(Open::File(f)) => {
                        let mut buf = vec![0u8; len];
                        let mut n = 0;
                        let res = loop {
                            match f.read_at(&mut buf[n..], offset + n as u64) {
                                Ok(0) => break Ok(()),
                                Ok(k) => {
                                    n += k;
                                    if n == len {
                                        break Ok(());
                                    }
                                }
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                Err(e) => break Err(e),
                            }
                        };
                        match res {
                            Err(e) if n == 0 => status(id, code_of(&e), &e.to_string()),
                            _ if n == 0 => status(id, wire::EOF, "End of file"),
                            _ => {
                                let mut w = Writer::new(wire::DATA);
                                w.u32(id).bytes(&buf[..n]);
                                w.finish()
                            }
                        }
                    }
                    _ => status(id, wire::FAILURE, "no such file handle"),
                }
            }
            wire::WRITE => {
                let h = Self::handle_of(r)?;
                let offset = r.u64()?;
                let data = r.bytes()?;
                match self.handles.get(&h) {
                    Some(Open::File(f)) => io_status(id, f.write_all_at(data, offset)),
                    _ => status(id, wire::FAILURE, "no such file handle"),
                }
            }
            wire::LSTAT => attrs_reply(id, fs::symlink_metadata(path_of(r.bytes()?))),
            wire::STAT => attrs_reply(id, fs::metadata(path_of(r.bytes()?))),
            wire::FSTAT => {
                let h = Self::handle_of(r)?;
                match self.handles.get(&h) {
                    Some(Open::File(f)) => attrs_reply(id, f.metadata()),
                    Some(Open::Dir(_, p)) => attrs_reply(id, fs::metadata(p)),
                    None => status(id, wire::FAILURE, "no such handle"),
                }
            }
            wire::SETSTAT => {
                let path = path_of(r.bytes()?);
                let attrs = r.attrs()?;
                io_status(id, set_attrs(&path, None, &attrs))
            }
            wire::FSETSTAT => {
                let h = Self::handle_of(r)?;
                let attrs = r.attrs()?;
                match self.handles.get(&h) {
                    Some(Open::File(f)) => io_status(id, set_attrs(Path::new(""), Some(f), &attrs)),
                    Some(Open::Dir(_, p)) => io_status(id, set_attrs(&p.clone(), None, &attrs)),
                    None => status(id, wire::FAILURE, "no such handle"),
                }
            }
            wire::OPENDIR => {
                let path = path_of(r.bytes()?);
                let open = fs::read_dir(&path).map(|d| Open::Dir(d, path));
                self.handle_reply(id, open)
            }
            wire::READDIR => {
                let h = Self::handle_of(r)?;
                match self.handles.get_mut(&h) {
                    Some(Open::Dir(entries, _)) => {
                        let mut batch = Vec::new();
                        for entry in entries.by_ref().take(DIR_BATCH).flatten() {
                            let name = entry.file_name().as_bytes().to_vec();
                            let Ok(m) = entry.path().symlink_metadata() else {
                                continue;
                            };
                            batch.push((name.clone(), wire::long_name(&name, &m), Attrs::of(&m)));
                        }
                        if batch.is_empty() {
                            status(id, wire::EOF, "End of directory")
                        } else {
                            name_reply(id, &batch)
                        }
                    }
                    _ => status(id, wire::FAILURE, "no such directory handle"),
                }
            }
            wire::REMOVE => io_status(id, fs::remove_file(path_of(r.bytes()?))),
            wire::MKDIR => {
                let path = path_of(r.bytes()?);
                let attrs = r.attrs()?;
                let mut b = fs::DirBuilder::new();
                std::os::unix::fs::DirBuilderExt::mode(
                    &mut b,
                    attrs.permissions.map_or(0o777, |p| p & 0o7777),
                );
                io_status(id, b.create(path))
            }
            wire::RMDIR => io_status(id, fs::remove_dir(path_of(r.bytes()?))),
            wire::REALPATH => {
                let raw = r.bytes()?;
                let path = if raw.is_empty() {
                    Path::new(".")
                } else {
                    Path::new(OsStr::from_bytes(raw))
                };
                match fs::canonicalize(path) {
                    Ok(p) => {
                        let name = p.as_os_str().as_bytes().to_vec();
                        name_reply(id, &[(name.clone(), name, Attrs::default())])
                    }
                    Err(e) => status(id, code_of(&e), &e.to_string()),
                }
            }
            wire::RENAME => {
                let from = path_of(r.bytes()?);
                let to = path_of(r.bytes()?);
                // Plain SFTP renames never replace a file.
                if to.symlink_metadata().is_ok() {
                    status(id, wire::FAILURE, "the target exists")
                } else {
                    io_status(id, fs::rename(from, to))
                }
            }
            wire::READLINK => match fs::read_link(path_of(r.bytes()?)) {
                Ok(t) => {
                    let name = t.as_os_str().as_bytes().to_vec();
                    name_reply(id, &[(name.clone(), name, Attrs::default())])
                }
                Err(e) => status(id, code_of(&e), &e.to_string()),
            },
            wire::SYMLINK => {
                let target = path_of(r.bytes()?);
                let link = path_of(r.bytes()?);
                io_status(id, std::os::unix::fs::symlink(target, link))
            }
            wire::EXTENDED => {
                let name = r.bytes()?;
                match name {
                    b"posix-rename@openssh.com" => {
                        let from = path_of(r.bytes()?);
                        let to = path_of(r.bytes()?);
                        io_status(id, fs::rename(from, to))
                    }
                    b"hardlink@openssh.com" => {
                        let from = path_of(r.bytes()?);
                        let to = path_of(r.bytes()?);
                        io_status(id, fs::hard_link(from, to))
                    }
                    b"fsync@openssh.com" => {
                        let h = Self::handle_of(r)?;
                        match self.handles.get(&h) {
                            Some(Open::File(f)) => io_status(id, f.sync_all()),
                            _ => status(id, wire::FAILURE, "no such file handle"),
                        }
                    }
                    _ => status(id, wire::OP_UNSUPPORTED, "unsupported extension"),
                }
            }
            _ => status(id, wire::OP_UNSUPPORTED, "unsupported request"),
        })
    }
}

/// Reads one packet: `None` at the end of the input.
fn read_packet(input: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Option<()>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_PACKET {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a packet of {len} bytes"),
        ));
    }
    buf.resize(len, 0);
    input.read_exact(buf)?;
    Ok(Some(()))
}

/// Serves SFTP on `input` and `output` until the input ends.
pub fn serve(input: impl Read, output: impl Write) -> io::Result<()> {
    let mut input = BufReader::with_capacity(512 * 1024, input);
    let mut output = BufWriter::with_capacity(512 * 1024, output);
    let mut server = Server {
        handles: HashMap::new(),
        next: 0,
    };
    let mut buf = Vec::new();
    while read_packet(&mut input, &mut buf)?.is_some() {
        let kind = buf[0];
        let mut r = Reader::new(&buf[1..]);
        let reply = match server.serve(kind, &mut r) {
            Ok(reply) => reply,
            Err(Short) => {
                let id = if buf.len() >= 5 {
                    u32::from_be_bytes(buf[1..5].try_into().expect("4 bytes"))
                } else {
                    0
                };
                status(id, wire::BAD_MESSAGE, "malformed request")
            }
        };
        output.write_all(&reply)?;
        if input.buffer().is_empty() {
            output.flush()?;
        }
    }
    output.flush()
}

/// The `sftp-server` mode on the process's standard streams.
pub fn run() -> io::Result<()> {
    serve(io::stdin().lock(), io::stdout().lock())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, id: Option<u32>, fields: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::new(kind);
        if let Some(id) = id {
            w.u32(id);
        }
        fields(&mut w);
        w.finish()
    }

    fn replies(input: Vec<u8>) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        serve(&input[..], &mut out).unwrap();
        let mut r = &out[..];
        let mut v = Vec::new();
        let mut buf = Vec::new();
        while read_packet(&mut r, &mut buf).unwrap().is_some() {
            v.push((buf[0], buf[1..].to_vec()));
        }
        v
    }

    #[test]
    fn a_file_is_written_read_back_and_listed() {
        let dir = crate::testing::temp_dir("sftp");
        let file = dir.join("f.bin");
        let path = file.as_os_str().as_bytes().to_vec();
        let mut input = packet(wire::INIT, None, |w| {
            w.u32(3);
        });
        input.extend(packet(wire::OPEN, Some(1), |w| {
            w.bytes(&path)
                .u32(wire::FLAG_WRITE | wire::FLAG_CREAT | wire::FLAG_TRUNC)
                .attrs(&Attrs::default());
        }));
        input.extend(packet(wire::WRITE, Some(2), |w| {
            w.bytes(&0u32.to_be_bytes()).u64(0).bytes(b"hello sftp");
        }));
        input.extend(packet(wire::CLOSE, Some(3), |w| {
            w.bytes(&0u32.to_be_bytes());
        }));
        input.extend(packet(wire::STAT, Some(4), |w| {
            w.bytes(&path);
        }));
        input.extend(packet(wire::OPEN, Some(5), |w| {
            w.bytes(&path).u32(wire::FLAG_READ).attrs(&Attrs::default());
        }));
        input.extend(packet(wire::READ, Some(6), |w| {
            w.bytes(&1u32.to_be_bytes()).u64(6).u32(100);
        }));
        input.extend(packet(wire::READ, Some(7), |w| {
            w.bytes(&1u32.to_be_bytes()).u64(100).u32(100);
        }));
        input.extend(packet(wire::REMOVE, Some(8), |w| {
            w.bytes(b"/nonexistent/x");
        }));
        // A request cut short is answered, and the session goes on.
        input.extend(packet(wire::READ, Some(9), |w| {
            w.u32(4);
        }));
        let r = replies(input);
        assert_eq!(r[0].0, wire::VERSION);
        assert_eq!(r[1].0, wire::HANDLE);
        assert_eq!(&r[2].1[4..8], &wire::OK.to_be_bytes());
        assert_eq!(r[4].0, wire::ATTRS);
        let mut a = Reader::new(&r[4].1[4..]);
        assert_eq!(a.attrs().unwrap().size, Some(10));
        assert_eq!(r[6].0, wire::DATA);
        assert_eq!(&r[6].1[8..], b"sftp");
        assert_eq!(&r[7].1[4..8], &wire::EOF.to_be_bytes());
        assert_eq!(&r[8].1[4..8], &wire::NO_SUCH_FILE.to_be_bytes());
        assert_eq!(
            &r[9].1[0..8],
            &[0, 0, 0, 9, 0, 0, 0, wire::BAD_MESSAGE as u8]
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
