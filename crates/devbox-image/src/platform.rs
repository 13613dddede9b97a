//! Choosing the image for this machine from an image index.

use oci_spec::image::Descriptor;

/// The OCI (GOARCH) name of this machine's architecture.
pub fn host_arch() -> &'static str {
    oci_arch(std::env::consts::ARCH)
}

/// Translates a Rust architecture name to its OCI (GOARCH) name.
pub fn oci_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The CPU variant an index entry must name to be preferred on this
/// architecture (`v8` for arm64, `v7` for arm), if any.
fn preferred_variant(arch: &str) -> Option<&'static str> {
    match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    }
}

/// Picks the entry of an index for `linux/<arch>`. An entry naming the
/// preferred variant (or none) wins over one naming another variant; entries
/// without a platform are ignored when any entry names one (they are
/// attestations or other artifacts), and used only when the index holds
/// exactly one of them.
pub fn select<'a>(manifests: &'a [Descriptor], arch: &str) -> Option<&'a Descriptor> {
    let matching: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == arch
            })
        })
        .collect();
    if matching.is_empty() {
        let any_platform = manifests.iter().any(|d| d.platform().is_some());
        return match manifests {
            [only] if !any_platform => Some(only),
            _ => None,
        };
    }
    let preferred = preferred_variant(arch);
    matching
        .iter()
        .find(|d| {
            let v = d.platform().as_ref().and_then(|p| p.variant().clone());
            v.is_none() || v.as_deref() == preferred
        })
        .or_else(|| matching.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, &str, Option<&str>)]) -> Vec<Descriptor> {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut platform = serde_json::json!({ "os": os, "architecture": arch });
                if let Some(v) = variant {
                    platform["variant"] = serde_json::json!(v);
                }
                serde_json::json!({
                    "mediaType": crate::media::OCI_MANIFEST,
                    "digest": format!("sha256:{}", format!("{:x}", i % 16).repeat(64)),
                    "size": 100 + i,
                    "platform": platform,
                })
            })
            .collect();
        serde_json::from_value(serde_json::Value::Array(manifests)).unwrap()
    }

    #[test]
    fn picks_linux_and_the_architecture() {
        let m = index(&[
            ("linux", "arm", Some("v6")),
            ("windows", "amd64", None),
            ("linux", "amd64", None),
            ("linux", "arm64", Some("v8")),
        ]);
        assert_eq!(select(&m, "amd64").unwrap().size(), 102);
        assert_eq!(select(&m, "arm64").unwrap().size(), 103);
        assert!(select(&m, "s390x").is_none());
    }

    #[test]
    fn prefers_the_usual_variant() {
        let m = index(&[("linux", "arm", Some("v6")), ("linux", "arm", Some("v7"))]);
        assert_eq!(select(&m, "arm").unwrap().size(), 101);
        let m = index(&[("linux", "arm", Some("v6"))]);
        assert_eq!(select(&m, "arm").unwrap().size(), 100);
    }

    #[test]
    fn unknown_platform_entries_are_skipped() {
        // BuildKit adds attestation manifests as unknown/unknown entries.
        let m = index(&[("unknown", "unknown", None), ("linux", "amd64", None)]);
        assert_eq!(select(&m, "amd64").unwrap().size(), 101);
    }

    #[test]
    fn a_lone_entry_without_platform_is_used() {
        let mut m = index(&[("linux", "amd64", None)]);
        m[0].set_platform(None);
        assert_eq!(select(&m, "arm64").unwrap().size(), 100);
        let two = vec![m[0].clone(), m[0].clone()];
        assert!(select(&two, "amd64").is_none());
    }

    #[test]
    fn host_arch_uses_oci_names() {
        assert_eq!(oci_arch("x86_64"), "amd64");
        assert_eq!(oci_arch("aarch64"), "arm64");
        assert_eq!(oci_arch("riscv64"), "riscv64");
        assert!(!host_arch().is_empty());
    }
}
