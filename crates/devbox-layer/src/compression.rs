//! Layer compression: detection by magic bytes, decompression,
//! and the one-pass "hash, compress, hash" writer that turns a layer tar into
//! a blob, compressing on all cores.

mod gzip;

use std::fmt;
use std::io::{self, BufReader, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::digest::{Digest, HashingWriter};
use gzip::ParallelGzip;

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

/// The number of threads [`write_layer`] compresses with: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// In one streaming pass, reads the uncompressed layer tar `tar`, hashes it
/// (the diffID), compresses it with `c` on [`default_threads`] threads,
/// hashes the compressed bytes (the blob digest) and writes them to `out`,
/// which is flushed at the end.
pub fn write_layer<R: Read, W: Write>(
    tar: R,
    out: W,
    c: Compression,
) -> Result<LayerDigests, CompressionError> {
    write_layer_threads(tar, out, c, default_threads())
}

/// [`write_layer`] with `threads` compression threads (at least one is used).
/// The blob is the same whatever the number.
pub fn write_layer_threads<R: Read, W: Write>(
    mut tar: R,
    out: W,
    c: Compression,
    threads: usize,
) -> Result<LayerDigests, CompressionError> {
    let mut writer = LayerWriter::new(out, c, threads)?;
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = match tar.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(CompressionError::Read { source }),
        };
        writer
            .write_all(&buf[..n])
            .map_err(|source| CompressionError::Write {
                compression: c,
                source,
            })?;
    }
    let (_, digests) = writer.finish()?;
    Ok(digests)
}

/// The writing half of [`write_layer`], for a producer that writes the tar
/// itself (a pack): whatever is written is hashed as the tar, compressed,
/// hashed again as the blob, and written to the inner writer, memory staying
/// at a few chunks per thread. [`LayerWriter::finish`] ends the blob.
/// Compressed blobs reach the inner writer in large pieces; uncompressed
/// ones as they come, so give those a buffered writer.
///
/// A commit packs straight into it, with no pipe or extra thread:
/// `pack_changes(upper, previous, &ignore, watermark, &mut layer_writer, index)`.
pub struct LayerWriter<W: Write> {
    compression: Compression,
    tar: Sha256,
    tar_bytes: u64,
    sink: Sink<W>,
}

enum Sink<W: Write> {
    None(HashingWriter<W>),
    Gzip(ParallelGzip<HashingWriter<W>>),
    /// Zstd sees its input in whole blocks, so the blob does not depend on
    /// how the producer happens to split its writes.
    Zstd {
        encoder: zstd::stream::write::Encoder<'static, HashingWriter<W>>,
        block: Vec<u8>,
    },
}

impl<W: Write> LayerWriter<W> {
    /// A writer compressing with `c` on `threads` threads (at least one).
    pub fn new(out: W, c: Compression, threads: usize) -> Result<Self, CompressionError> {
        let threads = threads.max(1);
        let blob = HashingWriter::new(out);
        let sink = match c {
            Compression::None => Sink::None(blob),
            Compression::Gzip => Sink::Gzip(ParallelGzip::new(blob, GZIP_LEVEL, threads)),
            Compression::Zstd => {
                let encoder =
                    zstd_encoder(blob, threads).map_err(|source| CompressionError::Write {
                        compression: c,
                        source,
                    })?;
                Sink::Zstd {
                    encoder,
                    block: Vec::with_capacity(COPY_BUFFER),
                }
            }
        };
        Ok(LayerWriter {
            compression: c,
            tar: Sha256::new(),
            tar_bytes: 0,
            sink,
        })
    }

    /// Ends the blob, flushes the inner writer and returns it with the digests.
    pub fn finish(self) -> Result<(W, LayerDigests), CompressionError> {
        let c = self.compression;
        let write_err = |source| CompressionError::Write {
            compression: c,
            source,
        };
        let blob = match self.sink {
            Sink::None(blob) => blob,
            Sink::Gzip(gzip) => gzip.finish().map_err(write_err)?,
            Sink::Zstd { mut encoder, block } => {
                encoder.write_all(&block).map_err(write_err)?;
                encoder.finish().map_err(write_err)?
            }
        };
        let (mut out, digest, size) = blob.finish();
        out.flush().map_err(write_err)?;
        let digests = LayerDigests {
            diff_id: Digest::from_sha256(self.tar.finalize().into()),
            digest,
            size,
            uncompressed_size: self.tar_bytes,
        };
        Ok((out, digests))
    }
}

impl<W: Write> Write for LayerWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.sink {
            Sink::None(w) => w.write_all(buf)?,
            Sink::Gzip(w) => w.write_all(buf)?,
            Sink::Zstd { encoder, block } => {
                let mut rest = buf;
                while !rest.is_empty() {
                    let n = rest.len().min(COPY_BUFFER - block.len());
                    block.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    if block.len() == COPY_BUFFER {
                        encoder.write_all(block)?;
                        block.clear();
                    }
                }
            }
        }
        self.tar.update(buf);
        self.tar_bytes += buf.len() as u64;
        Ok(buf.len())
    }

    /// Compressed output is only complete at [`LayerWriter::finish`]; this
    /// flushes nothing half-done.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> fmt::Debug for LayerWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerWriter")
            .field("compression", &self.compression)
            .field("tar_bytes", &self.tar_bytes)
            .finish_non_exhaustive()
    }
}

/// A zstd encoder using its own worker threads. Even one thread goes
/// through zstd's multithreaded mode, whose output depends on the input
/// alone, never on the number of workers.
fn zstd_encoder<W: Write>(
    out: W,
    threads: usize,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
    encoder.multithread(u32::try_from(threads).unwrap_or(u32::MAX))?;
    Ok(encoder)
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
    fn blobs_do_not_depend_on_the_number_of_threads() {
        // Several gzip chunks, and several zstd jobs (four windows each).
        let data: Vec<u8> = (0..20 << 20)
            .map(|i: usize| ((i * 31) ^ (i >> 9) ^ (i >> 20)) as u8)
            .collect();
        for c in [Compression::Gzip, Compression::Zstd] {
            let one = write_layer_threads(&data[..], Vec::new(), c, 1).unwrap();
            let many = write_layer_threads(&data[..], Vec::new(), c, 3).unwrap();
            assert_eq!(many, one, "{c}");
        }
    }

    #[test]
    fn a_layer_writer_gives_what_write_layer_gives() {
        let data = b"0123456789abcdef".repeat(50_000);
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut reference = Vec::new();
            let expected = write_layer(&data[..], &mut reference, c).unwrap();
            let mut w = LayerWriter::new(Vec::new(), c, 2).unwrap();
            for piece in data.chunks(777) {
                w.write_all(piece).unwrap();
            }
            let (blob, digests) = w.finish().unwrap();
            assert_eq!(digests, expected, "{c}");
            assert!(blob == reference, "{c}");
            let mut back = Vec::new();
            decompress(&blob[..], c)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "{c}");
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
