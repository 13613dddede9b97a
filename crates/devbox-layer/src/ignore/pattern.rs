//! One gitignore pattern: parsing a line into a [`Pattern`], and matching it
//! against a relative path with git's `wildmatch` rules (`WM_PATHNAME`): `*`,
//! `?` and brackets never match `/`; `**` between slashes (or at either end)
//! matches across them.
//!
//! Matching simulates the pattern as an automaton over the path, a set of
//! reachable positions per token, so its cost is bounded by pattern length
//! times path length whatever the pattern: a devbox's own ignore file cannot
//! make a commit take exponential time.

/// Why a pattern does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("a `[` is never closed")]
    UnclosedBracket,
    #[error("it ends in a lone backslash")]
    TrailingBackslash,
    #[error("unknown character class [:{0}:]")]
    UnknownClass(String),
    #[error("it names no path")]
    Empty,
    #[error("it contains a NUL byte")]
    Nul,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(u8),
    /// `?`: one byte other than `/`.
    One,
    /// `*`: any run of bytes without `/`.
    Star,
    /// `**` at the end: any run of bytes.
    Globstar,
    /// `**/` at the start or after `/`: nothing, or any run of bytes ending in `/`.
    GlobstarSlash,
    /// `[...]`: one byte other than `/` that is (or, negated, is not) in the set.
    Class {
        negated: bool,
        set: Box<[bool; 256]>,
    },
}

/// A parsed pattern line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
    /// `!pattern`: a match re-includes the path.
    pub negated: bool,
    /// `pattern/`: matches directories only.
    pub dir_only: bool,
    /// The pattern has a `/` before its end, so it is matched against the
    /// whole relative path; otherwise against the last component.
    anchored: bool,
    /// The literal bytes every match starts with, for a quick refusal.
    prefix: Vec<u8>,
}

impl Pattern {
    /// Parses one line of a gitignore file. Returns `None` for blank lines
    /// and comments. `line` has no line terminator.
    pub(crate) fn parse(line: &[u8]) -> Result<Option<Pattern>, PatternError> {
        if line.contains(&0) {
            return Err(PatternError::Nul);
        }
        let line = trim_trailing_spaces(line);
        if line.is_empty() || line[0] == b'#' {
            return Ok(None);
        }
        let (negated, mut body) = match line.strip_prefix(b"!") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let mut dir_only = false;
        if body.ends_with(b"/") && !ends_escaped(&body[..body.len() - 1]) {
            dir_only = true;
            body = &body[..body.len() - 1];
        }
        let anchored = contains_unescaped_slash(body);
        let body = body.strip_prefix(b"/").unwrap_or(body);
        if body.is_empty() {
            return Err(PatternError::Empty);
        }
        let tokens = tokenize(body)?;
        let prefix = tokens
            .iter()
            .map_while(|t| match t {
                Token::Literal(b) => Some(*b),
                _ => None,
            })
            .collect();
        Ok(Some(Pattern {
            tokens,
            negated,
            dir_only,
            anchored,
            prefix,
        }))
    }

    /// Whether the pattern matches `path` (relative, no leading or trailing
    /// slash), leaving negation and `dir_only` to the caller.
    pub(crate) fn matches(&self, path: &[u8]) -> bool {
        let text = if self.anchored {
            path
        } else {
            path.rsplit(|&b| b == b'/').next().unwrap_or(path)
        };
        if !text.starts_with(&self.prefix) {
            return false;
        }
        if self.prefix.len() == self.tokens.len() {
            return text.len() == self.prefix.len();
        }
        run(&self.tokens, text)
    }
}

/// Removes trailing spaces that are not escaped with a backslash.
fn trim_trailing_spaces(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut end = 0;
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'\\' {
            i = (i + 2).min(line.len());
            end = i;
        } else {
            i += 1;
            if line[i - 1] != b' ' {
                end = i;
            }
        }
    }
    &line[..end]
}

/// Whether `s` ends in an odd number of backslashes (so its next byte is escaped).
fn ends_escaped(s: &[u8]) -> bool {
    s.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

fn contains_unescaped_slash(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'/' => return true,
            _ => i += 1,
        }
    }
    false
}

fn tokenize(p: &[u8]) -> Result<Vec<Token>, PatternError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' => {
                let &b = p.get(i + 1).ok_or(PatternError::TrailingBackslash)?;
                tokens.push(Token::Literal(b));
                i += 2;
            }
            b'?' => {
                tokens.push(Token::One);
                i += 1;
            }
            b'*' => {
                let run = p[i..].iter().take_while(|&&b| b == b'*').count();
                let after = i + run;
                let at_start = i == 0 || p[i - 1] == b'/';
                if run >= 2 && at_start && after == p.len() {
                    tokens.push(Token::Globstar);
                } else if run >= 2 && at_start && p[after] == b'/' {
                    tokens.push(Token::GlobstarSlash);
                    i = after + 1;
                    continue;
                } else {
                    tokens.push(Token::Star);
                }
                i = after;
            }
            b'[' => {
                let (token, len) = class(&p[i..])?;
                tokens.push(token);
                i += len;
            }
            b => {
                tokens.push(Token::Literal(b));
                i += 1;
            }
        }
    }
    Ok(tokens)
}

/// Parses a bracket expression at the start of `p`; returns it and its length.
fn class(p: &[u8]) -> Result<(Token, usize), PatternError> {
    let mut set = Box::new([false; 256]);
    let mut i = 1;
    let negated = matches!(p.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut first = true;
    loop {
        let &b = p.get(i).ok_or(PatternError::UnclosedBracket)?;
        if b == b']' && !first {
            return Ok((Token::Class { negated, set }, i + 1));
        }
        first = false;
        if b == b'[' && p.get(i + 1) == Some(&b':') {
            let rest = &p[i + 2..];
            let end = rest
                .windows(2)
                .position(|w| w == b":]")
                .ok_or(PatternError::UnclosedBracket)?;
            let name = &rest[..end];
            let test = char_class(name).ok_or_else(|| {
                PatternError::UnknownClass(String::from_utf8_lossy(name).into_owned())
            })?;
            for c in 0..=255u8 {
                if test(c) {
                    set[usize::from(c)] = true;
                }
            }
            i += 2 + end + 2;
            continue;
        }
        let (low, len) = class_byte(&p[i..])?;
        i += len;
        // `a-z` is a range unless the `-` is last (`[a-]` holds `a` and `-`).
        if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&n| n != b']') {
            let (high, len) = class_byte(&p[i + 1..])?;
            i += 1 + len;
            for c in low..=high {
                set[usize::from(c)] = true;
            }
        } else {
            set[usize::from(low)] = true;
        }
    }
}

/// One byte inside brackets, which a backslash may escape.
fn class_byte(p: &[u8]) -> Result<(u8, usize), PatternError> {
    match p {
        [b'\\', b, ..] => Ok((*b, 2)),
        [b'\\'] => Err(PatternError::UnclosedBracket),
        [b, ..] => Ok((*b, 1)),
        [] => Err(PatternError::UnclosedBracket),
    }
}

fn char_class(name: &[u8]) -> Option<fn(u8) -> bool> {
    Some(match name {
        b"alnum" => |c: u8| c.is_ascii_alphanumeric(),
        b"alpha" => |c: u8| c.is_ascii_alphabetic(),
        b"blank" => |c: u8| c == b' ' || c == b'\t',
        b"cntrl" => |c: u8| c.is_ascii_control(),
        b"digit" => |c: u8| c.is_ascii_digit(),
        b"graph" => |c: u8| c.is_ascii_graphic(),
        b"lower" => |c: u8| c.is_ascii_lowercase(),
        b"print" => |c: u8| c.is_ascii_graphic() || c == b' ',
        b"punct" => |c: u8| c.is_ascii_punctuation(),
        b"space" => |c: u8| c.is_ascii_whitespace() || c == 0x0b,
        b"upper" => |c: u8| c.is_ascii_uppercase(),
        b"xdigit" => |c: u8| c.is_ascii_hexdigit(),
        _ => return None,
    })
}

/// Runs the tokens over `text` as an automaton: `reach[i]` says whether the
/// tokens so far can consume exactly `text[..i]`.
fn run(tokens: &[Token], text: &[u8]) -> bool {
    let n = text.len();
    let mut reach = vec![false; n + 1];
    let mut next = vec![false; n + 1];
    reach[0] = true;
    for token in tokens {
        next.fill(false);
        match token {
            Token::Literal(c) => {
                for i in 0..n {
                    next[i + 1] = reach[i] && text[i] == *c;
                }
            }
            Token::One => {
                for i in 0..n {
                    next[i + 1] = reach[i] && text[i] != b'/';
                }
            }
            Token::Class { negated, set } => {
                for i in 0..n {
                    let c = text[i];
                    next[i + 1] = reach[i] && c != b'/' && set[usize::from(c)] != *negated;
                }
            }
            Token::Star => {
                let mut on = false;
                for i in 0..=n {
                    on |= reach[i];
                    next[i] = on;
                    if i < n && text[i] == b'/' {
                        on = false;
                    }
                }
            }
            Token::Globstar => {
                let mut on = false;
                for i in 0..=n {
                    on |= reach[i];
                    next[i] = on;
                }
            }
            Token::GlobstarSlash => {
                let mut seen = false;
                for i in 0..=n {
                    next[i] = reach[i] || (seen && i > 0 && text[i - 1] == b'/');
                    seen |= reach[i];
                }
            }
        }
        std::mem::swap(&mut reach, &mut next);
        if !reach.iter().any(|&r| r) {
            return false;
        }
    }
    reach[n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> bool {
        Pattern::parse(pattern.as_bytes())
            .unwrap()
            .unwrap()
            .matches(path.as_bytes())
    }

    #[test]
    fn wildcards_follow_wildmatch_with_pathname() {
        let table: &[(&str, &str, bool)] = &[
            ("*.o", "a.o", true),
            ("*.o", "src/deep/a.o", true),
            ("*.o", "a.c", false),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("/a*", "abc", true),
            ("/a*", "a/b", false),
            ("a/*", "a/b", true),
            ("a/*", "a/b/c", false),
            ("[abc]x", "bx", true),
            ("[!abc]x", "bx", false),
            ("[^abc]x", "dx", true),
            ("[a-c]x", "cx", true),
            ("[a-c]x", "dx", false),
            ("[]]x", "]x", true),
            ("[a-]x", "-x", true),
            ("[[:digit:]]x", "7x", true),
            ("[[:upper:][:digit:]]", "Q", true),
            ("[[:upper:]]", "q", false),
            ("a[/]b", "a/b", false),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("[\\]]", "]", true),
            ("***", "any/depth", true),
            ("a**b", "axxb", true),
            ("a**b", "ax/b", false),
        ];
        for &(pattern, path, expected) in table {
            assert_eq!(matches(pattern, path), expected, "{pattern:?} ~ {path:?}");
        }
    }

    #[test]
    fn double_stars_match_across_directories() {
        let table: &[(&str, &str, bool)] = &[
            ("**/foo", "foo", true),
            ("**/foo", "a/b/foo", true),
            ("**/foo/bar", "x/foo/bar", true),
            ("abc/**", "abc/x", true),
            ("abc/**", "abc/x/y", true),
            ("abc/**", "abc", false),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "a/xb", false),
            ("/root/.cache/**", "root/.cache/pip/x", true),
            ("/root/.cache/**", "root/.cache", false),
            ("**", "anything/at/all", true),
        ];
        for &(pattern, path, expected) in table {
            assert_eq!(matches(pattern, path), expected, "{pattern:?} ~ {path:?}");
        }
    }

    #[test]
    fn a_slash_anchors_and_no_slash_matches_any_level() {
        assert!(matches("/tmp", "tmp"));
        assert!(!matches("/tmp", "var/tmp"));
        assert!(matches("tmp", "var/tmp"));
        assert!(matches("var/tmp", "var/tmp"));
        assert!(
            !matches("var/tmp", "x/var/tmp"),
            "a middle slash anchors too"
        );
        assert!(matches("node_modules/", "a/node_modules"));
    }

    #[test]
    fn flags_comments_blank_lines_and_spaces() {
        let p = Pattern::parse(b"!build/").unwrap().unwrap();
        assert!(p.negated && p.dir_only && !p.anchored);
        assert_eq!(Pattern::parse(b"# comment").unwrap(), None);
        assert_eq!(Pattern::parse(b"   ").unwrap(), None);
        assert_eq!(Pattern::parse(b"").unwrap(), None);
        assert!(matches("\\#hash", "#hash"));
        assert!(matches("\\!bang", "!bang"));
        assert!(matches("trailing   ", "trailing"));
        assert!(matches("kept\\ ", "kept "));
        assert!(matches("crlf\r", "crlf"));
        assert!(
            !Pattern::parse(b"kept\\\\ ")
                .unwrap()
                .unwrap()
                .matches(b"kept\\ ")
        );
        assert!(matches("kept\\\\ ", "kept\\"));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        let table: &[(&[u8], PatternError)] = &[
            (b"[abc", PatternError::UnclosedBracket),
            (b"a[", PatternError::UnclosedBracket),
            (b"[\\", PatternError::UnclosedBracket),
            (b"abc\\", PatternError::TrailingBackslash),
            (b"[[:nope:]]", PatternError::UnknownClass("nope".into())),
            (b"/", PatternError::Empty),
            (b"!", PatternError::Empty),
            (b"a\0b", PatternError::Nul),
        ];
        for (pattern, expected) in table {
            assert_eq!(
                Pattern::parse(pattern).unwrap_err(),
                *expected,
                "{pattern:?}"
            );
        }
    }

    #[test]
    fn pathological_patterns_stay_polynomial() {
        let pattern = "*a".repeat(40) + "b";
        let path = "a".repeat(4000);
        assert!(!matches(&pattern, &path));
    }
}
