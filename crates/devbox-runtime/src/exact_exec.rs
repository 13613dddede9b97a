//! Exact execs: how the runtime asks the agent to start a process with the
//! very argument vector, environment, directory and user it resolved,
//! through an SSH `exec` request that no shell command can be mistaken
//! for. The agent decodes them (`devbox-agent`'s `ssh::exact`); the format
//! is `"\0devbox-exec/1\0"` then `KEY\0VALUE\0` records: `ids`
//! (`UID:GID[:GID,...]`), `cwd`, one `arg` per argument and one `env`
//! (`NAME=VALUE`) per variable.

use crate::users::ResolvedUser;

/// The prefix of an exact exec request.
const MAGIC: &[u8] = b"\0devbox-exec/1\0";

/// Whether an SSH exec request's command is an exact exec. The gateway
/// refuses these from users: only the runtime may name a process's user.
pub fn is_exact_exec(command: &[u8]) -> bool {
    command.starts_with(MAGIC)
}

#[cfg_attr(not(test), allow(dead_code))]
fn record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out.extend_from_slice(value);
    out.push(0);
}

/// The request that runs `args` as `user` in `cwd` with exactly `env`.
/// Values must not hold NUL bytes; the caller checked.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn encode(args: &[String], env: &[String], cwd: &str, user: &ResolvedUser) -> Vec<u8> {
    let mut ids = format!("{}:{}", user.uid, user.gid);
    if !user.additional_gids.is_empty() {
        let groups: Vec<String> = user.additional_gids.iter().map(u32::to_string).collect();
        ids = format!("{ids}:{}", groups.join(","));
    }
    let mut out = MAGIC.to_vec();
    record(&mut out, "ids", ids.as_bytes());
    record(&mut out, "cwd", cwd.as_bytes());
    for a in args {
        record(&mut out, "arg", a.as_bytes());
    }
    for e in env {
        record(&mut out, "env", e.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_marked_and_carry_every_record_in_order() {
        let user = ResolvedUser {
            uid: 1000,
            gid: 100,
            additional_gids: vec![10],
            home: None,
        };
        let r = encode(
            &["sh".into(), "-c".into(), "echo".into()],
            &["A=1".into()],
            "/src",
            &user,
        );
        assert!(is_exact_exec(&r));
        assert!(!is_exact_exec(b"sh -c echo"));
        let body = &r[MAGIC.len()..];
        let fields: Vec<&[u8]> = body.split(|&b| b == 0).collect();
        assert_eq!(
            fields,
            [
                &b"ids"[..],
                b"1000:100:10",
                b"cwd",
                b"/src",
                b"arg",
                b"sh",
                b"arg",
                b"-c",
                b"arg",
                b"echo",
                b"env",
                b"A=1",
                b""
            ]
        );
    }
}
