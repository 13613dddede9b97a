//! The byte-level pieces of the index format: LEB128 varints, zigzag for
//! signed values, and reader/writer wrappers that keep a CRC32 of every byte
//! that passes, so the trailer can check the whole file.

use std::io::{self, BufReader, BufWriter, Read, Write};

use flate2::Crc;

/// A buffered writer that checksums what it writes.
#[derive(Debug)]
pub(super) struct CrcWriter<W: Write> {
    out: BufWriter<W>,
    crc: Crc,
}

impl<W: Write> CrcWriter<W> {
    pub(super) fn new(out: W) -> Self {
        CrcWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            crc: Crc::new(),
        }
    }

    pub(super) fn bytes(&mut self, data: &[u8]) -> io::Result<()> {
        self.crc.update(data);
        self.out.write_all(data)
    }

    pub(super) fn u8(&mut self, v: u8) -> io::Result<()> {
        self.bytes(&[v])
    }

    pub(super) fn varint(&mut self, mut v: u64) -> io::Result<()> {
        let mut buf = [0u8; 10];
        let mut n = 0;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                buf[n] = byte;
                n += 1;
                break;
            }
            buf[n] = byte | 0x80;
            n += 1;
        }
        self.bytes(&buf[..n])
    }

    pub(super) fn signed(&mut self, v: i64) -> io::Result<()> {
        self.varint(((v << 1) ^ (v >> 63)) as u64)
    }

    /// The checksum of everything written so far.
    pub(super) fn crc(&self) -> u32 {
        self.crc.sum()
    }

    /// Writes bytes that are not part of the checksum (the checksum itself), then flushes.
    pub(super) fn finish(mut self, trailer: &[u8]) -> io::Result<W> {
        self.out.write_all(trailer)?;
        self.out.flush()?;
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// Why a read of the index format failed.
#[derive(Debug)]
pub(super) enum ReadError {
    Io(io::Error),
    /// The file ended in the middle of a record.
    Truncated,
    /// A varint longer than 64 bits.
    Overflow,
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ReadError::Truncated
        } else {
            ReadError::Io(e)
        }
    }
}

/// A buffered reader that checksums what it reads.
#[derive(Debug)]
pub(super) struct CrcReader<R: Read> {
    input: BufReader<R>,
    crc: Crc,
}

impl<R: Read> CrcReader<R> {
    pub(super) fn new(input: R) -> Self {
        CrcReader {
            input: BufReader::with_capacity(64 * 1024, input),
            crc: Crc::new(),
        }
    }

    pub(super) fn exact(&mut self, buf: &mut [u8]) -> Result<(), ReadError> {
        self.input.read_exact(buf)?;
        self.crc.update(buf);
        Ok(())
    }

    pub(super) fn u8(&mut self) -> Result<u8, ReadError> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    pub(super) fn varint(&mut self) -> Result<u64, ReadError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(ReadError::Overflow);
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ReadError::Overflow)
    }

    pub(super) fn signed(&mut self) -> Result<i64, ReadError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// Appends `len` bytes to `out`.
    pub(super) fn append(&mut self, out: &mut Vec<u8>, len: usize) -> Result<(), ReadError> {
        let start = out.len();
        out.resize(start + len, 0);
        self.exact(&mut out[start..])
    }

    pub(super) fn crc(&self) -> u32 {
        self.crc.sum()
    }

    /// Reads bytes outside the checksum (the checksum itself).
    pub(super) fn unchecked(&mut self, buf: &mut [u8]) -> Result<(), ReadError> {
        self.input.read_exact(buf)?;
        Ok(())
    }

    /// Whether the input has ended.
    pub(super) fn at_end(&mut self) -> Result<bool, ReadError> {
        use std::io::BufRead;
        Ok(self.input.fill_buf()?.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_signed_values_round_trip() {
        let unsigned = [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let signed = [0, -1, 1, i64::MIN, i64::MAX, -1_700_000_000_123_456_789];
        let mut w = CrcWriter::new(Vec::new());
        for v in unsigned {
            w.varint(v).unwrap();
        }
        for v in signed {
            w.signed(v).unwrap();
        }
        let crc = w.crc();
        let bytes = w.finish(&[]).unwrap();
        let mut r = CrcReader::new(&bytes[..]);
        for v in unsigned {
            assert_eq!(r.varint().unwrap(), v);
        }
        for v in signed {
            assert_eq!(r.signed().unwrap(), v);
        }
        assert_eq!(r.crc(), crc);
        assert!(r.at_end().unwrap());
    }

    #[test]
    fn overlong_varints_are_refused() {
        let bytes = [0xffu8; 11];
        let mut r = CrcReader::new(&bytes[..]);
        assert!(matches!(r.varint(), Err(ReadError::Overflow)));
        let mut r = CrcReader::new(&[0x80u8][..]);
        assert!(matches!(r.varint(), Err(ReadError::Truncated)));
    }
}
