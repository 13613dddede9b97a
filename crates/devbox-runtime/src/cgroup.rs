//! What the kernel's cgroups say about a devbox: how many of its processes
//! the OOM killer ended, and the limits in force.
//!
//! runc puts a devbox in the cgroup [`crate::cgroup_path`] of every
//! hierarchy (the path is absolute, so relative to each hierarchy's root).
//! Machines differ in where a controller lives: cgroup v2 alone (one
//! hierarchy at `/sys/fs/cgroup`), v1 (one hierarchy per controller, like
//! `/sys/fs/cgroup/memory`), or hybrid (v1 controllers plus an empty v2
//! hierarchy at `/sys/fs/cgroup/unified`). The mount table says which holds
//! a controller: a v1 mount names its controllers in its options, a v2
//! hierarchy lists them in `cgroup.controllers`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use devbox_model::DevboxId;

use crate::bundle::cgroup_path;

/// Why a cgroup value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup hierarchy on this machine has the {controller} controller")]
    NoController { controller: &'static str },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} holds {content:?}, which is not a cgroup value")]
    Parse { path: PathBuf, content: String },
}

/// A cgroup hierarchy holding a controller.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    mount_point: PathBuf,
    v2: bool,
}

/// The cgroup mounts of a mount table (`/proc/self/mountinfo`): v1 ones with
/// their controllers, v2 ones with an empty list (their controllers are in
/// `cgroup.controllers`).
fn cgroup_mounts(mountinfo: &str) -> Vec<(PathBuf, bool, Vec<String>)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or("");
            let mount_point = PathBuf::from(unescape(mount_point));
            match fstype {
                "cgroup" => Some((
                    mount_point,
                    false,
                    options.split(',').map(str::to_owned).collect(),
                )),
                "cgroup2" => Some((mount_point, true, Vec::new())),
                _ => None,
            }
        })
        .collect()
}

/// Mount points in mountinfo escape space, tab, newline and backslash as
/// octal.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Picks the hierarchy of `controller`: a v1 mount naming it, or else a v2
/// hierarchy whose `cgroup.controllers` (read through `controllers`) has it.
fn pick(
    mounts: &[(PathBuf, bool, Vec<String>)],
    controller: &str,
    controllers: impl Fn(&Path) -> Option<String>,
) -> Option<Hierarchy> {
    let v1 = mounts
        .iter()
        .find(|(_, v2, opts)| !v2 && opts.iter().any(|o| o == controller));
    if let Some((mount_point, _, _)) = v1 {
        return Some(Hierarchy {
            mount_point: mount_point.clone(),
            v2: false,
        });
    }
    mounts
        .iter()
        .filter(|(_, v2, _)| *v2)
        .find(|(mp, _, _)| {
            controllers(&mp.join("cgroup.controllers"))
                .is_some_and(|c| c.split_whitespace().any(|c| c == controller))
        })
        .map(|(mp, _, _)| Hierarchy {
            mount_point: mp.clone(),
            v2: true,
        })
}

fn hierarchy(controller: &'static str) -> Result<Hierarchy, CgroupError> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").map_err(|source| CgroupError::Read {
            path: "/proc/self/mountinfo".into(),
            source,
        })?;
    pick(&cgroup_mounts(&mountinfo), controller, |p| {
        fs::read_to_string(p).ok()
    })
    .ok_or(CgroupError::NoController { controller })
}

/// The devbox's directory in `h`.
fn dir(h: &Hierarchy, id: &DevboxId) -> PathBuf {
    h.mount_point.join(cgroup_path(id).trim_start_matches('/'))
}

fn read(path: PathBuf) -> Result<String, CgroupError> {
    match fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().to_owned()),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// The `oom_kill` count of a `memory.events` (v2) or `memory.oom_control`
/// (v1) file.
fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// The file with the devbox's `oom_kill` counter, whether or not the cgroup
/// exists yet; `None` when no hierarchy has the memory controller.
pub(crate) fn oom_events_file(id: &DevboxId) -> Option<PathBuf> {
    let h = hierarchy("memory").ok()?;
    let file = if h.v2 {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    Some(dir(&h, id).join(file))
}

/// How many processes of the devbox the kernel killed for lack of memory
/// since its container started (the cgroup is made anew at each start).
/// 0 when the devbox has no cgroup, or the kernel does not count.
pub fn oom_kills(id: &DevboxId) -> u64 {
    oom_events_file(id)
        .and_then(|f| fs::read_to_string(f).ok())
        .and_then(|t| parse_oom_kill(&t))
        .unwrap_or(0)
}

/// A value that may be `max` (no limit).
fn limit(
    path: PathBuf,
    text: &str,
    v1_unlimited: impl Fn(u64) -> bool,
) -> Result<Option<u64>, CgroupError> {
    if text == "max" {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(v) if v1_unlimited(v) => Ok(None),
        Ok(v) => Ok(Some(v)),
        // v1 writes -1 for no limit in some files.
        Err(_) if text == "-1" => Ok(None),
        Err(_) => Err(CgroupError::Parse {
            path,
            content: text.to_owned(),
        }),
    }
}

/// The devbox's memory limit in bytes in force (`memory.max`, or v1's
/// `memory.limit_in_bytes`); `None` for no limit.
pub fn memory_limit(id: &DevboxId) -> Result<Option<u64>, CgroupError> {
    let h = hierarchy("memory")?;
    let file = if h.v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let path = dir(&h, id).join(file);
    let text = read(path.clone())?;
    // v1 reports "no limit" as the largest page-aligned signed value.
    limit(path, &text, |v| !h.v2 && v >= 1 << 62)
}

/// The memory the devbox's processes use now, in bytes (`memory.current`,
/// or v1's `memory.usage_in_bytes`), page cache included, as the kernel
/// charges it against the limit.
pub fn memory_usage(id: &DevboxId) -> Result<u64, CgroupError> {
    let h = hierarchy("memory")?;
    let file = if h.v2 {
        "memory.current"
    } else {
        "memory.usage_in_bytes"
    };
    let path = dir(&h, id).join(file);
    let text = read(path.clone())?;
    text.parse().map_err(|_| CgroupError::Parse {
        path,
        content: text.clone(),
    })
}

/// The CPU time the devbox's processes used since its cgroup was made
/// (`cpu.stat`'s `usage_usec`, or v1's `cpuacct.usage` in nanoseconds).
pub fn cpu_usage(id: &DevboxId) -> Result<std::time::Duration, CgroupError> {
    let (h, file) = match hierarchy("cpu") {
        Ok(h) if h.v2 => (h, "cpu.stat"),
        _ => (hierarchy("cpuacct")?, "cpuacct.usage"),
    };
    let path = dir(&h, id).join(file);
    let text = read(path.clone())?;
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    let usage = if h.v2 {
        text.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(parse)
            .map(std::time::Duration::from_micros)
    } else {
        parse(&text).map(std::time::Duration::from_nanos)
    };
    usage.ok_or(CgroupError::Parse {
        path,
        content: text,
    })
}

/// A CPU bandwidth limit: `quota` microseconds of CPU time per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuLimit {
    /// `None`: no limit.
    pub quota: Option<u64>,
    pub period: u64,
}

/// The devbox's CPU limit in force (`cpu.max`, or v1's `cpu.cfs_quota_us`
/// and `cpu.cfs_period_us`).
pub fn cpu_limit(id: &DevboxId) -> Result<CpuLimit, CgroupError> {
    let h = hierarchy("cpu")?;
    let d = dir(&h, id);
    let parse_period = |path: PathBuf, text: &str| {
        text.parse::<u64>().map_err(|_| CgroupError::Parse {
            path,
            content: text.to_owned(),
        })
    };
    if h.v2 {
        let path = d.join("cpu.max");
        let text = read(path.clone())?;
        let (quota, period) = text.split_once(' ').ok_or_else(|| CgroupError::Parse {
            path: path.clone(),
            content: text.clone(),
        })?;
        return Ok(CpuLimit {
            quota: limit(path.clone(), quota, |_| false)?,
            period: parse_period(path, period)?,
        });
    }
    let quota_path = d.join("cpu.cfs_quota_us");
    let quota = read(quota_path.clone())?;
    let period_path = d.join("cpu.cfs_period_us");
    let period = read(period_path.clone())?;
    Ok(CpuLimit {
        quota: limit(quota_path, &quota, |_| false)?,
        period: parse_period(period_path, &period)?,
    })
}

/// The devbox's process limit in force (`pids.max`, the same in v1 and v2);
/// `None` for no limit.
pub fn pids_limit(id: &DevboxId) -> Result<Option<u64>, CgroupError> {
    let h = hierarchy("pids")?;
    let path = dir(&h, id).join("pids.max");
    let text = read(path.clone())?;
    limit(path, &text, |_| false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mount table of a hybrid machine (v1 controllers, an empty v2).
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A machine with cgroup v2 alone, and a v1 mount with joined controllers.
    const V2: &str = "\
25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
26 20 0:23 / /mnt/old\\040cg rw - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn a_hybrid_machine_keeps_memory_in_v1() {
        let mounts = cgroup_mounts(HYBRID);
        assert_eq!(mounts.len(), 6);
        // The v2 hierarchy of a hybrid machine has no memory controller.
        let controllers = |p: &Path| {
            assert_eq!(p, Path::new("/sys/fs/cgroup/unified/cgroup.controllers"));
            Some("hugetlb\n".to_owned())
        };
        let h = pick(&mounts, "memory", controllers).unwrap();
        assert_eq!(
            h,
            Hierarchy {
                mount_point: "/sys/fs/cgroup/memory".into(),
                v2: false
            }
        );
        // `cpu` is not `cpuacct`.
        let h = pick(&mounts, "cpu", controllers).unwrap();
        assert_eq!(h.mount_point, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(pick(&mounts, "io", controllers), None);
        let id: DevboxId = "0123456789abcdef".parse().unwrap();
        assert_eq!(
            dir(&h, &id),
            Path::new("/sys/fs/cgroup/cpu/devbox/0123456789abcdef")
        );
    }

    #[test]
    fn a_v2_machine_lists_its_controllers_in_a_file() {
        let mounts = cgroup_mounts(V2);
        assert_eq!(mounts[1].0, Path::new("/mnt/old cg"), "octal escapes");
        let controllers = |_: &Path| Some("cpuset cpu io memory hugetlb pids\n".to_owned());
        let h = pick(&mounts, "memory", controllers).unwrap();
        assert_eq!(
            h,
            Hierarchy {
                mount_point: "/sys/fs/cgroup".into(),
                v2: true
            }
        );
        // A v1 mount naming the controller wins: it is where runc puts it.
        assert_eq!(
            pick(&mounts, "cpu", controllers).unwrap().mount_point,
            Path::new("/mnt/old cg")
        );
        assert_eq!(pick(&mounts, "memory", |_| None), None);
    }

    #[test]
    fn oom_counts_and_limits_parse() {
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(parse_oom_kill("low 0\noom 1\noom_kill 1\n"), Some(1));
        assert_eq!(parse_oom_kill("under_oom 0\n"), None);
        let p = || PathBuf::from("/x");
        assert_eq!(limit(p(), "max", |_| false).unwrap(), None);
        assert_eq!(limit(p(), "-1", |_| false).unwrap(), None);
        assert_eq!(
            limit(p(), "268435456", |_| false).unwrap(),
            Some(268_435_456)
        );
        assert_eq!(
            limit(p(), "9223372036854771712", |v| v >= 1 << 62).unwrap(),
            None
        );
        let e = limit(p(), "lots", |_| false).unwrap_err().to_string();
        assert!(e.contains("/x") && e.contains("lots"), "{e}");
    }

    #[test]
    fn a_devbox_without_a_cgroup_has_no_oom_kills() {
        let id: DevboxId = "fedcba9876543210".parse().unwrap();
        assert_eq!(oom_kills(&id), 0);
    }
}
