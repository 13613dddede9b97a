//! The devbox network: one bridge with the gateway address, NAT to the
//! outside, and per devbox a network namespace joined to the bridge by a veth
//! pair.
//!
//! Devboxes must not reach each other: their bridge ports are `isolated`
//! (no frames between them), and the forward chain drops packets routed from
//! the bridge back into it (which a devbox with `NET_RAW` could otherwise send
//! through the gateway). Everything is idempotent: setting up what exists,
//! or tearing down what is gone, succeeds.

use std::path::{Path, PathBuf};

use devbox_model::DevboxId;
use std::net::Ipv4Addr;
use tokio::sync::Mutex;

use crate::cmd::{command, output, run};
use crate::config::Subnet;
use crate::error::RuntimeError;

/// Where `ip netns` keeps named network namespaces.
const NETNS_DIR: &str = "/var/run/netns";

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

    /// Creates the bridge, its address, forwarding and NAT, as needed.
    pub async fn ensure_host(&self) -> Result<(), RuntimeError> {
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
}
