//! Test networks: each server gets a bridge and subnet that nothing else on
//! the machine uses.

use std::process::Command;

use super::harness::{claim_network, require_privileges};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_test_network_is_neither_claimed_nor_existing() {
    require_privileges();
    let (first, claim) = claim_network();
    let (second, other) = claim_network();
    assert_ne!(first, second, "one network claimed twice");
    // A bridge of that name that the claimant did not create makes the
    // network unusable even once nobody holds its lock.
    let bridge = format!("dbxe2e{second}");
    ip(&["link", "add", &bridge, "type", "bridge"]);
    drop(other);
    let (third, _third_claim) = claim_network();
    ip(&["link", "del", &bridge]);
    assert_ne!(third, second, "{bridge} exists, yet it was claimed");
    assert_ne!(third, first);
    drop(claim);
}
