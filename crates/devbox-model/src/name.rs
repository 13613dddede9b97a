//! Devbox names and image references, with the validation rules the API
//! enforces.
//!
//! A devbox name appears in hostnames (`<port>-<devbox>-<owner>.<domain>`), so
//! it follows DNS label rules and must start with a letter: a leading digit
//! would make the port prefix ambiguous.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a name or reference was refused. Each message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid devbox name {name:?}: {reason}")]
    Devbox { name: String, reason: &'static str },
    #[error("invalid image reference {reference:?}: {reason}")]
    Image {
        reference: String,
        reason: &'static str,
    },
}

/// A validated devbox name: 1 to 63 characters of `a-z`, `0-9` and `-`,
/// starting with a letter and not ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DevboxName(String);

impl DevboxName {
    /// Longest name accepted (a DNS label).
    pub const MAX_LEN: usize = 63;

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DevboxName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let err = |reason| NameError::Devbox {
            name: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(err("a name must not be empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(err("a name must be at most 63 characters"));
        }
        if !s
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
        {
            return Err(err("only lowercase letters, digits and '-' are allowed"));
        }
        if !s.as_bytes()[0].is_ascii_lowercase() {
            return Err(err("a name must start with a lowercase letter"));
        }
        if s.ends_with('-') {
            return Err(err("a name must not end with '-'"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for DevboxName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<DevboxName> for String {
    fn from(n: DevboxName) -> String {
        n.0
    }
}

impl fmt::Display for DevboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An image reference: `[domain[:port]/]path[:tag][@digest]`, as Docker and
/// OCI tools write them. Images stored locally keep the full reference they
/// were imported or pulled under as their repository name, so
/// `localhost:5000/tools/busybox:1` and `busybox:1` are different images.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    domain: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Tag used when a reference names neither a tag nor a digest.
    pub const DEFAULT_TAG: &'static str = "latest";

    /// The registry host (with port), when the reference names one.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The repository path without the domain, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The repository as stored locally: domain and path, e.g. `localhost:5000/busybox`.
    pub fn repository(&self) -> String {
        match &self.domain {
            Some(d) => format!("{d}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// The tag, `latest` when the reference names neither tag nor digest.
    pub fn tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, Some(_)) => None,
            (None, None) => Some(Self::DEFAULT_TAG),
        }
    }

    /// The digest (`sha256:...`), when the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
}

/// Whether `s` is a repository name as the OCI distribution spec writes
/// them: path components of lowercase letters and digits separated by `.`,
/// `_`, `__` or dashes, joined by `/`, at most 255 characters. Names with a
/// registry port (`localhost:5000/x`) are not.
pub fn is_repository_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.split('/').all(valid_path_component)
}

/// Whether `s` is a tag: 1 to 128 letters, digits, `_`, `.` and `-`, not
/// starting with `.` or `-`.
pub fn is_tag(s: &str) -> bool {
    valid_tag(s)
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

fn valid_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some(("sha256", hex)) => {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        Some(("sha512", hex)) => {
            hex.len() == 128 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        _ => false,
    }
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl FromStr for ImageRef {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let err = |reason| NameError::Image {
            reference: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(err("a reference must not be empty"));
        }
        if s.len() > 512 {
            return Err(err("a reference must be at most 512 characters"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(err("the digest must be sha256:<64 hex digits>"));
                }
                (r, Some(d.to_owned()))
            }
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                if !valid_tag(t) {
                    return Err(err(
                        "a tag is 1-128 of letters, digits, '_', '.', '-' and must not start with '.' or '-'",
                    ));
                }
                (&rest[..last_slash + i], Some(t.to_owned()))
            }
            None => (rest, None),
        };
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !valid_domain(first) {
                    return Err(err("the registry host is not a valid host[:port]"));
                }
                (Some(first.to_owned()), remainder)
            }
            _ => (None, name),
        };
        if path.is_empty() {
            return Err(err("a reference must name a repository"));
        }
        if path.len() > 255 {
            return Err(err("a repository name must be at most 255 characters"));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(err(
                "repository path components are lowercase letters and digits, separated by '.', '_', '__' or '-'",
            ));
        }
        Ok(Self {
            domain,
            path: path.to_owned(),
            tag,
            digest,
        })
    }
}

impl TryFrom<String> for ImageRef {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<ImageRef> for String {
    fn from(r: ImageRef) -> String {
        r.to_string()
    }
}

impl fmt::Display for ImageRef {
    /// The normalized form: the default tag is written out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository())?;
        if let Some(t) = self.tag() {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devbox_names_follow_dns_label_rules() {
        for good in ["a", "web", "my-box-2", &"a".repeat(63)] {
            assert!(good.parse::<DevboxName>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "Web",
            "2web",
            "-web",
            "web-",
            "we_b",
            "we.b",
            "wéb",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<DevboxName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn devbox_name_errors_quote_the_input() {
        let e = "Bad!".parse::<DevboxName>().unwrap_err().to_string();
        assert!(e.contains("\"Bad!\""), "{e}");
    }

    #[test]
    fn image_refs_parse_like_docker() {
        let r: ImageRef = "base:1".parse().unwrap();
        assert_eq!((r.domain(), r.path(), r.tag()), (None, "base", Some("1")));
        let r: ImageRef = "busybox".parse().unwrap();
        assert_eq!(r.to_string(), "busybox:latest");
        let r: ImageRef = "localhost:5000/tools/busybox:1.36".parse().unwrap();
        assert_eq!(r.domain(), Some("localhost:5000"));
        assert_eq!(r.repository(), "localhost:5000/tools/busybox");
        assert_eq!(r.tag(), Some("1.36"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r: ImageRef = format!("registry.example.com/x@{d}").parse().unwrap();
        assert_eq!((r.tag(), r.digest()), (None, Some(d.as_str())));
        let r: ImageRef = "a__b-c--d/e.f:_x".parse().unwrap();
        assert_eq!(r.path(), "a__b-c--d/e.f");
    }

    #[test]
    fn bad_image_refs_are_refused() {
        for bad in [
            "",
            "Base:1",
            "base:",
            "base:-x",
            "base/",
            "/base",
            "ba..se",
            "base@sha256:xyz",
            "host:99999999/x",
            "a___b",
            "base:1:2",
            "../x",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn repository_names_follow_the_distribution_spec() {
        for good in [
            "bb",
            "admin/web",
            "docker.io/library/busybox",
            "a-b/c__d/e.f",
        ] {
            assert!(is_repository_name(good), "{good}");
        }
        for bad in [
            "",
            "Bb",
            "a//b",
            "/a",
            "a/",
            "localhost:5000/x",
            "a..b",
            &"a".repeat(256),
        ] {
            assert!(!is_repository_name(bad), "{bad}");
        }
        assert!(is_tag("v1.0_rc-1") && is_tag("_x"));
        assert!(!is_tag("") && !is_tag(".x") && !is_tag("a/b") && !is_tag(&"t".repeat(129)));
    }
}
