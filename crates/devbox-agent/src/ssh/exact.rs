//! Exact execs: the runtime's way of starting a process through the agent
//! with the very argument vector, environment, directory and user it
//! resolved, where an ordinary SSH `exec` hands one string to the login
//! shell.
//!
//! An exact exec is an SSH `exec` request whose command is
//! `"\0devbox-exec/1\0"` followed by `KEY\0VALUE\0` records: `ids`
//! (`UID:GID[:GID,...]`, once), `cwd` (once), `arg` (one per argument, in
//! order, at least one) and `env` (`NAME=VALUE`, one per variable). No shell
//! command starts with a NUL byte, so the two never mix; only a root login
//! may send one, since it names its own user.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use crate::args::Ids;

/// The prefix that marks an exact exec.
pub const MAGIC: &[u8] = b"\0devbox-exec/1\0";

/// A decoded exact exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exact {
    pub ids: Ids,
    pub cwd: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
}

/// Whether an exec request's command is an exact exec.
pub fn is_exact(command: &[u8]) -> bool {
    command.starts_with(MAGIC)
}

/// Decodes an exact exec; the error names what is wrong.
pub fn decode(command: &[u8]) -> Result<Exact, String> {
    let body = command
        .strip_prefix(MAGIC)
        .ok_or("not an exact exec request")?;
    let mut fields = body.split(|&b| b == 0);
    let (mut ids, mut cwd) = (None, None);
    let (mut args, mut env) = (Vec::new(), Vec::new());
    while let Some(key) = fields.next() {
        if key.is_empty() && fields.clone().next().is_none() {
            break;
        }
        let value = fields
            .next()
            .ok_or_else(|| format!("the record {:?} has no value", String::from_utf8_lossy(key)))?;
        match key {
            b"ids" if ids.is_none() => {
                ids = Some(
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(Ids::parse)
                        .ok_or("the ids record is not UID:GID[:GID,...]")?,
                );
            }
            b"cwd" if cwd.is_none() => {
                cwd = Some(PathBuf::from(OsString::from_vec(value.to_vec())))
            }
            b"arg" => args.push(OsString::from_vec(value.to_vec())),
            b"env" => {
                let eq = value
                    .iter()
                    .position(|&b| b == b'=')
                    .filter(|&i| i > 0)
                    .ok_or("an env record is not NAME=VALUE")?;
                env.push((
                    OsString::from_vec(value[..eq].to_vec()),
                    OsString::from_vec(value[eq + 1..].to_vec()),
                ));
            }
            other => {
                return Err(format!(
                    "unexpected record {:?}",
                    String::from_utf8_lossy(other)
                ));
            }
        }
    }
    if args.is_empty() {
        return Err("the request has no program".to_owned());
    }
    Ok(Exact {
        ids: ids.ok_or("the request has no ids record")?,
        cwd: cwd.unwrap_or_else(|| PathBuf::from("/")),
        args,
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(records: &[(&str, &str)]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (k, v) in records {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }

    #[test]
    fn requests_decode_with_every_record() {
        let r = request(&[
            ("ids", "1000:1000:10"),
            ("cwd", "/src"),
            ("arg", "sh"),
            ("arg", "-c"),
            ("arg", "echo a=b"),
            ("env", "A=1=2"),
            ("env", "EMPTY="),
        ]);
        assert!(is_exact(&r));
        let e = decode(&r).unwrap();
        assert_eq!(e.ids.uid, 1000);
        assert_eq!(e.ids.groups, vec![10]);
        assert_eq!(e.cwd, PathBuf::from("/src"));
        assert_eq!(e.args, ["sh", "-c", "echo a=b"].map(OsString::from));
        assert_eq!(e.env[0], ("A".into(), "1=2".into()));
        assert_eq!(e.env[1], ("EMPTY".into(), "".into()));
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        assert!(!is_exact(b"ls -l"));
        let no_program = request(&[("ids", "0:0")]);
        assert!(decode(&no_program).unwrap_err().contains("no program"));
        let no_ids = request(&[("arg", "true")]);
        assert!(decode(&no_ids).unwrap_err().contains("no ids"));
        let twice = request(&[("ids", "0:0"), ("ids", "1:1"), ("arg", "true")]);
        assert!(decode(&twice).unwrap_err().contains("unexpected record"));
        let bad_env = request(&[("ids", "0:0"), ("arg", "true"), ("env", "=x")]);
        assert!(decode(&bad_env).unwrap_err().contains("NAME=VALUE"));
        let mut dangling = request(&[("ids", "0:0"), ("arg", "true")]);
        dangling.extend_from_slice(b"cwd");
        assert!(decode(&dangling).unwrap_err().contains("no value"));
    }
}
