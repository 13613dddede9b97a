//! A bridge belongs to one runtime: a second runtime on it is refused, and
//! so is a subnet that does not match the bridge's address.

use std::process::Command;

use devbox_runtime::{LocalRuntime, RuntimeError};

use crate::common::*;

fn addresses(bridge: &str) -> String {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", bridge])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_bridge_another_runtime_holds_is_refused() {
    let net = TestNet::claim();
    let (first_root, second_root) = (temp_root(), temp_root());
    let first = runtime(first_root.path(), &net).await;
    let e = LocalRuntime::new(net.config(second_root.path()))
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::BridgeInUse { .. }), "{e}");
    let message = e.to_string();
    assert_eq!(
        message,
        format!(
            "bridge {} is used by the devbox runtime in {} (pid {}); \
             pass --bridge and --subnet for a second server",
            net.bridge,
            first_root.path().display(),
            std::process::id()
        )
    );
    // The claim ends with its runtime.
    drop(first);
    let second = LocalRuntime::new(net.config(second_root.path()))
        .await
        .expect("the bridge is free again");
    drop(second);
}

#[tokio::test]
async fn a_subnet_that_differs_from_the_bridges_address_is_refused() {
    let net = TestNet::claim();
    let root = temp_root();
    drop(runtime(root.path(), &net).await);
    let before = addresses(&net.bridge);
    assert!(
        before.contains(&format!("{}/24", net.gateway())),
        "{before}"
    );

    let mut config = net.config(root.path());
    // The same gateway in a smaller network is still another address.
    config.subnet = format!("10.78.{}.0/25", net.n).parse().unwrap();
    let e = LocalRuntime::new(config).await.unwrap_err();
    assert!(matches!(e, RuntimeError::BridgeAddress { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "bridge {} has {}/24, not {}/25: pass the matching --subnet or another --bridge",
            net.bridge,
            net.gateway(),
            net.gateway()
        )
    );
    // Nothing was added to the bridge.
    assert_eq!(addresses(&net.bridge), before);
    // The matching subnet still works.
    drop(runtime(root.path(), &net).await);
}
