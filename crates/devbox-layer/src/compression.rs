//! Layer compression: detection by magic bytes, decompression,
//! and the one-pass "hash, compress, hash" writer that turns a layer tar into a blob.

use std::fmt;
use std::io::{self, BufReader, Read, Write};

use crate::digest::{Digest, HashingReader, HashingWriter};

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    None,
    /// The default: every registry and client understands gzip layers.
    #[default]
    Gzip,
    Zstd,
}

/// Gzip level used when writing layers. Level 1 is several times faster than the
/// usual level 6 for a modest size cost, and commit latency matters more here.
const GZIP_LEVEL: u32 = 1;
/// Zstd's own default level: fast, and already smaller than gzip.
const ZSTD_LEVEL: i32 = 3;
const COPY_BUFFER: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    #[error("cannot start {compression} decompression: {source}")]
    Decoder {
        compression: Compression,
        source: io::Error,
    },
    #[error("reading the layer tar: {source}")]
    Read { source: io::Error },
    #[error("writing the {compression} layer blob: {source}")]
    Write {
        compression: Compression,
        source: io::Error,
    },
}

/// The digests of a layer written by [`write_layer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// The sha256 of the uncompressed tar (the image config's diffID).
    pub diff_id: Digest,
    /// The sha256 of the blob as written (the manifest's layer digest).
    pub digest: Digest,
    /// The size of the blob as written.
    pub size: u64,
    /// The size of the uncompressed tar.
    pub uncompressed_size: u64,
}

impl Compression {
    /// The compression of a blob starting with `magic` (a few leading bytes;
    /// four are enough). Anything unrecognised is taken as an uncompressed tar.
    pub fn detect(magic: &[u8]) -> Compression {
        match magic {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            // A zstd stream may begin with a skippable frame (magic 0x184D2A5?).
            [b0, 0x2a, 0x4d, 0x18, ..] if b0 & 0xf0 == 0x50 => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// A reader yielding the decompressed content of `r`.
pub fn decompress<'a, R: Read + 'a>(
    r: R,
    c: Compression,
) -> Result<Box<dyn Read + 'a>, CompressionError> {
    Ok(match c {
        Compression::None => Box::new(r),
        // Multi-member gzip streams are valid layers (pigz and concatenation produce them).
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(r))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r).map_err(|source| {
            CompressionError::Decoder {
                compression: c,
                source,
            }
        })?),
    })
}

/// In one streaming pass, reads the uncompressed layer tar `tar`, hashes it
/// (the diffID), compresses it with `c`, hashes the compressed bytes (the blob
/// digest) and writes them to `out`, which is flushed at the end.
pub fn write_layer<R: Read, W: Write>(
    tar: R,
    out: W,
    c: Compression,
) -> Result<LayerDigests, CompressionError> {
    let write_err = |source| CompressionError::Write {
        compression: c,
        source,
    };
    let mut input = HashingReader::new(tar);
    let blob = HashingWriter::new(out);
    let blob = match c {
        Compression::None => {
            let mut w = blob;
            copy(&mut input, &mut w, c)?;
            w
        }
        Compression::Gzip => {
            let level = flate2::Compression::new(GZIP_LEVEL);
            let mut enc = flate2::write::GzEncoder::new(blob, level);
            copy(&mut input, &mut enc, c)?;
            enc.finish().map_err(write_err)?
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(blob, ZSTD_LEVEL).map_err(write_err)?;
            copy(&mut input, &mut enc, c)?;
            enc.finish().map_err(write_err)?
        }
    };
    let (mut out, digest, size) = blob.finish();
    out.flush().map_err(write_err)?;
    let (diff_id, uncompressed_size) = input.finish();
    Ok(LayerDigests {
        diff_id,
        digest,
        size,
        uncompressed_size,
    })
}

/// Copies `r` to `w`, telling read errors (the tar source) from write errors (the blob).
///
/// The compressor sees the input in whole buffers whatever sizes the reader
/// returns: deflate's output depends on where its input is split, and a blob
/// digest must depend on the content alone.
fn copy<R: Read, W: Write>(r: &mut R, w: &mut W, c: Compression) -> Result<(), CompressionError> {
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match r.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(CompressionError::Read { source }),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        w.write_all(&buf[..filled])
            .map_err(|source| CompressionError::Write {
                compression: c,
                source,
            })?;
        if filled < buf.len() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns at most `step` bytes per read, like a pipe would.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn blob_digests_do_not_depend_on_how_the_input_is_read() {
        let data: Vec<u8> = (0..3 * COPY_BUFFER + 17)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        for c in [Compression::Gzip, Compression::Zstd] {
            let whole = write_layer(&data[..], Vec::new(), c).unwrap();
            for step in [1usize, 4093, 65536] {
                let trickled = write_layer(Trickle { data: &data, step }, Vec::new(), c).unwrap();
                assert_eq!(
                    trickled.digest, whole.digest,
                    "{c} with reads of {step} bytes"
                );
                assert_eq!(trickled.diff_id, whole.diff_id);
            }
        }
    }

    #[test]
    fn gzip_is_the_default() {
        assert_eq!(Compression::default(), Compression::Gzip);
    }

    #[test]
    fn detects_compression_by_magic() {
        assert_eq!(
            Compression::detect(&[0x1f, 0x8b, 0x08, 0x00]),
            Compression::Gzip
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(
            Compression::detect(&[0x50, 0x2a, 0x4d, 0x18]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"etc/passwd\0"), Compression::None);
        assert_eq!(Compression::detect(&[0x1f]), Compression::None);
        assert_eq!(Compression::detect(&[]), Compression::None);

        let data = b"some tar bytes".repeat(100);
        for c in [Compression::Gzip, Compression::Zstd] {
            let mut blob = Vec::new();
            write_layer(&data[..], &mut blob, c).unwrap();
            assert_eq!(Compression::detect(&blob), c);
        }
    }

    #[test]
    fn uncompressed_layer_has_equal_digests() {
        let data = b"plain".repeat(10);
        let mut blob = Vec::new();
        let d = write_layer(&data[..], &mut blob, Compression::None).unwrap();
        assert_eq!(blob, data);
        assert_eq!(d.diff_id, d.digest);
        assert_eq!(d.size, 50);
        assert_eq!(d.uncompressed_size, 50);
    }

    #[test]
    fn read_errors_are_reported_as_such() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let err = write_layer(Failing, Vec::new(), Compression::Gzip).unwrap_err();
        assert!(matches!(err, CompressionError::Read { .. }), "{err}");
        assert!(err.to_string().contains("disk on fire"));
    }
}
