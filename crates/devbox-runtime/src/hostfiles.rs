//! The files every devbox gets bind-mounted over its image's:
//! `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.

use std::net::Ipv4Addr;
use std::path::Path;

use devbox_model::DevboxName;

use crate::error::RuntimeError;

/// Where systemd-resolved keeps the list of real upstream servers.
const SYSTEMD_RESOLV: &str = "/run/systemd/resolve/resolv.conf";

pub(crate) fn hosts(ip: Ipv4Addr, hostname: &DevboxName) -> String {
    format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{hostname}\n")
}

/// The devbox's own address in a hosts file written by [`hosts`].
pub(crate) fn address_in_hosts(hosts: &str) -> Option<Ipv4Addr> {
    hosts.lines().nth(2)?.split('\t').next()?.parse().ok()
}

pub(crate) fn hostname(hostname: &DevboxName) -> String {
    format!("{hostname}\n")
}

/// Whether a resolv.conf names nameservers and all of them are loopback
/// addresses, which mean nothing inside the devbox's own network namespace
/// (systemd-resolved's 127.0.0.53, a local dnsmasq).
fn only_loopback(conf: &str) -> bool {
    let servers: Vec<&str> = conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(str::trim)
        .collect();
    !servers.is_empty()
        && servers.iter().all(|s| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
        })
}

/// Chooses the devbox's resolv.conf: the host's, unless it only names
/// loopback servers and systemd-resolved's upstream list exists.
pub(crate) fn pick_resolv_conf(host: &str, systemd: Option<&str>) -> String {
    match systemd {
        Some(upstream) if only_loopback(host) => upstream.to_owned(),
        _ => host.to_owned(),
    }
}

/// Reads the host's resolver configuration.
pub(crate) fn resolv_conf() -> Result<String, RuntimeError> {
    let path = Path::new("/etc/resolv.conf");
    let host = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(RuntimeError::io("read", path)(e)),
    };
    let systemd = std::fs::read_to_string(SYSTEMD_RESOLV).ok();
    Ok(pick_resolv_conf(&host, systemd.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_back_from_the_hosts_file() {
        let ip: Ipv4Addr = "10.77.0.9".parse().unwrap();
        let text = hosts(ip, &"web".parse().unwrap());
        assert_eq!(address_in_hosts(&text), Some(ip));
        assert_eq!(address_in_hosts("garbage"), None);
    }

    #[test]
    fn hosts_names_the_devbox() {
        let h = hosts("10.77.0.2".parse().unwrap(), &"web".parse().unwrap());
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.77.0.2\tweb\n"), "{h}");
        assert_eq!(hostname(&"web".parse().unwrap()), "web\n");
    }

    #[test]
    fn loopback_resolvers_are_replaced_by_systemds_upstream_list() {
        let stub = "# systemd\nnameserver 127.0.0.53\noptions edns0\n";
        let upstream = "nameserver 192.0.2.53\n";
        assert_eq!(pick_resolv_conf(stub, Some(upstream)), upstream);
        // Without the upstream list, the host's file is all there is.
        assert_eq!(pick_resolv_conf(stub, None), stub);
        // A real server is kept even when systemd's file exists.
        let real = "nameserver 10.255.255.53\n";
        assert_eq!(pick_resolv_conf(real, Some(upstream)), real);
        let mixed = "nameserver 127.0.0.1\nnameserver 9.9.9.9\n";
        assert_eq!(pick_resolv_conf(mixed, Some(upstream)), mixed);
        assert_eq!(
            pick_resolv_conf("nameserver ::1\n", Some(upstream)),
            upstream
        );
        assert_eq!(pick_resolv_conf("", Some(upstream)), "");
    }
}
