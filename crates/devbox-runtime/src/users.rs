//! Resolving an image's `User` (`name`, `uid`, `uid:gid`, `name:group`, ...)
//! to numeric IDs through the devbox's own `/etc/passwd` and `/etc/group`,
//! the way Docker does: a numeric user needs no entry, a name must have one.

use std::io::Read;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// The IDs and home directory a process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: every group listing the user as a member.
    pub additional_gids: Vec<u32>,
    /// The home directory from `/etc/passwd`, when the user has an entry.
    pub home: Option<String>,
}

impl ResolvedUser {
    pub const ROOT: ResolvedUser = ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: None,
    };
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || line.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

fn group_entries(group: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    group.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || line.starts_with('#') {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f[3].split(',').filter(|m| !m.is_empty()).collect(),
        })
    })
}

/// Resolves `user` against the contents of `/etc/passwd` and `/etc/group`.
/// `None` or an empty string means root. The error is a reason phrase.
pub fn resolve(user: Option<&str>, passwd: &str, group: &str) -> Result<ResolvedUser, String> {
    let spec = user.map(str::trim).unwrap_or("");
    if spec.is_empty() {
        let mut root = ResolvedUser::ROOT;
        root.home = passwd_entries(passwd)
            .find(|e| e.uid == 0)
            .map(|e| e.home.to_owned());
        return Ok(root);
    }
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() {
        return Err("the user part is empty".to_owned());
    }
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|e| e.uid == uid),
        Err(_) => Some(
            passwd_entries(passwd)
                .find(|e| e.name == user_part)
                .ok_or_else(|| format!("no user named {user_part:?} in the image's /etc/passwd"))?,
        ),
    };
    let uid = match &entry {
        Some(e) => e.uid,
        None => user_part.parse().expect("numeric when there is no entry"),
    };
    let gid = match group_part {
        None => entry.as_ref().map_or(0, |e| e.gid),
        Some("") => return Err("the group part is empty".to_owned()),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(group)
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| format!("no group named {g:?} in the image's /etc/group"))?,
        },
    };
    let mut additional_gids = Vec::new();
    if let Some(e) = &entry {
        for g in group_entries(group) {
            if g.members.contains(&e.name) && g.gid != gid && !additional_gids.contains(&g.gid) {
                additional_gids.push(g.gid);
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: entry.map(|e| e.home.to_owned()),
    })
}

/// Reads a file of the devbox's root filesystem, resolving symlinks as if
/// `root` were `/`: an image cannot point the runtime at a host file. A
/// missing file reads as empty.
pub(crate) fn read_in_root(root: &Path, path: &str) -> std::io::Result<String> {
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = match rustix::fs::openat2(
        &dir,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(String::new()),
        Err(e) => return Err(e.into()),
    };
    let mut s = String::new();
    // The files are small; a huge one is not a passwd file worth reading whole.
    std::fs::File::from(fd)
        .take(16 << 20)
        .read_to_string(&mut s)?;
    Ok(s)
}

/// Resolves `user` in the devbox whose root filesystem is at `root`.
pub(crate) fn resolve_in(root: &Path, user: Option<&str>) -> Result<ResolvedUser, String> {
    let passwd = read_in_root(root, "/etc/passwd").map_err(|e| format!("read /etc/passwd: {e}"))?;
    let group = read_in_root(root, "/etc/group").map_err(|e| format!("read /etc/group: {e}"))?;
    resolve(user, &passwd, &group)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        dev:x:1000:1000:Dev:/home/dev:/bin/bash\n\
        broken line\n";
    const GROUP: &str = "root:x:0:\n\
        wheel:x:10:dev,ops\n\
        docker:x:999:dev\n\
        dev:x:1000:\n\
        staff:x:50:\n";

    fn r(user: &str) -> Result<ResolvedUser, String> {
        resolve(Some(user), PASSWD, GROUP)
    }

    #[test]
    fn no_user_is_root_with_roots_home() {
        let u = resolve(None, PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_deref()), (0, 0, Some("/root")));
        assert_eq!(resolve(Some(""), "", "").unwrap(), ResolvedUser::ROOT);
    }

    #[test]
    fn names_resolve_with_supplementary_groups() {
        let u = r("dev").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![10, 999]);
        assert_eq!(u.home.as_deref(), Some("/home/dev"));
    }

    #[test]
    fn numeric_users_need_no_entry() {
        let u = r("1000").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        let u = r("4242").unwrap();
        assert_eq!((u.uid, u.gid, u.home), (4242, 0, None));
        let u = r("4242:77").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 77));
    }

    #[test]
    fn groups_override_the_primary_group() {
        let u = r("dev:staff").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        let u = r("daemon:10").unwrap();
        assert_eq!((u.uid, u.gid), (1, 10));
        // The explicit primary group is not repeated as supplementary.
        let u = r("dev:wheel").unwrap();
        assert_eq!((u.gid, u.additional_gids), (10, vec![999]));
    }

    #[test]
    fn unknown_names_are_clear_errors() {
        let e = r("nobody").unwrap_err();
        assert!(e.contains("no user named \"nobody\""), "{e}");
        let e = r("dev:nogroup").unwrap_err();
        assert!(e.contains("no group named \"nogroup\""), "{e}");
        assert!(r(":1").is_err());
        assert!(r("1:").is_err());
    }

    #[test]
    fn files_are_read_inside_the_root_even_through_absolute_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/passwd"), "inside\n").unwrap();
        std::fs::write(dir.path().join("outside"), "outside\n").unwrap();
        // An absolute symlink resolves against the devbox's root, not the host's.
        std::os::unix::fs::symlink("/real/passwd", root.join("etc/passwd")).unwrap();
        assert_eq!(read_in_root(&root, "/etc/passwd").unwrap(), "inside\n");
        std::os::unix::fs::symlink("../../outside", root.join("etc/group")).unwrap();
        assert_eq!(read_in_root(&root, "/etc/group").unwrap(), "");
        assert_eq!(read_in_root(&root, "/etc/missing").unwrap(), "");
    }
}
