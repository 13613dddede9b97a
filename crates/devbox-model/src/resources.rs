//! Resource limits of a devbox (CPU, memory, processes) and byte sizes as
//! people write them (`512MiB`, `64m`, `2G`).

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
        "invalid size {0:?}: expected a number with an optional unit, all of them powers of 1024 \
         as in `docker run -m`: B; K, KB, KiB; M, MB, MiB; G, GB, GiB; T, TB, TiB (any case)"
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

/// Parses docker's spelling of sizes (`docker run -m 64m`), where every unit
/// is binary whatever its case or suffix: `64m`, `64M`, `64MB` and `64MiB`
/// are all 64 MiB. Decimal units are deliberately not offered: a memory
/// limit written `64MB` by a docker user means mebibytes, and giving 61 MiB
/// instead would surprise exactly the people this spelling is for.
impl FromStr for ByteSize {
    type Err = ResourceError;
    fn from_str(s: &str) -> Result<Self, ResourceError> {
        let err = || ResourceError::Size(s.to_owned());
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if !num.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err());
        }
        let num: f64 = num.parse().map_err(|_| err())?;
        let mult = match unit.trim_start().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "ki" | "kib" => KIB,
            "m" | "mb" | "mi" | "mib" => MIB,
            "g" | "gb" | "gi" | "gib" => GIB,
            "t" | "tb" | "ti" | "tib" => TIB,
            _ => return Err(err()),
        };
        let bytes = num * mult as f64;
        if !bytes.is_finite() || bytes > u64::MAX as f64 {
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
    fn every_unit_is_binary_whatever_its_spelling() {
        let cases: &[(&str, u64)] = &[
            ("4096", 4096),
            ("10b", 10),
            ("10B", 10),
            ("8k", 8 * KIB),
            ("8K", 8 * KIB),
            ("8kb", 8 * KIB),
            ("8KB", 8 * KIB),
            ("8ki", 8 * KIB),
            ("8KiB", 8 * KIB),
            ("8kib", 8 * KIB),
            ("64m", 64 * MIB),
            ("64M", 64 * MIB),
            ("64mb", 64 * MIB),
            ("64MB", 64 * MIB),
            ("64Mb", 64 * MIB),
            ("64mi", 64 * MIB),
            ("64Mi", 64 * MIB),
            ("64MiB", 64 * MIB),
            ("64mib", 64 * MIB),
            ("64MIB", 64 * MIB),
            ("2g", 2 * GIB),
            ("2G", 2 * GIB),
            ("2gb", 2 * GIB),
            ("2GB", 2 * GIB),
            ("2gi", 2 * GIB),
            ("2GiB", 2 * GIB),
            ("1t", TIB),
            ("1T", TIB),
            ("1tb", TIB),
            ("1TB", TIB),
            ("1ti", TIB),
            ("1TiB", TIB),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse(), Ok(ByteSize(*bytes)), "{text}");
        }
    }

    #[test]
    fn fractions_and_spaces_are_accepted() {
        assert_eq!("1.5GiB".parse(), Ok(ByteSize(3 * GIB / 2)));
        assert_eq!("0.5g".parse(), Ok(ByteSize(GIB / 2)));
        assert_eq!(" 512 MiB ".parse(), Ok(ByteSize(512 * MIB)));
        assert_eq!("64 m".parse(), Ok(ByteSize(64 * MIB)));
    }

    #[test]
    fn malformed_sizes_are_refused_with_the_list_of_units() {
        for bad in [
            "",
            "MiB",
            "m",
            "12 parsecs",
            "-1G",
            "+1G",
            ".5G",
            "1e999",
            "1.2.3M",
            "64mm",
            "64 k b",
            "1PiB",
            "64MiBs",
        ] {
            let e = bad.parse::<ByteSize>().unwrap_err().to_string();
            assert!(e.contains("invalid size"), "{bad}: {e}");
            assert!(e.contains("KB, KiB") && e.contains("MB, MiB"), "{e}");
            assert!(e.contains("1024"), "{e}");
        }
        assert!("99999999999T".parse::<ByteSize>().is_err());
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
