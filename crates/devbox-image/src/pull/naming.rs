//! Where a reference lives: the registry's address and the repository path
//! there, with Docker Hub's naming conventions.

use devbox_model::ImageRef;
use url::Url;

/// The registry Docker Hub's API is served from.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";

/// A repository on a remote registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// `scheme://host[:port]/` of the registry.
    pub base: Url,
    /// The registry host, for messages.
    pub registry: String,
    /// The repository path on that registry, e.g. `library/busybox`.
    pub repository: String,
}

/// The remote repository a reference names. A reference without a domain
/// (or with `docker.io`/`index.docker.io`) is on Docker Hub, where a
/// single-component path lives under `library/`. `insecure` selects plain
/// HTTP.
pub fn remote_for(reference: &ImageRef, insecure: bool) -> Remote {
    let (registry, repository) = match reference.domain() {
        None | Some("docker.io") | Some("index.docker.io") => {
            let path = reference.path();
            let repository = if path.contains('/') {
                path.to_owned()
            } else {
                format!("library/{path}")
            };
            (DOCKER_HUB_REGISTRY.to_owned(), repository)
        }
        Some(domain) => (domain.to_owned(), reference.path().to_owned()),
    };
    let scheme = if insecure { "http" } else { "https" };
    let base = Url::parse(&format!("{scheme}://{registry}/"))
        .expect("a validated registry host makes a valid URL");
    Remote {
        base,
        registry,
        repository,
    }
}

impl Remote {
    /// `<base>/v2/<repository>/<kind>/<reference>`.
    pub fn url(&self, kind: &str, reference: &str) -> Url {
        self.base
            .join(&format!("v2/{}/{kind}/{reference}", self.repository))
            .expect("repository paths and references are URL-safe")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(r: &str, insecure: bool) -> Remote {
        remote_for(&r.parse().unwrap(), insecure)
    }

    #[test]
    fn docker_hub_names_are_normalized() {
        let r = remote("busybox", false);
        assert_eq!(r.registry, "registry-1.docker.io");
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(
            r.url("manifests", "latest").as_str(),
            "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
        );
        assert_eq!(remote("bitnami/redis:7", false).repository, "bitnami/redis");
        assert_eq!(
            remote("docker.io/busybox", false).repository,
            "library/busybox"
        );
        assert_eq!(
            remote("index.docker.io/library/alpine", false).registry,
            DOCKER_HUB_REGISTRY
        );
    }

    #[test]
    fn other_registries_keep_their_paths() {
        let r = remote("localhost:5000/busybox:1", true);
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "busybox");
        assert_eq!(r.base.as_str(), "http://localhost:5000/");
        let r = remote("ghcr.io/org/tool", false);
        assert_eq!(r.repository, "org/tool");
        assert_eq!(
            r.url("blobs", "sha256:ab").as_str(),
            "https://ghcr.io/v2/org/tool/blobs/sha256:ab"
        );
    }
}
