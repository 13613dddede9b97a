//! The devbox network: one bridge with the gateway address, NAT to the
//! outside, and per devbox a network namespace joined to the bridge by a veth
//! pair.
//!
//! Devboxes must not reach each other: their bridge ports are `isolated`
//! (no frames between them), and the forward chain drops packets routed from
//! the bridge back into it (which a devbox with `NET_RAW` could otherwise send
//! through the gateway). Everything is idempotent: setting up what exists,
//! or tearing down what is gone, succeeds.
//!
//! A bridge belongs to one runtime. Two servers sharing a bridge would hand
//! out the same addresses, so a runtime claims its bridge for its lifetime
//! with an exclusive lock (`/run/devbox/bridge-<name>.lock`, holding the
//! owner's PID and root directory), and refuses a bridge another runtime
//! holds. It also refuses an existing bridge with an address other than its
//! subnet's gateway, instead of adding a second one.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use devbox_model::DevboxId;
use rustix::fs::{FlockOperation, flock};
use std::net::Ipv4Addr;
use tokio::sync::Mutex;

use crate::cmd::{command, output, run};
use crate::config::Subnet;
use crate::error::RuntimeError;

/// Where `ip netns` keeps named network namespaces.
const NETNS_DIR: &str = "/var/run/netns";

/// Where runtimes record which bridge each of them uses.
const CLAIM_DIR: &str = "/run/devbox";

/// A runtime's claim on its bridge: an exclusive lock, released when the
/// claim is dropped or the process ends, however it ends.
#[derive(Debug)]
pub(crate) struct BridgeClaim {
    _file: fs::File,
}

/// The lock file naming the runtime that uses `bridge`.
pub(crate) fn claim_path(bridge: &str) -> PathBuf {
    Path::new(CLAIM_DIR).join(format!("bridge-{bridge}.lock"))
}

/// What a claim file says: the owner's PID, then its root directory.
fn owner_record(pid: u32, root: &Path) -> String {
    format!("{pid}\n{}\n", root.display())
}

/// The refusal of a bridge whose claim file says `record`.
fn in_use(bridge: &str, record: &str) -> RuntimeError {
    let (pid, root) = record.split_once('\n').unwrap_or((record, ""));
    let (pid, root) = (pid.trim(), root.trim_end_matches('\n'));
    let known = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !root.is_empty();
    RuntimeError::BridgeInUse {
        bridge: bridge.to_owned(),
        owner: if known {
            root.to_owned()
        } else {
            "another directory".to_owned()
        },
        pid: if known {
            pid.to_owned()
        } else {
            "unknown".to_owned()
        },
    }
}

/// Claims `bridge` for the runtime in `root`, or says who holds it.
pub(crate) fn claim(bridge: &str, root: &Path) -> Result<BridgeClaim, RuntimeError> {
    let dir = Path::new(CLAIM_DIR);
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(RuntimeError::io("create", dir)(e)),
    }
    let path = claim_path(bridge);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .map_err(RuntimeError::io("open", &path))?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            // The owner writes its record right after taking the lock; give
            // it a moment when it has only just done so.
            let mut record = String::new();
            for _ in 0..10 {
                record.clear();
                let _ = fs::File::open(&path).and_then(|mut r| r.read_to_string(&mut record));
                if record.ends_with('\n') && record.contains('\n') {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            return Err(in_use(bridge, &record));
        }
        Err(e) => return Err(RuntimeError::io("lock", &path)(e.into())),
    }
    f.set_len(0)
        .and_then(|()| f.write_all(owner_record(std::process::id(), root).as_bytes()))
        .map_err(RuntimeError::io("write", &path))?;
    Ok(BridgeClaim { _file: f })
}

/// The IPv4 addresses (with prefix) in the output of `ip -4 -o addr show`.
fn ipv4_addresses(ip_output: &str) -> Vec<String> {
    ip_output
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next().map(str::to_owned)
        })
        .collect()
}

/// Accepts a bridge without addresses or with only the gateway of `subnet`.
fn check_addresses(bridge: &str, found: &[String], subnet: &Subnet) -> Result<(), RuntimeError> {
    let wanted = format!("{}/{}", subnet.gateway(), subnet.prefix());
    match found.iter().find(|a| **a != wanted) {
        None => Ok(()),
        Some(other) => Err(RuntimeError::BridgeAddress {
            bridge: bridge.to_owned(),
            found: other.clone(),
            wanted,
        }),
    }
}

/// Serializes host network changes within this process: two runtimes (in
/// tests, several) must not race to create the same bridge or rule.
static HOST_LOCK: Mutex<()> = Mutex::const_new(());

#[derive(Debug, Clone)]
pub(crate) struct Network {
    pub ip: PathBuf,
    pub iptables: PathBuf,
    pub bridge: String,
    pub subnet: Subnet,
}

/// The named network namespace of a devbox.
pub fn netns_name(id: &DevboxId) -> String {
    format!("devbox-{id}")
}

/// The path runc joins.
pub fn netns_path(id: &DevboxId) -> PathBuf {
    Path::new(NETNS_DIR).join(netns_name(id))
}

/// The host end of a devbox's veth pair (at most 15 bytes).
pub fn veth_name(id: &DevboxId) -> String {
    format!("vb{}", id.short())
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

impl Network {
    fn chain(&self) -> String {
        format!("DEVBOX-{}", self.bridge)
    }

    async fn ip(&self, args: &[&str]) -> Result<String, RuntimeError> {
        run(command(&self.ip, args)).await
    }

    /// `iptables -C` answers 0 when the rule exists and 1 when it does not.
    async fn iptables_has(&self, table: &str, rule: &[&str]) -> Result<bool, RuntimeError> {
        let mut args = vec!["-w", "-t", table, "-C"];
        args.extend_from_slice(rule);
        let ran = output(command(&self.iptables, &args)).await?;
        match ran.out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(ran.failed()),
        }
    }

    async fn iptables(&self, table: &str, args: &[&str]) -> Result<(), RuntimeError> {
        let mut all = vec!["-w", "-t", table];
        all.extend_from_slice(args);
        run(command(&self.iptables, &all)).await.map(drop)
    }

    /// Creates the bridge, its address, forwarding and NAT, as needed, on a
    /// bridge this runtime has claimed. Refuses a bridge with another
    /// address, changing nothing.
    pub async fn ensure_host(&self, _claim: &BridgeClaim) -> Result<(), RuntimeError> {
        let _guard = HOST_LOCK.lock().await;
        let br = self.bridge.as_str();
        if !link_exists(br)
            && let Err(e) = self
                .ip(&["link", "add", "name", br, "type", "bridge"])
                .await
            // Another process may have created it meanwhile.
            && !link_exists(br)
        {
            return Err(e);
        }
        let found = ipv4_addresses(&self.ip(&["-4", "-o", "addr", "show", "dev", br]).await?);
        check_addresses(br, &found, &self.subnet)?;
        let gw = format!("{}/{}", self.subnet.gateway(), self.subnet.prefix());
        self.ip(&["addr", "replace", &gw, "dev", br]).await?;
        self.ip(&["link", "set", "dev", br, "up"]).await?;

        let forward = Path::new("/proc/sys/net/ipv4/ip_forward");
        let current =
            std::fs::read_to_string(forward).map_err(RuntimeError::io("read", forward))?;
        if current.trim() != "1" {
            std::fs::write(forward, "1").map_err(RuntimeError::io("write", forward))?;
        }

        let subnet = self.subnet.to_string();
        let masquerade = [
            "POSTROUTING",
            "-s",
            &subnet,
            "!",
            "-o",
            br,
            "-j",
            "MASQUERADE",
        ];
        if !self.iptables_has("nat", &masquerade).await? {
            let mut args = vec!["-A"];
            args.extend_from_slice(&masquerade);
            self.iptables("nat", &args).await?;
        }

        // The forward rules live in a chain of their own, jumped to first, so
        // their order is ours whatever else the host has in FORWARD.
        let chain = self.chain();
        let listed = output(command(
            &self.iptables,
            ["-w", "-t", "filter", "-S", &chain],
        ))
        .await?;
        if !listed.out.status.success() {
            self.iptables("filter", &["-N", &chain]).await?;
        }
        let rules: [Vec<&str>; 3] = [
            vec![&chain, "-i", br, "-o", br, "-j", "DROP"],
            vec![&chain, "-i", br, "-j", "ACCEPT"],
            vec![
                &chain,
                "-o",
                br,
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
                "-j",
                "ACCEPT",
            ],
        ];
        let mut complete = true;
        for rule in &rules {
            complete &= self.iptables_has("filter", rule).await?;
        }
        if !complete {
            self.iptables("filter", &["-F", &chain]).await?;
            for rule in &rules {
                let mut args = vec!["-A"];
                args.extend_from_slice(rule);
                self.iptables("filter", &args).await?;
            }
        }
        let jump = ["FORWARD", "-j", chain.as_str()];
        if !self.iptables_has("filter", &jump).await? {
            self.iptables("filter", &["-I", "FORWARD", "1", "-j", &chain])
                .await?;
        }
        Ok(())
    }

    /// Creates the devbox's namespace and veth pair and configures its side:
    /// `lo` up, `eth0` with `ip`, default route via the gateway.
    pub async fn attach(&self, id: &DevboxId, ip: Ipv4Addr) -> Result<(), RuntimeError> {
        let ns = netns_name(id);
        let veth = veth_name(id);
        self.ip(&["netns", "add", &ns]).await?;
        self.ip(&[
            "link", "add", "name", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])
        .await?;
        self.ip(&["link", "set", "dev", &veth, "master", &self.bridge])
            .await?;
        self.ip(&[
            "link",
            "set",
            "dev",
            &veth,
            "type",
            "bridge_slave",
            "isolated",
            "on",
        ])
        .await?;
        self.ip(&["link", "set", "dev", &veth, "up"]).await?;
        let addr = format!("{ip}/{}", self.subnet.prefix());
        let gw = self.subnet.gateway().to_string();
        self.ip(&["-n", &ns, "link", "set", "dev", "lo", "up"])
            .await?;
        self.ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])
            .await?;
        self.ip(&["-n", &ns, "link", "set", "dev", "eth0", "up"])
            .await?;
        self.ip(&["-n", &ns, "route", "add", "default", "via", &gw])
            .await?;
        Ok(())
    }

    /// Removes the veth pair and the namespace, whichever exist.
    pub async fn detach(&self, id: &DevboxId) -> Result<(), RuntimeError> {
        let veth = veth_name(id);
        if link_exists(&veth)
            && let Err(e) = self.ip(&["link", "del", "dev", &veth]).await
            && link_exists(&veth)
        {
            return Err(e);
        }
        if netns_path(id).exists() {
            self.ip(&["netns", "del", &netns_name(id)]).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limits() {
        let id: DevboxId = "0123456789abcdef".parse().unwrap();
        assert_eq!(veth_name(&id), "vb0123456789ab");
        assert!(veth_name(&id).len() <= 15);
        assert_eq!(
            netns_path(&id),
            Path::new("/var/run/netns/devbox-0123456789abcdef")
        );
        let n = Network {
            ip: "ip".into(),
            iptables: "iptables".into(),
            bridge: "devbox0".into(),
            subnet: crate::config::DEFAULT_SUBNET.parse().unwrap(),
        };
        // iptables chain names are at most 28 characters.
        assert!(format!("DEVBOX-{}", "x".repeat(15)).len() <= 28);
        assert_eq!(n.chain(), "DEVBOX-devbox0");
    }

    #[test]
    fn a_bridge_with_another_address_is_refused() {
        let out = "5: devbox0    inet 10.77.0.1/16 brd 10.77.255.255 scope global devbox0\\       valid_lft forever preferred_lft forever\n";
        let found = ipv4_addresses(out);
        assert_eq!(found, ["10.77.0.1/16"]);
        let ours: Subnet = "10.77.0.0/16".parse().unwrap();
        check_addresses("devbox0", &found, &ours).unwrap();
        check_addresses("devbox0", &[], &ours).unwrap();
        let other: Subnet = "10.78.0.0/24".parse().unwrap();
        let e = check_addresses("devbox0", &found, &other)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "bridge devbox0 has 10.77.0.1/16, not 10.78.0.1/24: pass the matching --subnet or another --bridge"
        );
        // The right address beside a wrong one is still refused.
        let two = ["10.77.0.1/16".to_owned(), "10.99.0.1/24".to_owned()];
        let e = check_addresses("devbox0", &two, &ours).unwrap_err();
        assert!(e.to_string().contains("has 10.99.0.1/24"), "{e}");
    }

    #[test]
    fn a_claimed_bridge_names_its_owner() {
        let record = owner_record(123, Path::new("/var/lib/devbox/runtime"));
        assert_eq!(record, "123\n/var/lib/devbox/runtime\n");
        assert_eq!(
            in_use("devbox0", &record).to_string(),
            "bridge devbox0 is used by the devbox runtime in /var/lib/devbox/runtime (pid 123); \
             pass --bridge and --subnet for a second server"
        );
        // A record being written, or garbage, still refuses.
        for partial in ["", "12", "x\ny\n"] {
            let e = in_use("devbox0", partial).to_string();
            assert!(e.contains("pid unknown") && e.contains("--bridge"), "{e}");
        }
    }
}
