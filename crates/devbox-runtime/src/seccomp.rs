//! The seccomp filter of every devbox: allow everything except the system
//! calls that reach beyond the devbox or widen the kernel's attack surface
//! without need, as Docker's default profile does.
//!
//! Most of the denied calls already fail without `CAP_SYS_ADMIN`, which no
//! devbox holds. The filter matters for the one door left open: an
//! unprivileged process may create a user namespace, in which it holds every
//! capability, and from there mount filesystems or load BPF programs. So
//! creating user namespaces (`unshare`, `clone` with `CLONE_NEWUSER`) is
//! refused, and `clone3`, whose flags live in memory a filter cannot read,
//! reports ENOSYS so C libraries fall back to `clone`.

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// Refused with EPERM.
pub const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "iopl",
    "ioperm",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "swapoff",
    "swapon",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
];

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
const CLONE_NEWUSER: u64 = 0x1000_0000;

/// The architectures whose system calls the filter covers: a devbox may run
/// 32-bit programs, which must not slip past it.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    }
}

fn errno(names: &[&str], ret: u32) -> Result<LinuxSyscall, OciSpecError> {
    LinuxSyscallBuilder::default()
        .names(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(ret)
        .build()
}

/// The filter.
pub(crate) fn profile() -> Result<LinuxSeccomp, OciSpecError> {
    let clone_newuser = LinuxSyscallBuilder::default()
        .names(vec!["clone".to_owned()])
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(EPERM)
        .args(vec![
            LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(CLONE_NEWUSER)
                .value_two(CLONE_NEWUSER)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()?,
        ])
        .build()?;
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(architectures())
        .syscalls(vec![
            errno(DENIED, EPERM)?,
            errno(&["clone3"], ENOSYS)?,
            clone_newuser,
        ])
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_namespaces_and_host_reaching_calls_are_refused() {
        let p = profile().unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["defaultAction"], "SCMP_ACT_ALLOW");
        assert!(json["architectures"].as_array().unwrap().len() >= 2);
        let rules = json["syscalls"].as_array().unwrap();
        let denied = rules[0]["names"].as_array().unwrap();
        for name in ["unshare", "setns", "mount", "bpf", "keyctl", "kexec_load"] {
            assert!(denied.iter().any(|n| n == name), "{name}");
        }
        assert!(!denied.iter().any(|n| n == "ptrace"), "debuggers must work");
        assert_eq!(rules[0]["errnoRet"], 1);
        assert_eq!(rules[1]["names"][0], "clone3");
        assert_eq!(rules[1]["errnoRet"], 38);
        let arg = &rules[2]["args"][0];
        assert_eq!(rules[2]["names"][0], "clone");
        assert_eq!(arg["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(
            (arg["value"].as_u64(), arg["valueTwo"].as_u64()),
            (Some(CLONE_NEWUSER), Some(CLONE_NEWUSER))
        );
    }
}
