//! Which requests are for the ingress, and for which devbox and port:
//! `<port>-<devbox>.<domain>` by the `Host` header, or
//! `/proxy/<devbox>/<port>/...` by path. Everything else is the API's.

use devbox_model::DevboxName;

use super::IngressError;

/// Path prefix of the ingress by path.
pub const PATH_PREFIX: &str = "/proxy/";

/// How a request named its devbox and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    /// `Host: <port>-<devbox>.<domain>`: the devbox sees the path as sent.
    Host,
    /// `/proxy/<devbox>/<port>`: the devbox sees the rest of the path.
    Path {
        /// `/proxy/<devbox>/<port>`, without a trailing slash.
        prefix: String,
    },
}

/// A port of a devbox a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub devbox: DevboxName,
    pub port: u16,
    pub by: By,
    /// The path the devbox sees: `/` and on.
    pub path: String,
}

impl Target {
    /// The path under which cookies for this target are sent.
    pub fn cookie_path(&self) -> String {
        match &self.by {
            By::Host => "/".to_owned(),
            By::Path { prefix } => format!("{prefix}/"),
        }
    }
}

/// What a request is for: the API's (`None`), a port of a devbox, a
/// redirect of `/proxy/<devbox>/<port>` to its directory form (so that
/// relative links in the devbox's pages work), or an ingress name that
/// does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    Target(Target),
    AddSlash,
    Invalid(IngressError),
}

fn port(raw: &str) -> Result<u16, IngressError> {
    match raw.parse::<u16>() {
        Ok(p) if p > 0 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(IngressError::UnknownPort {
            what: raw.chars().take(32).collect(),
        }),
    }
}

fn name(raw: &str) -> Result<DevboxName, IngressError> {
    raw.parse().map_err(|_| IngressError::UnknownDevbox {
        name: raw.chars().take(64).collect(),
    })
}

/// Routes a request by its `Host` (without or with `:port`) and path.
pub fn route(domain: &str, host: Option<&str>, path: &str) -> Option<Routed> {
    if let Some(host) = host {
        let host = host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(label) = host.strip_suffix(domain).and_then(|h| h.strip_suffix('.'))
            && !label.contains('.')
            && let Some((p, n)) = label.split_once('-')
            && p.bytes().next().is_some_and(|b| b.is_ascii_digit())
        {
            let target = port(p).and_then(|port| {
                Ok(Target {
                    devbox: name(n)?,
                    port,
                    by: By::Host,
                    path: path.to_owned(),
                })
            });
            return Some(target.map_or_else(Routed::Invalid, Routed::Target));
        }
    }
    let rest = path.strip_prefix(PATH_PREFIX)?;
    let mut parts = rest.splitn(3, '/');
    let (n, p) = (parts.next()?, parts.next());
    let Some(p) = p else {
        return Some(Routed::Invalid(IngressError::UnknownPort {
            what: "none given: use /proxy/<devbox>/<port>/".into(),
        }));
    };
    let target = name(n).and_then(|devbox| Ok((devbox, port(p)?)));
    Some(match (target, parts.next()) {
        (Err(e), _) => Routed::Invalid(e),
        (Ok(_), None) => Routed::AddSlash,
        (Ok((devbox, port)), Some(rest)) => Routed::Target(Target {
            by: By::Path {
                prefix: format!("{PATH_PREFIX}{n}/{p}"),
            },
            devbox,
            port,
            path: format!("/{rest}"),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: Option<&str>, path: &str) -> Option<Routed> {
        route("localhost", host, path)
    }

    #[test]
    fn a_host_of_the_domain_names_port_and_devbox() {
        let Some(Routed::Target(t)) = target(Some("8080-web.localhost:7070"), "/a?b") else {
            panic!()
        };
        assert_eq!((t.devbox.as_str(), t.port, &t.by), ("web", 8080, &By::Host));
        assert_eq!(t.path, "/a?b");
        assert_eq!(t.cookie_path(), "/");
        let Some(Routed::Target(t)) = target(Some("3000-my-app.LOCALHOST."), "/") else {
            panic!()
        };
        assert_eq!((t.devbox.as_str(), t.port), ("my-app", 3000));
    }

    #[test]
    fn other_hosts_and_paths_are_the_apis() {
        for host in [
            "127.0.0.1:7070",
            "localhost:7070",
            "web.localhost",
            "x.8080-web.localhost",
            "8080-web.example.com",
        ] {
            assert_eq!(target(Some(host), "/api/v1/devboxes"), None, "{host}");
        }
        assert_eq!(target(None, "/healthz"), None);
        assert_eq!(target(None, "/proxyfoo"), None);
    }

    #[test]
    fn a_path_names_devbox_and_port_and_keeps_the_rest() {
        let Some(Routed::Target(t)) = target(Some("127.0.0.1"), "/proxy/web/8080/x/y") else {
            panic!()
        };
        assert_eq!(
            (t.devbox.as_str(), t.port, t.path.as_str()),
            ("web", 8080, "/x/y")
        );
        assert_eq!(t.cookie_path(), "/proxy/web/8080/");
        assert_eq!(target(None, "/proxy/web/8080"), Some(Routed::AddSlash));
        let Some(Routed::Target(t)) = target(None, "/proxy/web/8080/") else {
            panic!()
        };
        assert_eq!(t.path, "/");
    }

    #[test]
    fn bad_ports_and_names_are_refused() {
        for (host, path) in [
            (Some("0-web.localhost"), "/"),
            (Some("65536-web.localhost"), "/"),
            (Some("80-Web_1.localhost"), "/"),
            (None, "/proxy/web/0/"),
            (None, "/proxy/web/+80/"),
            (None, "/proxy/web/99999/"),
            (None, "/proxy/web/http/"),
            (None, "/proxy/../8080/"),
            (None, "/proxy/web"),
        ] {
            assert!(
                matches!(target(host, path), Some(Routed::Invalid(_))),
                "{host:?} {path}"
            );
        }
    }
}
