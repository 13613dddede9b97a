//! The login user of an SSH connection, from the devbox's own `/etc/passwd`
//! and `/etc/group`: its IDs, supplementary groups, home and shell.
//!
//! The SSH user name the control plane logs in with is a name from the
//! image's `/etc/passwd` or a numeric `UID` (`UID:GID` too). Root always
//! exists, even in an image without a passwd file.

use std::path::Path;

use crate::args::Ids;

/// The shell when the passwd entry names none, or one the image lacks.
pub const FALLBACK_SHELL: &str = "/bin/sh";

/// Who a connection's processes run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub name: String,
    pub ids: Ids,
    pub home: String,
    pub shell: String,
}

impl Login {
    /// Whether the login is root: only root may run exact execs, which name
    /// their own user.
    pub fn is_root(&self) -> bool {
        self.ids.uid == 0
    }
}

struct Entry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
    shell: &'a str,
}

fn entries(passwd: &str) -> impl Iterator<Item = Entry<'_>> {
    passwd.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || line.starts_with('#') {
            return None;
        }
        Some(Entry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
            shell: f[6],
        })
    })
}

/// Every group of `/etc/group` that lists `name` as a member, except `gid`.
fn groups_of(group: &str, name: &str, gid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for line in group.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let Ok(g) = f[2].parse::<u32>() else { continue };
        if g != gid && !out.contains(&g) && f[3].split(',').any(|m| m == name) {
            out.push(g);
        }
    }
    out
}

/// Resolves the SSH user name `user` against the contents of `/etc/passwd`
/// and `/etc/group`. The error says what is wrong, for the client.
pub fn resolve(user: &str, passwd: &str, group: &str) -> Result<Login, String> {
    let (user_part, gid_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => entries(passwd).find(|e| e.uid == uid),
        Err(_) => entries(passwd).find(|e| e.name == user_part),
    };
    let login = match (entry, user_part.parse::<u32>()) {
        (Some(e), _) => Login {
            name: e.name.to_owned(),
            ids: Ids {
                uid: e.uid,
                gid: e.gid,
                groups: groups_of(group, e.name, e.gid),
            },
            home: e.home.to_owned(),
            shell: e.shell.to_owned(),
        },
        (None, Ok(uid)) => Login {
            name: if uid == 0 {
                "root".into()
            } else {
                uid.to_string()
            },
            ids: Ids {
                uid,
                gid: if uid == 0 { 0 } else { uid },
                groups: Vec::new(),
            },
            home: if uid == 0 { "/root".into() } else { "/".into() },
            shell: FALLBACK_SHELL.into(),
        },
        (None, Err(_)) if user_part == "root" => Login {
            name: "root".into(),
            ids: Ids::ROOT,
            home: "/root".into(),
            shell: FALLBACK_SHELL.into(),
        },
        (None, Err(_)) => {
            return Err(format!("no user named {user_part:?} in /etc/passwd"));
        }
    };
    match gid_part {
        None => Ok(login),
        Some(g) => {
            let gid = g
                .parse()
                .map_err(|_| format!("the group of {user:?} is not a number"))?;
            Ok(Login {
                ids: Ids { gid, ..login.ids },
                ..login
            })
        }
    }
}

/// Resolves `user` in this devbox.
pub fn resolve_here(user: &str) -> Result<Login, String> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    resolve(user, &read("/etc/passwd"), &read("/etc/group"))
}

/// The shell to run for `login`: its own when the image has it.
pub fn shell(login: &Login) -> String {
    if !login.shell.is_empty() && Path::new(&login.shell).exists() {
        login.shell.clone()
    } else {
        FALLBACK_SHELL.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        dev:x:1000:1000:Dev:/home/dev:/bin/zsh\n\
        # dev2:x:1001:1001::/home/dev2:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:dev\ndev:x:1000:\ndocker:x:999:ops,dev\n";

    #[test]
    fn names_resolve_with_home_shell_and_groups() {
        let l = resolve("dev", PASSWD, GROUP).unwrap();
        assert_eq!(l.ids.uid, 1000);
        assert_eq!(l.ids.groups, vec![10, 999]);
        assert_eq!(
            (l.home.as_str(), l.shell.as_str()),
            ("/home/dev", "/bin/zsh")
        );
        let r = resolve("root", PASSWD, GROUP).unwrap();
        assert!(r.is_root());
        assert_eq!(r.shell, "/bin/bash");
    }

    #[test]
    fn numbers_need_no_entry_and_root_always_exists() {
        let l = resolve("4242", PASSWD, GROUP).unwrap();
        assert_eq!((l.ids.uid, l.ids.gid, l.home.as_str()), (4242, 4242, "/"));
        let l = resolve("1000:50", PASSWD, GROUP).unwrap();
        assert_eq!((l.name.as_str(), l.ids.gid), ("dev", 50));
        let r = resolve("root", "", "").unwrap();
        assert_eq!((r.ids.uid, r.home.as_str()), (0, "/root"));
    }

    #[test]
    fn unknown_names_are_refused_clearly() {
        let e = resolve("dev2", PASSWD, GROUP).unwrap_err();
        assert!(e.contains("no user named \"dev2\""), "{e}");
        assert!(resolve("dev:staff", PASSWD, GROUP).is_err());
    }
}
