//! Content digests in the OCI form `sha256:<64 lowercase hex digits>`.
//!
//! Every crate passes digests as this type, never as strings, so a digest
//! that reached any crate has been validated once, here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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
    fn digests_are_json_strings_and_validated_on_the_way_in() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{EMPTY}\""));
        assert_eq!(
            serde_json::from_str::<Digest>(&format!("\"{EMPTY}\"")).unwrap(),
            d
        );
        let e = serde_json::from_str::<Digest>("\"sha256:nope\"").unwrap_err();
        assert!(e.to_string().contains("invalid digest"), "{e}");
    }
}
