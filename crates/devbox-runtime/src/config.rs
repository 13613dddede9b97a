//! Configuration of the local runtime: where it keeps its state, which runc
//! it runs, and the network its devboxes live on.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;

/// The default devbox network. It must not collide with podman's default
/// (10.88.0.0/16) or Docker's (172.17.0.0/16), which often run on the same
/// machine.
pub const DEFAULT_SUBNET: &str = "10.77.0.0/16";

/// The default name of the bridge every devbox is attached to.
pub const DEFAULT_BRIDGE: &str = "devbox0";

/// The default of [`RuntimeConfig::console_log_max`]: 8 MiB.
pub const DEFAULT_CONSOLE_LOG_MAX: u64 = 8 << 20;

/// Where and how the local runtime works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// State directory, e.g. `/var/lib/devbox/runtime`.
    pub root: PathBuf,
    /// The runc binary: a path, or a name looked up on `PATH`.
    pub runc: PathBuf,
    /// The devbox network.
    pub subnet: Subnet,
    /// The bridge devboxes are attached to; its address is the gateway.
    pub bridge: String,
    /// The most bytes a devbox's console log keeps, in two files
    /// (`console.log.1` and `console.log`, each at most half of it); older
    /// output is dropped. Default [`DEFAULT_CONSOLE_LOG_MAX`], at least 2.
    pub console_log_max: u64,
}

impl RuntimeConfig {
    /// The defaults: `runc` from `PATH`, [`DEFAULT_SUBNET`], [`DEFAULT_BRIDGE`],
    /// [`DEFAULT_CONSOLE_LOG_MAX`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            runc: PathBuf::from("runc"),
            subnet: DEFAULT_SUBNET.parse().expect("the default subnet is valid"),
            bridge: DEFAULT_BRIDGE.to_owned(),
            console_log_max: DEFAULT_CONSOLE_LOG_MAX,
        }
    }
}

/// Checks a bridge name: it becomes a network interface name and part of an
/// iptables chain name.
pub(crate) fn validate_bridge(name: &str) -> Result<(), RuntimeError> {
    let err = |reason| RuntimeError::InvalidBridge {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > 15 {
        return Err(err("an interface name has 1 to 15 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(err("only letters, digits, '-' and '_' are allowed"));
    }
    Ok(())
}

/// An IPv4 network with a prefix between /8 and /28.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    pub const MIN_PREFIX: u8 = 8;
    pub const MAX_PREFIX: u8 = 28;

    /// The network address (all host bits zero).
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// The broadcast address (all host bits one).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask())
    }

    /// The first host address, held by the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// Whether `ip` can be given to a devbox: in the network, and neither the
    /// network, broadcast nor gateway address.
    pub fn is_devbox_address(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.network && ip != self.broadcast() && ip != self.gateway()
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let mask = self.mask() & other.mask();
        u32::from(self.network) & mask == u32::from(other.network) & mask
    }

    /// The lowest devbox address not in `used`, or `None` when the network is
    /// full.
    pub fn allocate(&self, used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let first = u32::from(self.gateway()) + 1;
        let last = u32::from(self.broadcast()) - 1;
        (first..=last)
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))
    }
}

impl FromStr for Subnet {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self, RuntimeError> {
        let err = |reason| RuntimeError::InvalidSubnet {
            input: s.to_owned(),
            reason,
        };
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| err("expected an IPv4 network like 10.77.0.0/16"))?;
        if addr.contains(':') {
            return Err(err("only IPv4 networks are supported"));
        }
        let network: Ipv4Addr = addr
            .parse()
            .map_err(|_| err("the address is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| err("the prefix length is not a number"))?;
        if !(Self::MIN_PREFIX..=Self::MAX_PREFIX).contains(&prefix) {
            return Err(err("the prefix length must be between 8 and 28"));
        }
        let subnet = Self { network, prefix };
        if u32::from(network) & !subnet.mask() != 0 {
            return Err(err("the host bits of the address must be zero"));
        }
        Ok(subnet)
    }
}

impl TryFrom<String> for Subnet {
    type Error = RuntimeError;
    fn try_from(s: String) -> Result<Self, RuntimeError> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_parse_and_print() {
        let s: Subnet = "10.77.0.0/16".parse().unwrap();
        assert_eq!(s.to_string(), "10.77.0.0/16");
        assert_eq!(s.gateway(), ip("10.77.0.1"));
        assert_eq!(s.broadcast(), ip("10.77.255.255"));
        assert!(s.contains(ip("10.77.3.4")));
        assert!(!s.contains(ip("10.78.0.1")));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"10.77.0.0/16\"");
        assert_eq!(serde_json::from_str::<Subnet>(&json).unwrap(), s);
    }

    #[test]
    fn bad_subnets_are_refused_with_a_reason() {
        for (bad, reason) in [
            ("10.77.0.0", "expected"),
            ("10.77.0.1/16", "host bits"),
            ("10.77.0.0/7", "between 8 and 28"),
            ("10.77.0.0/29", "between 8 and 28"),
            ("fd00::/64", "IPv4"),
            ("10.77.0/16", "not an IPv4"),
            ("10.77.0.0/x", "not a number"),
        ] {
            let e = bad.parse::<Subnet>().unwrap_err().to_string();
            assert!(e.contains(reason) && e.contains(bad), "{bad}: {e}");
        }
        assert!("10.0.0.0/8".parse::<Subnet>().is_ok());
        assert!("10.0.0.16/28".parse::<Subnet>().is_ok());
    }

    #[test]
    fn allocation_takes_the_lowest_free_host_address() {
        let s: Subnet = "10.78.0.0/24".parse().unwrap();
        let mut used = HashSet::new();
        assert_eq!(s.allocate(&used), Some(ip("10.78.0.2")));
        used.insert(ip("10.78.0.2"));
        used.insert(ip("10.78.0.4"));
        assert_eq!(s.allocate(&used), Some(ip("10.78.0.3")));
        // The gateway being in `used` changes nothing: it is never handed out.
        used.insert(ip("10.78.0.1"));
        used.insert(ip("10.78.0.3"));
        assert_eq!(s.allocate(&used), Some(ip("10.78.0.5")));
    }

    #[test]
    fn a_full_network_allocates_nothing_and_never_the_broadcast() {
        let s: Subnet = "10.0.0.16/28".parse().unwrap();
        let mut used = HashSet::new();
        let mut got = Vec::new();
        while let Some(ip) = s.allocate(&used) {
            assert!(s.is_devbox_address(ip), "{ip}");
            used.insert(ip);
            got.push(ip);
        }
        assert_eq!(got.len(), 13); // 16 - network - broadcast - gateway
        assert_eq!(got.first(), Some(&ip("10.0.0.18")));
        assert_eq!(got.last(), Some(&ip("10.0.0.30")));
    }

    #[test]
    fn the_default_subnet_avoids_podman_and_docker() {
        let ours: Subnet = DEFAULT_SUBNET.parse().unwrap();
        for theirs in ["10.88.0.0/16", "172.17.0.0/16"] {
            assert!(!ours.overlaps(&theirs.parse().unwrap()), "{theirs}");
        }
        assert!(ours.overlaps(&"10.77.5.0/24".parse().unwrap()));
        assert!(ours.overlaps(&"10.0.0.0/8".parse().unwrap()));
    }

    #[test]
    fn devbox_addresses_exclude_the_special_ones() {
        let s: Subnet = "10.78.0.0/24".parse().unwrap();
        for special in ["10.78.0.0", "10.78.0.1", "10.78.0.255", "10.79.0.2"] {
            assert!(!s.is_devbox_address(ip(special)), "{special}");
        }
        assert!(s.is_devbox_address(ip("10.78.0.2")));
    }

    #[test]
    fn bridge_names_are_interface_names() {
        assert!(validate_bridge("devbox0").is_ok());
        assert!(validate_bridge("").is_err());
        assert!(validate_bridge("a-very-long-bridge").is_err());
        assert!(validate_bridge("br;rm").is_err());
    }
}
