//! How messages name what the user sent: by the name the client gave for
//! it (a file or directory on the user's machine), never by the server's
//! spool file, and never at unbounded length.

use std::fmt;

/// Longest origin shown, in characters.
const MAX_ORIGIN: usize = 200;

/// What an upload came from, as the client named it; shown as
/// ` (from NAME)` after what the message is about, or as nothing when the
/// client did not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin(Option<String>);

impl Origin {
    /// An origin; empty names count as none.
    pub fn new(name: Option<&str>) -> Self {
        Self(
            name.map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| shorten(n, MAX_ORIGIN)),
        )
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(name) => write!(f, " (from {name})"),
            None => Ok(()),
        }
    }
}

/// `s` cut to at most `max` characters by replacing its middle with `…`,
/// so both the start (where a path begins) and the end (where a message
/// says what is wrong) stay readable.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    let count = s.chars().count();
    if count <= max {
        return s.to_owned();
    }
    let keep = max.saturating_sub(1);
    let head = keep.div_ceil(2);
    let tail = keep - head;
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_keeps_its_ends() {
        assert_eq!(shorten("short", 10), "short");
        let s = shorten(&"x".repeat(1000), 11);
        assert_eq!(s, "xxxxx…xxxxx");
        assert_eq!(shorten("abcdefghijkl", 5), "ab…kl");
        // Characters, not bytes, are counted: no panic inside a multibyte one.
        assert_eq!(shorten("ééééééé", 3), "é…é");
    }

    #[test]
    fn an_origin_reads_after_its_subject() {
        assert_eq!(
            Origin::new(Some("./rootfs.tar")).to_string(),
            " (from ./rootfs.tar)"
        );
        assert_eq!(Origin::new(Some(" ")).to_string(), "");
        assert_eq!(Origin::new(None).to_string(), "");
    }
}
