//! Resource limits of a devbox (CPU, memory, processes) and byte sizes as
//! people write them (`512MiB`, `2G`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A number of bytes that parses from and prints as a human size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

/// A size or resource value was malformed or out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResourceError {
    #[error(
        "invalid size {0:?}: expected a number with an optional unit (B, KiB, MiB, GiB, TiB, K, M, G, T)"
    )]
    Size(String),
    #[error("cpus must be between {min} and {max}, got {got}")]
    Cpus { min: f64, max: f64, got: f64 },
    #[error("memory must be between {min} and {max}, got {got}")]
    Memory {
        min: ByteSize,
        max: ByteSize,
        got: ByteSize,
    },
    #[error("pids must be between {min} and {max}, got {got}")]
    Pids { min: u32, max: u32, got: u32 },
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

impl ByteSize {
    pub const fn mib(n: u64) -> Self {
        Self(n * MIB)
    }
    pub const fn gib(n: u64) -> Self {
        Self(n * GIB)
    }
}

impl FromStr for ByteSize {
    type Err = ResourceError;
    fn from_str(s: &str) -> Result<Self, ResourceError> {
        let err = || ResourceError::Size(s.to_owned());
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let num: f64 = num.parse().map_err(|_| err())?;
        let mult = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "ki" | "kib" => KIB,
            "m" | "mb" => 1000_u64.pow(2),
            "mi" | "mib" => MIB,
            "g" | "gb" => 1000_u64.pow(3),
            "gi" | "gib" => GIB,
            "t" | "tb" => 1000_u64.pow(4),
            "ti" | "tib" => TIB,
            _ => return Err(err()),
        };
        let bytes = num * mult as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(err());
        }
        Ok(Self(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    /// Prints the largest binary unit that divides the value exactly, or one
    /// decimal place of the largest unit below it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, size) in [("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
            if b >= size {
                return if b.is_multiple_of(size) {
                    write!(f, "{}{unit}", b / size)
                } else {
                    write!(f, "{:.1}{unit}", b as f64 / size as f64)
                };
            }
        }
        write!(f, "{b}B")
    }
}

/// The limits a devbox runs under.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resources {
    /// CPU quota in cores (fractions allowed).
    pub cpus: f64,
    /// Memory limit in bytes.
    #[schema(value_type = u64)]
    pub memory: ByteSize,
    /// Maximum number of processes.
    pub pids: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpus: 1.0,
            memory: ByteSize::gib(1),
            pids: 4096,
        }
    }
}

/// What the host can grant; the server fills it from the machine it runs on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceLimits {
    pub max_cpus: f64,
    pub max_memory: ByteSize,
}

impl Resources {
    pub const MIN_CPUS: f64 = 0.01;
    pub const MIN_MEMORY: ByteSize = ByteSize::mib(16);
    pub const MIN_PIDS: u32 = 16;
    pub const MAX_PIDS: u32 = 4_194_304;

    /// Checks every value against the fixed minimums and the host's maximums.
    pub fn validate(&self, limits: &ResourceLimits) -> Result<(), ResourceError> {
        if !(self.cpus.is_finite() && self.cpus >= Self::MIN_CPUS && self.cpus <= limits.max_cpus) {
            return Err(ResourceError::Cpus {
                min: Self::MIN_CPUS,
                max: limits.max_cpus,
                got: self.cpus,
            });
        }
        if self.memory < Self::MIN_MEMORY || self.memory > limits.max_memory {
            return Err(ResourceError::Memory {
                min: Self::MIN_MEMORY,
                max: limits.max_memory,
                got: self.memory,
            });
        }
        if self.pids < Self::MIN_PIDS || self.pids > Self::MAX_PIDS {
            return Err(ResourceError::Pids {
                min: Self::MIN_PIDS,
                max: Self::MAX_PIDS,
                got: self.pids,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!("512MiB".parse(), Ok(ByteSize(512 * MIB)));
        assert_eq!("512mi".parse(), Ok(ByteSize(512 * MIB)));
        assert_eq!("2G".parse(), Ok(ByteSize(2_000_000_000)));
        assert_eq!("1.5GiB".parse(), Ok(ByteSize(3 * GIB / 2)));
        assert_eq!("4096".parse(), Ok(ByteSize(4096)));
        for bad in ["", "MiB", "12 parsecs", "-1G", "1e999"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_print_readably() {
        assert_eq!(ByteSize(512 * MIB).to_string(), "512MiB");
        assert_eq!(ByteSize(3 * GIB / 2).to_string(), "1.5GiB");
        assert_eq!(ByteSize(10).to_string(), "10B");
    }

    #[test]
    fn resources_are_checked_against_the_host() {
        let host = ResourceLimits {
            max_cpus: 2.0,
            max_memory: ByteSize::gib(4),
        };
        assert!(Resources::default().validate(&host).is_ok());
        let too_many = Resources {
            cpus: 3.0,
            ..Resources::default()
        };
        assert!(matches!(
            too_many.validate(&host),
            Err(ResourceError::Cpus { .. })
        ));
        let too_big = Resources {
            memory: ByteSize::gib(5),
            ..Resources::default()
        };
        assert!(matches!(
            too_big.validate(&host),
            Err(ResourceError::Memory { .. })
        ));
        let too_small = Resources {
            memory: ByteSize::mib(1),
            ..Resources::default()
        };
        assert!(too_small.validate(&host).is_err());
        let nan = Resources {
            cpus: f64::NAN,
            ..Resources::default()
        };
        assert!(nan.validate(&host).is_err());
        let pids = Resources {
            pids: 1,
            ..Resources::default()
        };
        assert!(pids.validate(&host).is_err());
    }
}
