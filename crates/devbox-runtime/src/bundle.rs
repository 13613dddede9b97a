//! The runc bundle of a devbox (`config.json`) and the process specs of
//! execs, built from the devbox's spec without touching the system.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use devbox_model::{DevboxId, DevboxName, EnvVar, Resources};
use oci_spec::OciSpecError;
use oci_spec::runtime::{
    BoxBuilder, Capability, LinuxBuilder, LinuxCapabilities, LinuxCapabilitiesBuilder,
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, Process, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder, get_default_maskedpaths, get_default_readonly_paths,
};

use crate::users::ResolvedUser;

/// Where the agent appears inside every devbox.
pub const AGENT_PATH: &str = "/.devbox/agent";

/// Where the agent reports the startup command's state inside every devbox.
pub const RUN_PATH: &str = "/.devbox/run";

/// Where the agent finds its SSH keys inside every devbox.
pub const KEYS_PATH: &str = "/.devbox/keys";

/// The port the agent's SSH server listens on, on the loopback interface of
/// the devbox's network namespace.
pub const AGENT_SSH_PORT: u16 = 22022;

/// What a mount target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
}

/// A file of `/etc` the runtime writes for each devbox (into the devbox's
/// `etc/` directory) and bind-mounts read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EtcFile {
    Hosts,
    Hostname,
    ResolvConf,
}

impl EtcFile {
    pub const ALL: [EtcFile; 3] = [EtcFile::Hosts, EtcFile::Hostname, EtcFile::ResolvConf];

    pub fn name(self) -> &'static str {
        match self {
            EtcFile::Hosts => "hosts",
            EtcFile::Hostname => "hostname",
            EtcFile::ResolvConf => "resolv.conf",
        }
    }
}

/// What is mounted at a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A kernel filesystem (`/proc`, `/sys`, `/dev` and what lies below them).
    Kernel,
    /// The agent binary, read-only.
    Agent,
    /// One of the devbox's `/etc` files, read-only.
    Etc(EtcFile),
    /// The devbox's status directory, read-write.
    Run,
    /// The agent's keys, read-only.
    Keys,
}

/// A path the runtime mounts onto the root filesystem of every devbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    /// Relative to the root, as the stub layer holds it.
    pub path: &'static str,
    pub kind: Kind,
    pub source: Source,
}

/// Every mount target of a devbox, in one list: the bundle mounts onto
/// exactly these (and below the kernel ones), and the stub layer holds each
/// of them, so runc never creates a mount target in the upper directory
/// (which would then end up in a commit).
pub(crate) const TARGETS: &[Target] = &[
    Target {
        path: ".devbox/agent",
        kind: Kind::File,
        source: Source::Agent,
    },
    Target {
        path: ".devbox/run",
        kind: Kind::Dir,
        source: Source::Run,
    },
    Target {
        path: ".devbox/keys",
        kind: Kind::Dir,
        source: Source::Keys,
    },
    Target {
        path: "etc/hosts",
        kind: Kind::File,
        source: Source::Etc(EtcFile::Hosts),
    },
    Target {
        path: "etc/hostname",
        kind: Kind::File,
        source: Source::Etc(EtcFile::Hostname),
    },
    Target {
        path: "etc/resolv.conf",
        kind: Kind::File,
        source: Source::Etc(EtcFile::ResolvConf),
    },
    Target {
        path: "proc",
        kind: Kind::Dir,
        source: Source::Kernel,
    },
    Target {
        path: "sys",
        kind: Kind::Dir,
        source: Source::Kernel,
    },
    Target {
        path: "dev",
        kind: Kind::Dir,
        source: Source::Kernel,
    },
];

/// `PATH` when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `TERM` for a process with a terminal, when none is set.
pub const DEFAULT_TERM: &str = "xterm-256color";

/// The CFS period; the quota is `cpus` times this.
const CPU_PERIOD: u64 = 100_000;

/// Open files allowed per process, when the runtime may grant that many.
pub const NOFILE: u64 = 1_048_576;

/// Docker's default capability set: enough for package managers and
/// ordinary administration inside the devbox, nothing that reaches the host.
pub const CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Everything the bundle is made from.
#[derive(Debug)]
pub(crate) struct BundleInput<'a> {
    pub id: &'a DevboxId,
    pub hostname: &'a DevboxName,
    /// The mounted root filesystem.
    pub rootfs: PathBuf,
    /// The agent binary on the host.
    pub agent: PathBuf,
    /// The directory holding the devbox's [`EtcFile`]s.
    pub etc: PathBuf,
    /// The devbox's status directory, mounted at [`RUN_PATH`].
    pub run: PathBuf,
    /// The agent's keys, mounted at [`KEYS_PATH`].
    pub keys: PathBuf,
    /// Whether the agent serves SSH (the keys directory holds its keys).
    pub ssh: bool,
    /// The named network namespace to join.
    pub netns: PathBuf,
    pub resources: &'a Resources,
    pub env: &'a [EnvVar],
    pub workdir: &'a str,
    pub user: &'a ResolvedUser,
    pub command: Option<&'a [String]>,
    /// The open-file limit (soft and hard).
    pub nofile: u64,
}

/// The capabilities of a process running as `uid`. A non-root user gets the
/// set only as its bounding set, like a login on a normal machine: it holds
/// no capability unless it executes a program that grants one.
fn capabilities(uid: u32) -> Result<LinuxCapabilities, OciSpecError> {
    let all: HashSet<Capability> = CAPABILITIES.into_iter().collect();
    let held = if uid == 0 {
        all.clone()
    } else {
        HashSet::new()
    };
    LinuxCapabilitiesBuilder::default()
        .bounding(all)
        .effective(held.clone())
        .permitted(held)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
}

/// The environment of a process: `env` in order, then `PATH`, `HOME` and
/// `extra` for each of them that `env` does not set.
pub(crate) fn environment(
    env: &[EnvVar],
    user: &ResolvedUser,
    extra: &[(&str, &str)],
) -> Vec<String> {
    let mut out: Vec<String> = env.iter().map(ToString::to_string).collect();
    let has = |out: &[String], key: &str| {
        out.iter()
            .any(|e| e.split_once('=').is_some_and(|(k, _)| k == key))
    };
    let home = user
        .home
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            if user.uid == 0 {
                "/root".into()
            } else {
                "/".into()
            }
        });
    for (key, value) in [("PATH", DEFAULT_PATH), ("HOME", home.as_str())]
        .into_iter()
        .chain(extra.iter().copied())
    {
        if !has(&out, key) {
            out.push(format!("{key}={value}"));
        }
    }
    out
}

/// A working directory as an absolute path; empty means `/`.
pub(crate) fn workdir(dir: &str) -> Option<PathBuf> {
    if dir.is_empty() {
        return Some(PathBuf::from("/"));
    }
    Path::new(dir).is_absolute().then(|| PathBuf::from(dir))
}

fn rlimits(nofile: u64) -> Result<Vec<oci_spec::runtime::PosixRlimit>, OciSpecError> {
    Ok(vec![
        PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(nofile)
            .hard(nofile)
            .build()?,
    ])
}

fn process(
    args: Vec<String>,
    env: Vec<String>,
    cwd: PathBuf,
    user: &ResolvedUser,
    terminal: bool,
    nofile: u64,
) -> Result<Process, OciSpecError> {
    let mut u = UserBuilder::default().uid(user.uid).gid(user.gid);
    if !user.additional_gids.is_empty() {
        u = u.additional_gids(user.additional_gids.clone());
    }
    ProcessBuilder::default()
        .terminal(terminal)
        .user(u.build()?)
        .args(args)
        .env(env)
        .cwd(cwd)
        .capabilities(capabilities(user.uid)?)
        .rlimits(rlimits(nofile)?)
        .no_new_privileges(true)
        .build()
}

/// The process of a `runc exec`; `tty` is the terminal's size (rows, cols).
pub(crate) fn exec_process(
    cmd: &[String],
    env: &[EnvVar],
    cwd: PathBuf,
    user: &ResolvedUser,
    tty: Option<(u16, u16)>,
    nofile: u64,
) -> Result<Process, OciSpecError> {
    let extra: &[(&str, &str)] = if tty.is_some() {
        &[("TERM", DEFAULT_TERM)]
    } else {
        &[]
    };
    let env = environment(env, user, extra);
    let mut p = process(cmd.to_vec(), env, cwd, user, tty.is_some(), nofile)?;
    if let Some((rows, cols)) = tty {
        // runc sizes the terminal before the process starts; without it the
        // process could read a 0x0 size before runc copies the outer one.
        p.set_console_size(Some(
            BoxBuilder::default()
                .height(u64::from(rows))
                .width(u64::from(cols))
                .build()?,
        ));
    }
    Ok(p)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, OciSpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
}

fn bind(dest: &str, source: &Path, options: &[&str]) -> Result<Mount, OciSpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
}

/// The kernel filesystems, mounted first (runc mounts in order, and the
/// bind mounts below `/dev` or `/sys` would otherwise be hidden).
fn kernel_mounts() -> Result<Vec<Mount>, OciSpecError> {
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
    ])
}

fn mounts(input: &BundleInput<'_>) -> Result<Vec<Mount>, OciSpecError> {
    const RO: &[&str] = &["bind", "ro", "nosuid", "nodev"];
    const RW: &[&str] = &["bind", "rw", "nosuid", "nodev", "noexec"];
    let mut m = kernel_mounts()?;
    for t in TARGETS {
        let dest = format!("/{}", t.path);
        match t.source {
            Source::Kernel => {}
            Source::Agent => m.push(bind(&dest, &input.agent, RO)?),
            Source::Etc(f) => m.push(bind(&dest, &input.etc.join(f.name()), RO)?),
            Source::Run => m.push(bind(&dest, &input.run, RW)?),
            Source::Keys => m.push(bind(&dest, &input.keys, RO)?),
        }
    }
    Ok(m)
}

/// The cgroup of a devbox, relative to each hierarchy's root.
pub fn cgroup_path(id: &DevboxId) -> String {
    format!("/devbox/{id}")
}

/// The cgroup limits for `r`.
pub(crate) fn resources(r: &Resources) -> Result<oci_spec::runtime::LinuxResources, OciSpecError> {
    let quota = (r.cpus * CPU_PERIOD as f64).round().max(1000.0) as i64;
    LinuxResourcesBuilder::default()
        // Deny every device, then runc allows its standard set (null, zero,
        // full, random, urandom, tty, ptmx, pts): a devbox with CAP_MKNOD
        // must not open the host's disks.
        .devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()?,
        ])
        .cpu(
            LinuxCpuBuilder::default()
                .quota(quota)
                .period(CPU_PERIOD)
                .build()?,
        )
        .memory(
            LinuxMemoryBuilder::default()
                .limit(i64::try_from(r.memory.0).unwrap_or(i64::MAX))
                .build()?,
        )
        .pids(
            LinuxPidsBuilder::default()
                .limit(i64::from(r.pids))
                .build()?,
        )
        .build()
}

/// The complete runc spec of a devbox.
/// The init's arguments: the user its startup command runs as, the SSH
/// server when the agent has keys, then the command.
fn init_args(input: &BundleInput<'_>) -> Vec<String> {
    let u = input.user;
    let mut ids = format!("{}:{}", u.uid, u.gid);
    if !u.additional_gids.is_empty() {
        let groups: Vec<String> = u.additional_gids.iter().map(u32::to_string).collect();
        ids = format!("{ids}:{}", groups.join(","));
    }
    let mut args = vec![AGENT_PATH.to_owned(), "--user".to_owned(), ids];
    if input.ssh {
        args.extend([
            "--ssh-listen".to_owned(),
            format!("127.0.0.1:{AGENT_SSH_PORT}"),
            "--ssh-keys".to_owned(),
            KEYS_PATH.to_owned(),
        ]);
    }
    args.push("--".to_owned());
    args.extend(input.command.unwrap_or_default().iter().cloned());
    args
}

pub(crate) fn spec(input: &BundleInput<'_>) -> Result<Spec, OciSpecError> {
    let args = init_args(input);
    let env = environment(
        input.env,
        input.user,
        &[("HOSTNAME", input.hostname.as_str())],
    );
    let cwd = workdir(input.workdir).unwrap_or_else(|| PathBuf::from("/"));
    let ns = |typ| LinuxNamespaceBuilder::default().typ(typ).build();
    let mut masked = get_default_maskedpaths();
    masked.push("/sys/devices/virtual/powercap".to_owned());
    let linux = LinuxBuilder::default()
        .namespaces(vec![
            ns(LinuxNamespaceType::Pid)?,
            ns(LinuxNamespaceType::Mount)?,
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(input.netns.clone())
                .build()?,
            ns(LinuxNamespaceType::Ipc)?,
            ns(LinuxNamespaceType::Uts)?,
        ])
        .cgroups_path(PathBuf::from(cgroup_path(input.id)))
        .resources(resources(input.resources)?)
        .masked_paths(masked)
        .readonly_paths(get_default_readonly_paths())
        .seccomp(crate::seccomp::profile()?)
        .build()?;
    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(input.rootfs.clone())
                .readonly(false)
                .build()?,
        )
        .hostname(input.hostname.as_str())
        // The agent is root, so it can start SSH logins and execs as any
        // user; it starts the startup command as the image's user itself,
        // which then holds what runc would have given it.
        .process(process(
            args,
            env,
            cwd,
            &ResolvedUser::ROOT,
            false,
            input.nofile,
        )?)
        .mounts(mounts(input)?)
        .linux(linux)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use devbox_model::ByteSize;

    fn sample(user: &ResolvedUser, command: Option<&[String]>) -> Spec {
        let id: DevboxId = "0123456789abcdef".parse().unwrap();
        let name: DevboxName = "web".parse().unwrap();
        let resources = Resources {
            cpus: 1.5,
            memory: ByteSize::mib(512),
            pids: 100,
        };
        let env: Vec<EnvVar> = vec!["FOO=bar".parse().unwrap(), "HOME=/work".parse().unwrap()];
        spec(&BundleInput {
            id: &id,
            hostname: &name,
            rootfs: "/r/devboxes/0123456789abcdef/rootfs".into(),
            agent: "/r/bin/devbox-agent".into(),
            etc: "/r/devboxes/0123456789abcdef/etc".into(),
            run: "/r/devboxes/0123456789abcdef/run".into(),
            keys: "/r/devboxes/0123456789abcdef/keys".into(),
            ssh: true,
            netns: "/var/run/netns/devbox-0123456789abcdef".into(),
            resources: &resources,
            env: &env,
            workdir: "/src",
            user,
            command,
            nofile: NOFILE,
        })
        .unwrap()
    }

    #[test]
    fn the_bundle_isolates_the_devbox() {
        let s = sample(&ResolvedUser::ROOT, None);
        let linux = s.linux().as_ref().unwrap();
        let ns = linux.namespaces().as_ref().unwrap();
        let types: Vec<_> = ns.iter().map(|n| n.typ()).collect();
        assert_eq!(
            types,
            [
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::Network,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Uts
            ]
        );
        let net = ns
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::Network)
            .unwrap();
        assert_eq!(
            net.path().as_deref(),
            Some(Path::new("/var/run/netns/devbox-0123456789abcdef"))
        );
        assert_eq!(s.hostname().as_deref(), Some("web"));
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.no_new_privileges(), Some(true));
        let caps = p.capabilities().as_ref().unwrap();
        let want: HashSet<Capability> = CAPABILITIES.into_iter().collect();
        assert_eq!(caps.bounding().as_ref(), Some(&want));
        assert_eq!(caps.effective().as_ref(), Some(&want));
        assert_eq!(caps.permitted().as_ref(), Some(&want));
        assert!(caps.inheritable().as_ref().unwrap().is_empty());
        assert!(!want.contains(&Capability::SysAdmin) && !want.contains(&Capability::NetAdmin));
        assert!(
            linux
                .masked_paths()
                .as_ref()
                .unwrap()
                .contains(&"/proc/kcore".to_owned())
        );
        assert!(
            linux
                .readonly_paths()
                .as_ref()
                .unwrap()
                .contains(&"/proc/sys".to_owned())
        );
        let rl = &p.rlimits().as_ref().unwrap()[0];
        assert_eq!(
            (rl.typ(), rl.soft(), rl.hard()),
            (PosixRlimitType::RlimitNofile, NOFILE, NOFILE)
        );
        // The JSON runc reads uses the spec's field names.
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["process"]["noNewPrivileges"], true);
        assert_eq!(json["linux"]["cgroupsPath"], "/devbox/0123456789abcdef");
        assert_eq!(json["root"]["readonly"], false);
        assert_eq!(json["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
    }

    #[test]
    fn resources_become_cgroup_limits() {
        let s = sample(&ResolvedUser::ROOT, None);
        let r = s.linux().as_ref().unwrap().resources().as_ref().unwrap();
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(150_000), Some(100_000)));
        assert_eq!(
            r.memory().as_ref().unwrap().limit(),
            Some(512 * 1024 * 1024)
        );
        assert_eq!(r.pids().as_ref().unwrap().limit(), 100);
        let dev = &r.devices().as_ref().unwrap()[0];
        assert!(!dev.allow());
        assert_eq!(dev.access().as_deref(), Some("rwm"));
        assert_eq!(dev.typ(), None, "the first rule denies every device");
    }

    #[test]
    fn mounts_cover_the_kernel_filesystems_and_the_agent() {
        let s = sample(&ResolvedUser::ROOT, None);
        let mounts = s.mounts().as_ref().unwrap();
        let find = |d: &str| {
            mounts
                .iter()
                .find(|m| m.destination() == Path::new(d))
                .unwrap_or_else(|| panic!("no mount at {d}"))
        };
        assert_eq!(find("/proc").typ().as_deref(), Some("proc"));
        assert_eq!(find("/dev").typ().as_deref(), Some("tmpfs"));
        let pts = find("/dev/pts").options().clone().unwrap();
        assert!(pts.contains(&"newinstance".into()) && pts.contains(&"ptmxmode=0666".into()));
        assert_eq!(find("/dev/shm").typ().as_deref(), Some("tmpfs"));
        assert_eq!(find("/dev/mqueue").typ().as_deref(), Some("mqueue"));
        assert!(
            find("/sys")
                .options()
                .clone()
                .unwrap()
                .contains(&"ro".into())
        );
        assert!(
            find("/sys/fs/cgroup")
                .options()
                .clone()
                .unwrap()
                .contains(&"ro".into())
        );
        let agent = find(AGENT_PATH);
        assert_eq!(
            agent.source().as_deref(),
            Some(Path::new("/r/bin/devbox-agent"))
        );
        assert!(agent.options().clone().unwrap().contains(&"ro".into()));
        for f in ["hosts", "hostname", "resolv.conf"] {
            let m = find(&format!("/etc/{f}"));
            assert_eq!(
                m.source().clone().unwrap(),
                Path::new("/r/devboxes/0123456789abcdef/etc").join(f)
            );
            assert!(m.options().clone().unwrap().contains(&"ro".into()));
        }
        let run = find(RUN_PATH);
        assert_eq!(
            run.source().as_deref(),
            Some(Path::new("/r/devboxes/0123456789abcdef/run"))
        );
        let opts = run.options().clone().unwrap();
        assert!(opts.contains(&"rw".into()) && opts.contains(&"noexec".into()));
    }

    #[test]
    fn every_mount_lands_on_a_listed_target() {
        let s = sample(&ResolvedUser::ROOT, None);
        let listed: Vec<PathBuf> = TARGETS
            .iter()
            .map(|t| Path::new("/").join(t.path))
            .collect();
        let kernel: Vec<&PathBuf> = TARGETS
            .iter()
            .zip(&listed)
            .filter(|(t, _)| t.source == Source::Kernel)
            .map(|(_, p)| p)
            .collect();
        for m in s.mounts().as_ref().unwrap() {
            let dest = m.destination();
            assert!(
                listed.iter().any(|p| p == dest) || kernel.iter().any(|k| dest.starts_with(k)),
                "{} is mounted but not in TARGETS: the stub layer would not hold it",
                dest.display()
            );
        }
        // And every listed target is mounted.
        for p in &listed {
            assert!(
                s.mounts()
                    .as_ref()
                    .unwrap()
                    .iter()
                    .any(|m| m.destination() == p),
                "{} is listed but never mounted",
                p.display()
            );
        }
        for f in EtcFile::ALL {
            assert!(
                TARGETS.iter().any(|t| t.source == Source::Etc(f)),
                "{f:?} is written but not mounted"
            );
        }
        assert_eq!(format!("/{}", TARGETS[0].path), AGENT_PATH);
        assert_eq!(format!("/{}", TARGETS[1].path), RUN_PATH);
    }

    #[test]
    fn the_agent_runs_the_command_with_the_devbox_environment() {
        let cmd = ["sh".to_owned(), "-c".to_owned(), "echo hi".to_owned()];
        let s = sample(&ResolvedUser::ROOT, Some(&cmd));
        let p = s.process().as_ref().unwrap();
        assert_eq!(
            p.args().as_ref().unwrap(),
            &[
                "/.devbox/agent",
                "--user",
                "0:0",
                "--ssh-listen",
                "127.0.0.1:22022",
                "--ssh-keys",
                "/.devbox/keys",
                "--",
                "sh",
                "-c",
                "echo hi"
            ]
        );
        let env = p.env().as_ref().unwrap();
        assert_eq!(env[0], "FOO=bar");
        assert!(env.contains(&format!("PATH={DEFAULT_PATH}")));
        assert!(env.contains(&"HOSTNAME=web".to_owned()));
        // The devbox's own HOME wins over the user's.
        assert!(env.contains(&"HOME=/work".to_owned()));
        assert_eq!(env.iter().filter(|e| e.starts_with("HOME=")).count(), 1);
        assert!(!env.iter().any(|e| e.starts_with("TERM=")));
        assert_eq!(p.cwd(), Path::new("/src"));
        assert_eq!(p.terminal(), Some(false));

        let s = sample(&ResolvedUser::ROOT, None);
        let args = s.process().as_ref().unwrap().args().clone().unwrap();
        assert_eq!(args.last().map(String::as_str), Some("--"));
    }

    #[test]
    fn the_agent_is_root_and_starts_the_command_as_the_images_user() {
        let user = ResolvedUser {
            uid: 1000,
            gid: 100,
            additional_gids: vec![10, 999],
            home: Some("/home/dev".into()),
        };
        let s = sample(&user, None);
        let p = s.process().as_ref().unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
        let args = p.args().as_ref().unwrap();
        assert_eq!(&args[1..3], ["--user", "1000:100:10,999"]);
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(caps.effective().as_ref().unwrap().len(), 14);
    }

    #[test]
    fn a_non_root_exec_holds_no_capabilities() {
        let user = ResolvedUser {
            uid: 1000,
            gid: 100,
            additional_gids: vec![10, 999],
            home: Some("/home/dev".into()),
        };
        let p = exec_process(&["id".to_owned()], &[], "/".into(), &user, None, 1024).unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[10, 999][..]));
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps.effective().as_ref().unwrap().is_empty());
        assert!(caps.permitted().as_ref().unwrap().is_empty());
    }

    #[test]
    fn exec_processes_get_a_terminal_and_defaults() {
        let user = ResolvedUser {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![],
            home: Some("/home/dev".into()),
        };
        let cmd = ["bash".to_owned()];
        let p = exec_process(&cmd, &[], "/".into(), &user, Some((30, 100)), 1024).unwrap();
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.rlimits().as_ref().unwrap()[0].hard(), 1024);
        let size = p.console_size().unwrap();
        assert_eq!((size.height(), size.width()), (30, 100));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["consoleSize"]["height"], 30);
        let env = p.env().as_ref().unwrap();
        assert!(env.contains(&format!("TERM={DEFAULT_TERM}")));
        assert!(env.contains(&"HOME=/home/dev".to_owned()));
        assert!(env.contains(&format!("PATH={DEFAULT_PATH}")));
        let p = exec_process(
            &cmd,
            &["TERM=dumb".parse().unwrap()],
            "/".into(),
            &user,
            Some((24, 80)),
            1024,
        )
        .unwrap();
        let env = p.env().as_ref().unwrap();
        assert_eq!(
            env.iter()
                .filter(|e| e.starts_with("TERM="))
                .collect::<Vec<_>>(),
            ["TERM=dumb"]
        );
    }

    #[test]
    fn working_directories_must_be_absolute() {
        assert_eq!(workdir(""), Some(PathBuf::from("/")));
        assert_eq!(workdir("/src"), Some(PathBuf::from("/src")));
        assert_eq!(workdir("src"), None);
    }
}
