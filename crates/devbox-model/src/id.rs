//! Devbox identifiers.
//!
//! A devbox has a user-chosen name, which may be reused after deletion, and an
//! ID that never is. The ID names everything the devbox owns on disk and in the
//! kernel (directories, containers, cgroups, network devices), so a leftover
//! of a deleted devbox can never be mistaken for a new devbox of the same name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Sixteen lowercase hex digits (64 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DevboxId(String);

/// The ID was not sixteen lowercase hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid devbox id {0:?}: expected 16 lowercase hex digits")]
pub struct InvalidId(pub String);

impl DevboxId {
    /// Number of hex digits in an ID.
    pub const LEN: usize = 16;

    /// Builds an ID from 8 random bytes supplied by the caller (this crate does no IO).
    pub fn from_random(bytes: [u8; 8]) -> Self {
        let mut s = String::with_capacity(Self::LEN);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        Self(s)
    }

    /// The ID as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first twelve digits: short enough for Linux interface names (15
    /// bytes) with a three-letter prefix, and still unique in practice.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl FromStr for DevboxId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == Self::LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId(s.to_owned()))
        }
    }
}

impl TryFrom<String> for DevboxId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DevboxId> for String {
    fn from(id: DevboxId) -> String {
        id.0
    }
}

impl fmt::Display for DevboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_round_trip() {
        let id = DevboxId::from_random([0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 0xff]);
        assert_eq!(id.as_str(), "deadbeef000102ff");
        assert_eq!(id.short(), "deadbeef0001");
        assert_eq!(id.as_str().parse::<DevboxId>(), Ok(id));
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "DEADBEEF000102FF",
            "deadbeef000102f",
            "deadbeef000102fff",
            "../../etc/passw",
        ] {
            assert!(bad.parse::<DevboxId>().is_err(), "{bad}");
        }
    }
}
