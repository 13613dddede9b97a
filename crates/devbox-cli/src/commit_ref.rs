//! Commit IDs and fork sources (`dev`, `dev@<commit id>`) as the command
//! line takes them, checked before any request so a typo is a usage error
//! rather than a round trip.

use std::fmt;
use std::str::FromStr;

use devbox_model::DevboxName;

/// Sixteen hex digits, as `devbox history` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitId(String);

/// Number of hex digits in a commit ID.
const LEN: usize = 16;

impl FromStr for CommitId {
    type Err = String;

    /// Upper case is accepted and lowered: IDs are copied by hand.
    fn from_str(s: &str) -> Result<Self, String> {
        let id = s.trim().to_ascii_lowercase();
        if id.len() == LEN && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(id))
        } else {
            Err(format!(
                "invalid commit id {s:?}: expected the {LEN} hex digits that \
                 `devbox history NAME` shows"
            ))
        }
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a fork starts from: a devbox's head, or one of its commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkSource {
    pub devbox: DevboxName,
    pub commit: Option<CommitId>,
}

impl FromStr for ForkSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, commit) = match s.split_once('@') {
            Some((name, commit)) => (name, Some(commit)),
            None => (s, None),
        };
        let devbox = name
            .parse::<DevboxName>()
            .map_err(|e| format!("{e}; --from takes NAME or NAME@COMMIT"))?;
        let commit = commit.map(str::parse).transpose()?;
        Ok(Self { devbox, commit })
    }
}

impl fmt::Display for ForkSource {
    /// The form the API's `from` field takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.commit {
            Some(c) => write!(f, "{}@{c}", self.devbox),
            None => write!(f, "{}", self.devbox),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_id_is_sixteen_hex_digits_in_lower_case() {
        let id: CommitId = "0123456789ABCDEF".parse().unwrap();
        assert_eq!(id.to_string(), "0123456789abcdef");
        for bad in [
            "",
            "0123",
            "0123456789abcdefa",
            "0123456789abcdeg",
            "../../etc/passw",
        ] {
            let e = bad.parse::<CommitId>().unwrap_err();
            assert!(e.starts_with("invalid commit id"), "{bad}: {e}");
            assert!(e.contains("devbox history NAME"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_fork_names_a_devbox_and_maybe_one_of_its_commits() {
        let f: ForkSource = "dev".parse().unwrap();
        assert_eq!(f.devbox.as_str(), "dev");
        assert_eq!(f.commit, None);
        assert_eq!(f.to_string(), "dev");
        let f: ForkSource = "dev@0123456789abcdef".parse().unwrap();
        assert_eq!(f.to_string(), "dev@0123456789abcdef");
        let e = "Dev@0123456789abcdef".parse::<ForkSource>().unwrap_err();
        assert!(
            e.contains("invalid devbox name") && e.contains("NAME@COMMIT"),
            "{e}"
        );
        let e = "dev@".parse::<ForkSource>().unwrap_err();
        assert!(e.starts_with("invalid commit id"), "{e}");
        assert!("dev@1@2".parse::<ForkSource>().is_err());
    }
}
