//! The worker's own check that it holds no privilege, and its hardening.
//!
//! The supervisor drops privileges before exec; this module verifies the
//! result from the inside, so a misconfigured deployment (a worker started
//! by hand as root, a unit file that grants capabilities) fails loudly
//! instead of parsing hostile bytes with privileges.

use std::fs;

use caps::CapSet;

/// Why the worker refuses to run.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// A uid or gid (real, effective or saved) is 0.
    #[error("running as root (uid {uid:?}, gid {gid:?}); workers must run as an unprivileged user")]
    Root { uid: [u32; 3], gid: [u32; 3] },
    /// A capability set is not empty.
    #[error("capability set {set} is not empty ({caps})")]
    Capabilities { set: &'static str, caps: String },
    /// no_new_privs is not set.
    #[error("no_new_privs is not set (NoNewPrivs: 0)")]
    NewPrivs,
    /// Supplementary groups are present.
    #[error("supplementary groups present: {groups:?}")]
    Groups { groups: Vec<u32> },
    /// Reading our own credentials failed.
    #[error("reading {what}")]
    Read {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

fn ids(status: &str, key: &str) -> [u32; 3] {
    let mut out = [u32::MAX; 3];
    if let Some(v) = status_field(status, key) {
        for (slot, n) in out.iter_mut().zip(v.split_whitespace()) {
            *slot = n.parse().unwrap_or(u32::MAX);
        }
    }
    out
}

/// Verifies: no uid/gid is 0, no supplementary groups, all five capability
/// sets empty, no_new_privs set.
pub fn verify_unprivileged() -> Result<(), PrivilegeError> {
    let status =
        fs::read_to_string("/proc/self/status").map_err(|source| PrivilegeError::Read {
            what: "/proc/self/status",
            source,
        })?;
    let uid = ids(&status, "Uid:");
    let gid = ids(&status, "Gid:");
    if uid.contains(&0) || gid.contains(&0) {
        return Err(PrivilegeError::Root { uid, gid });
    }
    let groups: Vec<u32> = status_field(&status, "Groups:")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect();
    if !groups.is_empty() {
        return Err(PrivilegeError::Groups { groups });
    }
    for (set, name) in [
        (CapSet::Effective, "effective"),
        (CapSet::Permitted, "permitted"),
        (CapSet::Inheritable, "inheritable"),
        (CapSet::Bounding, "bounding"),
        (CapSet::Ambient, "ambient"),
    ] {
        let held = caps::read(None, set).map_err(|e| PrivilegeError::Read {
            what: "capability sets",
            source: std::io::Error::other(e.to_string()),
        })?;
        if !held.is_empty() {
            let mut caps: Vec<String> = held.iter().map(|c| c.to_string()).collect();
            caps.sort();
            return Err(PrivilegeError::Capabilities {
                set: name,
                caps: caps.join(","),
            });
        }
    }
    if status_field(&status, "NoNewPrivs:") != Some("1") {
        return Err(PrivilegeError::NewPrivs);
    }
    Ok(())
}

/// Makes the process non-dumpable (no core files, no ptrace by same-uid
/// processes, /proc/PID files owned by root) and asks for SIGKILL when the
/// supervisor dies. Returns false if the parent is already gone.
pub fn harden() -> Result<bool, std::io::Error> {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // If the supervisor died before PDEATHSIG was set we were reparented.
    Ok(nix::unistd::getppid().as_raw() != 1)
}
