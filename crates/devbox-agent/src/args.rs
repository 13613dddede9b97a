//! Command-line parsing: everything after `--` is the startup command.

use std::ffi::OsString;
use std::fmt;

/// The arguments were not `[-- COMMAND [ARG...]]`.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub OsString);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unexpected argument {:?}; usage: devbox-agent [-- COMMAND [ARG...]]",
            self.0
        )
    }
}

/// Returns the startup command, or `None` when the agent should only wait.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
) -> Result<Option<Vec<OsString>>, UsageError> {
    let mut args = args.into_iter();
    match args.next() {
        None => Ok(None),
        Some(first) if first == "--" => {
            let command: Vec<OsString> = args.collect();
            Ok(if command.is_empty() {
                None
            } else {
                Some(command)
            })
        }
        Some(other) => Err(UsageError(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_command_follows_the_separator() {
        assert_eq!(parse(os(&[])), Ok(None));
        assert_eq!(parse(os(&["--"])), Ok(None));
        assert_eq!(
            parse(os(&["--", "sh", "-c", "echo --"])),
            Ok(Some(os(&["sh", "-c", "echo --"])))
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let e = parse(os(&["sh"])).unwrap_err();
        assert_eq!(e, UsageError("sh".into()));
        assert!(e.to_string().contains("usage"), "{e}");
    }
}
