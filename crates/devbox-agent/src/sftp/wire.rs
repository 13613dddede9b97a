//! The SFTP version 3 wire format (draft-ietf-secsh-filexfer-02): packets,
//! their fields, and file attributes.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

pub const INIT: u8 = 1;
pub const VERSION: u8 = 2;
pub const OPEN: u8 = 3;
pub const CLOSE: u8 = 4;
pub const READ: u8 = 5;
pub const WRITE: u8 = 6;
pub const LSTAT: u8 = 7;
pub const FSTAT: u8 = 8;
pub const SETSTAT: u8 = 9;
pub const FSETSTAT: u8 = 10;
pub const OPENDIR: u8 = 11;
pub const READDIR: u8 = 12;
pub const REMOVE: u8 = 13;
pub const MKDIR: u8 = 14;
pub const RMDIR: u8 = 15;
pub const REALPATH: u8 = 16;
pub const STAT: u8 = 17;
pub const RENAME: u8 = 18;
pub const READLINK: u8 = 19;
pub const SYMLINK: u8 = 20;
pub const EXTENDED: u8 = 200;

pub const STATUS: u8 = 101;
pub const HANDLE: u8 = 102;
pub const DATA: u8 = 103;
pub const NAME: u8 = 104;
pub const ATTRS: u8 = 105;

pub const OK: u32 = 0;
pub const EOF: u32 = 1;
pub const NO_SUCH_FILE: u32 = 2;
pub const PERMISSION_DENIED: u32 = 3;
pub const FAILURE: u32 = 4;
pub const BAD_MESSAGE: u32 = 5;
pub const OP_UNSUPPORTED: u32 = 8;

pub const FLAG_READ: u32 = 0x01;
pub const FLAG_WRITE: u32 = 0x02;
pub const FLAG_APPEND: u32 = 0x04;
pub const FLAG_CREAT: u32 = 0x08;
pub const FLAG_TRUNC: u32 = 0x10;
pub const FLAG_EXCL: u32 = 0x20;

const ATTR_SIZE: u32 = 0x1;
const ATTR_UIDGID: u32 = 0x2;
const ATTR_PERMISSIONS: u32 = 0x4;
const ATTR_ACMODTIME: u32 = 0x8;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// A request whose fields are read in order; reading past its end fails.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

/// A request that ended before one of its fields.
#[derive(Debug, PartialEq, Eq)]
pub struct Short;

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        if self.buf.len() < n {
            return Err(Short);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    #[cfg(test)]
    pub fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, Short> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub fn u64(&mut self) -> Result<u64, Short> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], Short> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub fn attrs(&mut self) -> Result<Attrs, Short> {
        let flags = self.u32()?;
        let mut a = Attrs::default();
        if flags & ATTR_SIZE != 0 {
            a.size = Some(self.u64()?);
        }
        if flags & ATTR_UIDGID != 0 {
            a.uid_gid = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_PERMISSIONS != 0 {
            a.permissions = Some(self.u32()?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            a.times = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_EXTENDED != 0 {
            for _ in 0..self.u32()? {
                self.bytes()?;
                self.bytes()?;
            }
        }
        Ok(a)
    }
}

/// File attributes, each present or not.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Attrs {
    pub size: Option<u64>,
    pub uid_gid: Option<(u32, u32)>,
    pub permissions: Option<u32>,
    /// Access and modification time, in seconds.
    pub times: Option<(u32, u32)>,
}

impl Attrs {
    pub fn of(m: &Metadata) -> Self {
        Attrs {
            size: Some(m.size()),
            uid_gid: Some((m.uid(), m.gid())),
            permissions: Some(m.mode()),
            times: Some((m.atime().max(0) as u32, m.mtime().max(0) as u32)),
        }
    }
}

/// A response being built.
#[derive(Debug)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    /// A packet of type `kind`; its length is filled in by [`Writer::finish`].
    pub fn new(kind: u8) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0, 0, 0, 0, kind]);
        Writer { buf }
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
        self
    }

    pub fn attrs(&mut self, a: &Attrs) -> &mut Self {
        let mut flags = 0;
        if a.size.is_some() {
            flags |= ATTR_SIZE;
        }
        if a.uid_gid.is_some() {
            flags |= ATTR_UIDGID;
        }
        if a.permissions.is_some() {
            flags |= ATTR_PERMISSIONS;
        }
        if a.times.is_some() {
            flags |= ATTR_ACMODTIME;
        }
        self.u32(flags);
        if let Some(s) = a.size {
            self.u64(s);
        }
        if let Some((u, g)) = a.uid_gid {
            self.u32(u).u32(g);
        }
        if let Some(p) = a.permissions {
            self.u32(p);
        }
        if let Some((at, mt)) = a.times {
            self.u32(at).u32(mt);
        }
        self
    }

    /// The packet with its length in front.
    pub fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }
}

/// An `ls -l` style line for a directory entry, as clients show it.
pub fn long_name(name: &[u8], m: &Metadata) -> Vec<u8> {
    let mode = m.mode();
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut perms = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let mut line = format!(
        "{kind}{perms} {:>3} {:<8} {:<8} {:>8} {:>10} ",
        m.nlink(),
        m.uid(),
        m.gid(),
        m.size(),
        m.mtime()
    )
    .into_bytes();
    line.extend_from_slice(name);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_with_only_the_fields_present() {
        for a in [
            Attrs::default(),
            Attrs {
                size: Some(1 << 40),
                uid_gid: Some((1000, 100)),
                permissions: Some(0o100644),
                times: Some((1, 2)),
            },
            Attrs {
                permissions: Some(0o755),
                ..Default::default()
            },
        ] {
            let mut w = Writer::new(ATTRS);
            w.attrs(&a);
            let packet = w.finish();
            let mut r = Reader::new(&packet[5..]);
            assert_eq!(r.attrs().unwrap(), a);
            assert_eq!(r.u8(), Err(Short));
        }
    }

    #[test]
    fn packets_carry_their_length_and_strings_theirs() {
        let mut w = Writer::new(HANDLE);
        w.u32(7).bytes(b"h1");
        let p = w.finish();
        assert_eq!(&p[..4], &(p.len() as u32 - 4).to_be_bytes());
        let mut r = Reader::new(&p[5..]);
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.bytes().unwrap(), b"h1");
        let mut short = Reader::new(&[0, 0, 0, 9, b'x']);
        assert_eq!(short.bytes(), Err(Short));
    }
}
