//! The worker's seccomp allow-list, installed after the ring buffer is
//! mapped and before the first record is read.
//!
//! Everything a running worker does is reading/writing FDs it already holds,
//! polling, the clock and memory management. No `open`, no `socket`, no
//! `bpf`, no `execve`, no `ptrace`: a parser compromised by hostile bytes can
//! write garbage to its own sink and nothing else. Anything outside the list
//! kills the process (SIGSYS), which the supervisor reports and restarts.
//!
//! One exception to killing: calls that name a path (`open`, `openat`,
//! `openat2`, and the stats `newfstatat` and `statx`) fail with EACCES
//! instead. Library code probes files it can live without (the standard
//! library's `available_parallelism`, which the regex crate calls when it
//! compiles a pattern, reads cgroup files); failing those calls keeps the
//! worker running and still opens, or learns about, no file. Two filters do
//! it: the first answers EACCES for path calls and allows the rest, the
//! second is the allow-list (path calls included); the kernel applies the
//! stricter verdict of the two, so a path call gets EACCES and anything off
//! the list still kills. `fstat` of a held descriptor stays allowed as the
//! plain `fstat` syscall; glibc's `fstat()`, which goes through
//! `newfstatat(fd, "", AT_EMPTY_PATH)`, is only used before the filter.

use std::{collections::BTreeMap, os::fd::RawFd};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Why the filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The filter could not be built (a bug).
    #[error("building the seccomp filter")]
    Build(#[source] seccompiler::BackendError),
    /// The architecture is not supported by seccompiler.
    #[error("seccomp filter: unsupported architecture")]
    Arch,
    /// The kernel refused the filter (seccomp(SECCOMP_SET_MODE_FILTER)).
    #[error("installing the seccomp filter (seccomp(SECCOMP_SET_MODE_FILTER))")]
    Install(#[source] seccompiler::Error),
}

/// Calls that write to or send on a descriptor: allowed on any descriptor but the
/// receive-only ones (AF_PACKET sockets, see [`install`]).
const SENDING: &[libc::c_long] = &[
    libc::SYS_write,
    libc::SYS_writev,
    // The DHCP worker's state file, rewritten in place.
    libc::SYS_pwrite64,
    libc::SYS_sendmsg,
];

/// Syscalls allowed with any arguments.
const ALLOWED: &[libc::c_long] = &[
    // Event loop and FD I/O on FDs the worker already holds (its packet socket included:
    // reading is what it is for).
    libc::SYS_read,
    // The DHCP worker's state file and registry memfd, read and rewritten in place.
    libc::SYS_pread64,
    libc::SYS_ftruncate,
    libc::SYS_recvmsg,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    libc::SYS_close,
    libc::SYS_fstat,
    // Clock (normally vDSO; the fallback is a syscall).
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    // Memory management for the allocator (exec mappings are refused below).
    libc::SYS_brk,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    // Threads/locks and signals used by the Rust runtime.
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_getrandom,
    // Read-only: the CPUs this process may run on (std's
    // available_parallelism, called by the regex crate).
    libc::SYS_sched_getaffinity,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// fcntl only as F_GETFD: Rust's `OwnedFd` drop checks the FD is open with
/// it in debug builds. No flag changes once the filter is in.
const FCNTL_GETFD_ONLY: libc::c_long = libc::SYS_fcntl;

/// Calls naming a path: allowed by the allow-list filter, answered EACCES by the first.
const PATH_CALLS: &[libc::c_long] = &[
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_newfstatat,
    libc::SYS_statx,
];

/// mmap/mprotect allowed only without PROT_EXEC.
const NO_EXEC: &[libc::c_long] = &[libc::SYS_mmap, libc::SYS_mprotect];

/// Builds the filter that answers EACCES to calls naming a path.
pub fn build_deny_opens() -> Result<BpfProgram, SeccompError> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> =
        PATH_CALLS.iter().map(|nr| (*nr, vec![])).collect();
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|_| SeccompError::Arch)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )
    .map_err(SeccompError::Build)?;
    filter.try_into().map_err(SeccompError::Build)
}

/// Builds the allow-list filter program; the [`SENDING`] calls are refused (the process is
/// killed) on the descriptors in `receive_only`.
pub fn build(receive_only: &[RawFd]) -> Result<BpfProgram, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED
        .iter()
        .chain(PATH_CALLS)
        .map(|nr| (*nr, vec![]))
        .collect();
    for nr in SENDING {
        if receive_only.is_empty() {
            rules.insert(*nr, vec![]);
            continue;
        }
        // One rule whose conditions all hold: the descriptor (argument 0) is none of them.
        let conds = receive_only
            .iter()
            .map(|fd| {
                SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Ne,
                    u64::from(fd.unsigned_abs()),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(SeccompError::Build)?;
        rules.insert(
            *nr,
            vec![SeccompRule::new(conds).map_err(SeccompError::Build)?],
        );
    }
    for nr in NO_EXEC {
        let cond = SeccompCondition::new(
            2,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )
        .map_err(SeccompError::Build)?;
        rules.insert(
            *nr,
            vec![SeccompRule::new(vec![cond]).map_err(SeccompError::Build)?],
        );
    }
    let getfd = SeccompCondition::new(
        1,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::F_GETFD as u64,
    )
    .map_err(SeccompError::Build)?;
    rules.insert(
        FCNTL_GETFD_ONLY,
        vec![SeccompRule::new(vec![getfd]).map_err(SeccompError::Build)?],
    );
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|_| SeccompError::Arch)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )
    .map_err(SeccompError::Build)?;
    filter.try_into().map_err(SeccompError::Build)
}

/// Installs the filter on every thread of the process. Requires
/// no_new_privs (checked earlier by [`crate::privilege::verify_unprivileged`]).
///
/// `receive_only`: descriptors nothing may be written to or sent on (the AF_PACKET sockets
/// of a worker capturing without eBPF). A packet socket sends frames on `write` or
/// `sendmsg` without any capability (CAP_NET_RAW is checked when the socket is created,
/// not when it sends), and AF_PACKET has no `shutdown(SHUT_WR)`: the filter is what makes
/// the socket receive-only. The worker cannot get another number for it: `dup`, `dup2`,
/// `dup3` and `fcntl(F_DUPFD)` are not in the allow-list.
pub fn install(receive_only: &[RawFd]) -> Result<(), SeccompError> {
    let deny_opens = build_deny_opens()?;
    let allow_list = build(receive_only)?;
    seccompiler::apply_filter_all_threads(&deny_opens).map_err(SeccompError::Install)?;
    seccompiler::apply_filter_all_threads(&allow_list).map_err(SeccompError::Install)
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_builds_for_this_arch() {
        let prog = super::build(&[]).expect("filter builds");
        assert!(prog.len() > 10);
        let receive_only = super::build(&[4, 7]).expect("filter builds");
        assert!(receive_only.len() > prog.len());
        assert!(!super::build_deny_opens().expect("builds").is_empty());
    }
}
