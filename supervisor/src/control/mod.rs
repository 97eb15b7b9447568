//! The control socket: the REST/JSON API (docs/api.md), and how the `palisade` CLI talks
//! to the daemon.
//!
//! SOCK_STREAM, HTTP/1.1, one request per connection ([`http`]). The CLI is a client of the
//! same API: it sends the same requests as `curl`, and asks for the answer in the versioned
//! bincode encoding instead of JSON ([`http::Encoding`]). One protocol on the socket means
//! one parser, one set of limits and one authorisation path to get right; the CLI keeps its
//! typed, size-limited decoding and its version check without every answer needing a JSON
//! decoder. The socket file is root:<control group> 0660; each request is authorised again
//! from the peer's SO_PEERCRED: read-only requests for root and the control group, mutating
//! ones for root only.

pub mod client;
pub mod http;
pub mod server;
pub mod token;

use palisade_ipc::messages::ControlRequest;

/// Whether a request changes daemon state.
pub fn is_mutating(req: &ControlRequest) -> bool {
    match req {
        ControlRequest::Status
        | ControlRequest::Version
        | ControlRequest::DnsTest(_)
        | ControlRequest::DnsBlockedHits
        | ControlRequest::FlowsTop { .. }
        | ControlRequest::FlowsShow { .. }
        | ControlRequest::BlockList { .. }
        | ControlRequest::TlsRuleList { .. }
        | ControlRequest::Devices { .. }
        | ControlRequest::Guard { .. }
        | ControlRequest::Features
        | ControlRequest::TracePoll { .. } => false,
        ControlRequest::Restart(_)
        | ControlRequest::Reload
        | ControlRequest::ReopenLogs
        | ControlRequest::BlockAdd(_)
        | ControlRequest::BlockRemove(_)
        | ControlRequest::TlsRuleAdd(_)
        | ControlRequest::TlsRuleRemove(_)
        | ControlRequest::Check
        | ControlRequest::LogLevel(_)
        | ControlRequest::FeatureSet { .. }
        | ControlRequest::TraceStart(_)
        | ControlRequest::TraceStop => true,
    }
}

/// Credentials of a control client, from SO_PEERCRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Process id.
    pub pid: i32,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
}

/// Why a peer may not make a request.
pub fn authorize(
    peer: Peer,
    supplementary: &[u32],
    control_gid: Option<u32>,
    req: &ControlRequest,
) -> Result<(), String> {
    if peer.uid == 0 {
        return Ok(());
    }
    if is_mutating(req) {
        return Err(format!(
            "uid {} may not change the daemon: this request needs root",
            peer.uid
        ));
    }
    let in_group = control_gid.is_some_and(|g| peer.gid == g || supplementary.contains(&g));
    if in_group {
        Ok(())
    } else {
        Err(format!(
            "uid {} is not root and not in the control group",
            peer.uid
        ))
    }
}

/// Supplementary groups of the peer of a connected control socket (`SO_PEERGROUPS`: the
/// groups it had when it connected, like SO_PEERCRED's ids). Not /proc/PID/status: that
/// races with the reuse of the pid, and the unit hides other users' processes
/// (`ProtectProc=invisible`). Empty when the kernel cannot say (before Linux 4.13).
pub fn peer_groups(conn: std::os::fd::BorrowedFd<'_>) -> Vec<u32> {
    use std::os::fd::AsRawFd;
    const GID_SIZE: usize = size_of::<libc::gid_t>();
    // NGROUPS_MAX: the kernel never reports more.
    const MAX_GROUPS: usize = 65536;
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut len = libc::socklen_t::try_from(groups.len() * GID_SIZE).unwrap_or(0);
        // SAFETY: the buffer holds `len` bytes; the kernel writes at most that many and
        // stores the size it needs in `len`.
        let ret = unsafe {
            libc::getsockopt(
                conn.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = usize::try_from(len).unwrap_or(0) / GID_SIZE;
        if ret == 0 {
            groups.truncate(needed);
            return groups;
        }
        let erange = std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE);
        if !erange || needed <= groups.len() || needed > MAX_GROUPS {
            return Vec::new();
        }
        groups.resize(needed, 0);
    }
}

#[cfg(test)]
mod tests {
    use palisade_ipc::messages::RestartTarget;

    use super::*;

    #[test]
    fn peer_groups_are_the_connecting_process_groups() {
        use std::os::fd::AsFd;
        let (a, _b) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        let mut ours: Vec<u32> = nix::unistd::getgroups()
            .expect("getgroups")
            .iter()
            .map(|g| g.as_raw())
            .collect();
        let mut theirs = peer_groups(a.as_fd());
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(theirs, ours);
    }

    #[test]
    fn authorisation_table() {
        let root = Peer {
            pid: 1,
            uid: 0,
            gid: 0,
        };
        let member = Peer {
            pid: 1,
            uid: 1000,
            gid: 50,
        };
        let other = Peer {
            pid: 1,
            uid: 1001,
            gid: 1001,
        };
        let restart = ControlRequest::Restart(RestartTarget::All);
        assert!(authorize(root, &[], Some(50), &restart).is_ok());
        assert!(authorize(member, &[], Some(50), &ControlRequest::Status).is_ok());
        assert!(authorize(member, &[], Some(50), &restart).is_err());
        assert!(
            authorize(other, &[50], Some(50), &ControlRequest::Status).is_ok(),
            "supplementary group counts"
        );
        assert!(authorize(other, &[], Some(50), &ControlRequest::Status).is_err());
        assert!(authorize(other, &[], None, &ControlRequest::Version).is_err());
    }
}
