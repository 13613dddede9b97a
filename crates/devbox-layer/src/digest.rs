//! Content digests in the OCI form `sha256:<64 lowercase hex digits>`, and
//! reader/writer adapters that hash a stream while it passes through.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

const ALGORITHM: &str = "sha256";
const PREFIX: &str = "sha256:";
const HEX_LEN: usize = 64;

/// A validated sha256 content digest, for example
/// `sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("invalid digest {input:?}: only sha256 digests are supported")]
    UnsupportedAlgorithm { input: String },
    #[error("invalid digest {input:?}: expected \"sha256:\" followed by 64 lowercase hex digits")]
    Malformed { input: String },
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_sha256(Sha256::digest(bytes).into())
    }

    /// The digest whose raw sha256 value is `raw`.
    pub fn from_sha256(raw: [u8; 32]) -> Digest {
        Digest(format!("{PREFIX}{}", hex::encode(raw)))
    }

    /// The 64 lowercase hex digits after the algorithm.
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// The algorithm name; always `sha256`.
    pub fn algorithm(&self) -> &str {
        ALGORITHM
    }

    /// The whole digest, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex)) = input.split_once(':') else {
            return Err(DigestError::Malformed {
                input: input.to_owned(),
            });
        };
        if algorithm != ALGORITHM {
            // A well-formed digest of another algorithm deserves its own message, so that
            // a client sending sha512 learns it is unsupported rather than malformed.
            let plausible = !algorithm.is_empty()
                && algorithm
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
            return Err(if plausible {
                DigestError::UnsupportedAlgorithm {
                    input: input.to_owned(),
                }
            } else {
                DigestError::Malformed {
                    input: input.to_owned(),
                }
            });
        }
        let valid_hex = hex.len() == HEX_LEN
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid_hex {
            return Err(DigestError::Malformed {
                input: input.to_owned(),
            });
        }
        Ok(Digest(input.to_owned()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Wraps a reader; counts and hashes every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The digest and length of everything read.
    pub fn finish(self) -> (Digest, u64) {
        (
            Digest::from_sha256(self.hasher.finalize().into()),
            self.bytes,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R> fmt::Debug for HashingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashingReader")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// Wraps a writer; counts and hashes every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The inner writer, and the digest and length of everything written.
    pub fn finish(self) -> (W, Digest, u64) {
        (
            self.inner,
            Digest::from_sha256(self.hasher.finalize().into()),
            self.bytes,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Only the bytes the inner writer accepted are hashed, so a short write
        // followed by a retry never hashes anything twice.
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W> fmt::Debug for HashingWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashingWriter")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays_a_valid_digest() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.algorithm(), "sha256");
        assert_eq!(d.hex(), &EMPTY[7..]);
        assert_eq!(d, Digest::of(b""));
    }

    #[test]
    fn rejects_malformed_digests_quoting_the_input() {
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        let short = &EMPTY[..EMPTY.len() - 1];
        let long = format!("{EMPTY}0");
        let not_hex = EMPTY.replace('e', "g");
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            upper.as_str(),
            short,
            &long,
            &not_hex,
        ] {
            let err = bad.parse::<Digest>().unwrap_err();
            assert_eq!(
                err,
                DigestError::Malformed {
                    input: bad.to_owned()
                },
                "{bad}"
            );
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn rejects_other_algorithms_as_unsupported() {
        let input = format!("sha512:{}", "0".repeat(128));
        let err = input.parse::<Digest>().unwrap_err();
        assert_eq!(
            err,
            DigestError::UnsupportedAlgorithm {
                input: input.clone()
            }
        );
        assert!(err.to_string().contains("only sha256"));
    }

    #[test]
    fn hashing_adapters_count_and_hash_the_stream() {
        let data = b"hello layer".repeat(1000);
        let mut reader = HashingReader::new(&data[..]);
        let mut sink = Vec::new();
        io::copy(&mut reader, &mut sink).unwrap();
        assert_eq!(reader.finish(), (Digest::of(&data), data.len() as u64));

        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(&data).unwrap();
        let (inner, digest, n) = writer.finish();
        assert_eq!(inner, data);
        assert_eq!(digest, Digest::of(&data));
        assert_eq!(n, data.len() as u64);
    }
}
