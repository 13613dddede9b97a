//! Builds the in-devbox agent as a statically linked binary and leaves it at
//! `$OUT_DIR/devbox-agent`, where `src/agent.rs` embeds it.
//!
//! The agent runs inside arbitrary images, some without any C library, so it
//! must not need a dynamic loader. A nested `cargo build` with `+crt-static`
//! produces such a binary; it uses its own target directory under `OUT_DIR` so
//! it never waits on the lock of the outer build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables the outer cargo sets for build scripts (or that a developer may
/// have set for the outer build) that would change or break the nested one.
fn interferes(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "MAKEFLAGS",
        "MFLAGS",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "NUM_JOBS",
        "OPT_LEVEL",
        "PROFILE",
        "DEBUG",
    ];
    // Registry, network and authentication settings stay: the nested build
    // may have to fetch the agent's dependencies like the outer one would.
    const KEEP: &[&str] = &[
        "CARGO_HOME",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
    ];
    EXACT.contains(&key) || (key.starts_with("CARGO_") && !KEEP.iter().any(|k| key.starts_with(k)))
}

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("the crate lives at <workspace>/crates/devbox-runtime")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target = env::var("TARGET").expect("TARGET");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let agent_dir = workspace.join("crates/devbox-agent");

    println!("cargo:rerun-if-changed={}", agent_dir.display());
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    println!("cargo:rerun-if-changed=build.rs");

    let target_dir = out_dir.join("agent");
    let mut cmd = Command::new(cargo);
    for (key, _) in env::vars_os() {
        if key.to_str().is_some_and(interferes) {
            cmd.env_remove(&key);
        }
    }
    let status = cmd
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "devbox-agent",
            "--target",
        ])
        .arg(&target)
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        // The two flags are separated by 0x1f, the separator of this variable.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Ctarget-feature=+crt-static\x1f-Cstrip=debuginfo",
        )
        .status()
        .expect("run the nested cargo build of devbox-agent");
    assert!(status.success(), "building devbox-agent failed: {status}");

    let built = target_dir.join(&target).join("release/devbox-agent");
    let dest = out_dir.join("devbox-agent");
    std::fs::copy(&built, &dest)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", built.display(), dest.display()));
}
