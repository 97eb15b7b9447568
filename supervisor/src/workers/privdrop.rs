//! The privilege drop a worker goes through between fork and exec.
//!
//! Runs in the forked child of a single-threaded supervisor, so it may only
//! make raw syscalls: no allocation, no locks. The order matters and is
//! commented step by step; the worker re-checks the result after exec
//! (`palisade_worker_runtime::privilege::verify_unprivileged`).

use std::io;

/// Credentials a worker runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// uid (never 0).
    pub uid: libc::uid_t,
    /// gid (never 0).
    pub gid: libc::gid_t,
}

/// Highest capability number the kernel knows, found before forking: `PR_CAPBSET_READ`
/// fails with EINVAL above it (what libcap does; /proc/sys/kernel/cap_last_cap says the
/// same, but the unit hides /proc/sys with `ProcSubset=pid`).
pub fn last_cap() -> u32 {
    let mut last = 0;
    for cap in 0..64_u32 {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) } < 0 {
            break;
        }
        last = cap;
    }
    last
}

/// Address space a worker may map (`RLIMIT_AS`, soft and hard): about ten times what the
/// largest worker maps under load (the 16 MiB ring mapping included), so a parser that
/// allocates without bound fails its allocation and dies (restarted, counted) long before the
/// appliance runs short of memory.
pub const ADDRESS_SPACE_MAX: u64 = 256 << 20;

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Drops every privilege. `ipc_fd` becomes FD 3; every other FD above 2 is
/// marked close-on-exec (FDs 0-2 are /dev/null, set up by `Command`).
///
/// # Safety
/// Call only between fork and exec in a single-threaded parent.
pub unsafe fn drop_in_child(
    creds: Credentials,
    ipc_fd: libc::c_int,
    last_cap: u32,
    parent: libc::pid_t,
) -> io::Result<()> {
    // SAFETY (whole block): raw syscalls with valid arguments; no memory is
    // shared with other threads (there are none after fork).
    unsafe {
        // 1. The IPC socket goes to FD 3, without close-on-exec.
        if ipc_fd == 3 {
            check(libc::fcntl(3, libc::F_SETFD, 0))?;
        } else {
            check(libc::dup2(ipc_fd, 3))?;
        }
        // 2. Everything else above FD 3 closes at exec (std's exec-error pipe
        //    already does; marking instead of closing keeps it working).
        check(libc::syscall(
            libc::SYS_close_range,
            4u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) as libc::c_int)?;
        // 2a. A ceiling on memory: soft and hard, so the worker cannot raise it.
        let limit = libc::rlimit {
            rlim_cur: ADDRESS_SPACE_MAX,
            rlim_max: ADDRESS_SPACE_MAX,
        };
        check(libc::setrlimit(libc::RLIMIT_AS, &limit))?;
        // 2b. Own process group: a Ctrl-C or SIGHUP meant for the supervisor's
        //     terminal (its foreground process group) never reaches a worker
        //     directly; the supervisor stops its workers itself. Not its own
        //     session: a new session is a new scheduler autogroup, which would
        //     give each worker the CPU share of a whole terminal session and
        //     take it out of the nice level and cgroup weight the daemon runs
        //     with. Workers keep the daemon's scheduling settings.
        check(libc::setpgid(0, 0))?;
        // 3. No supplementary groups (needs CAP_SETGID: before setresuid).
        check(libc::setgroups(0, std::ptr::null()))?;
        // 4. Primary group, real/effective/saved.
        check(libc::setresgid(creds.gid, creds.gid, creds.gid))?;
        // 5. Empty the bounding set (needs CAP_SETPCAP: before setresuid).
        for cap in 0..=last_cap {
            check(libc::prctl(
                libc::PR_CAPBSET_DROP,
                cap as libc::c_ulong,
                0,
                0,
                0,
            ))?;
        }
        // 6. Empty the ambient set.
        check(libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        ))?;
        // 7. The user, real/effective/saved. Without SECBIT_KEEP_CAPS this
        //    clears the permitted and effective sets.
        check(libc::setresuid(creds.uid, creds.uid, creds.uid))?;
        // 8. Clear the inheritable set too (and re-assert effective/permitted
        //    empty) with capset(2), v3 header, two zeroed data words.
        #[repr(C)]
        struct CapHeader {
            version: u32,
            pid: libc::c_int,
        }
        #[repr(C)]
        struct CapData {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [
            CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
            CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
        ];
        check(libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        ) as libc::c_int)?;
        // 9. No exec may ever grant privileges again (setuid bits, file caps).
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        // 10. Die with the supervisor. Set after setresuid, which clears it;
        //     if the parent already died, exit now.
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        if libc::getppid() != parent {
            libc::_exit(0);
        }
    }
    Ok(())
}

/// Restores default signal dispositions that exec would otherwise inherit
/// (the supervisor ignores SIGPIPE) and unblocks every signal.
///
/// # Safety
/// Between fork and exec only.
pub unsafe fn reset_signals() {
    // SAFETY: plain libc calls on a zeroed, initialised sigset.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn last_cap_agrees_with_proc() {
        let proc: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .expect("cap_last_cap")
            .trim()
            .parse()
            .expect("a number");
        assert_eq!(super::last_cap(), proc);
    }
}
