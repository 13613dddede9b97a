//! `WWW-Authenticate` challenges (RFC 7235) as registries send them.

/// One authentication challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic: send the credentials on every request.
    Basic { realm: Option<String> },
    /// The Docker token flow: get a token from `realm` for `service` and
    /// `scope`, then send it as a Bearer token.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value, which may hold several challenges
/// (`Bearer realm="...",service="..." , Basic realm="..."`). Schemes other
/// than Basic and Bearer, and Bearer challenges without a realm, are left
/// out.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    loop {
        p.skip(|c| c == b' ' || c == b'\t' || c == b',');
        let scheme = p.token();
        if scheme.is_empty() {
            // Not a token: skip one byte so malformed input still terminates.
            if p.i >= p.s.len() {
                break;
            }
            p.i += 1;
            continue;
        }
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            let save = p.i;
            p.skip(|c| c == b' ' || c == b'\t' || c == b',');
            let key = p.token();
            p.skip(|c| c == b' ' || c == b'\t');
            if key.is_empty() || p.peek() != Some(b'=') {
                // The next scheme starts here (or the input ended).
                p.i = save;
                break;
            }
            p.i += 1;
            p.skip(|c| c == b' ' || c == b'\t');
            let value = if p.peek() == Some(b'"') {
                p.quoted()
            } else {
                p.token()
            };
            params.push((key.to_ascii_lowercase(), value));
        }
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => out.push(Challenge::Basic {
                realm: get("realm"),
            }),
            "bearer" => {
                if let Some(realm) = get("realm") {
                    out.push(Challenge::Bearer {
                        realm,
                        service: get("service"),
                        scope: get("scope"),
                    });
                }
            }
            _ => {}
        }
        if p.i >= p.s.len() {
            break;
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }

    /// An RFC 7230 token (plus `/` and `:` so unquoted URLs and scopes
    /// survive, as some registries send them).
    fn token(&mut self) -> String {
        let start = self.i;
        self.skip(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c));
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    /// A quoted string, with backslash escapes; the cursor is on the quote.
    fn quoted(&mut self) -> String {
        let mut out = Vec::new();
        self.i += 1;
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                c => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_quoted_params() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            c,
            vec![Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            }]
        );
    }

    #[test]
    fn escapes_spaces_and_case() {
        let c = parse_challenges(
            r#"bearer  Realm = "http://127.0.0.1:1/t\"x" , Service="a, b",error="insufficient_scope""#,
        );
        assert_eq!(
            c,
            vec![Challenge::Bearer {
                realm: "http://127.0.0.1:1/t\"x".into(),
                service: Some("a, b".into()),
                scope: None,
            }]
        );
    }

    #[test]
    fn basic_and_several_challenges() {
        assert_eq!(
            parse_challenges(r#"Basic realm="Registry Realm""#),
            vec![Challenge::Basic {
                realm: Some("Registry Realm".into())
            }]
        );
        assert_eq!(
            parse_challenges("Basic"),
            vec![Challenge::Basic { realm: None }]
        );
        let c = parse_challenges(
            r#"Negotiate, Bearer realm="https://r/token",service=reg, Basic realm="x""#,
        );
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(matches!(&c[0], Challenge::Bearer { service: Some(s), .. } if s == "reg"));
        assert!(matches!(&c[1], Challenge::Basic { realm: Some(r) } if r == "x"));
    }

    #[test]
    fn garbage_gives_nothing() {
        assert!(parse_challenges("").is_empty());
        assert!(parse_challenges("Bearer service=\"x\"").is_empty());
        assert!(parse_challenges("\"\"\",,,===").is_empty());
    }
}
