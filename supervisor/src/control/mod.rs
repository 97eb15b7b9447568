//! The control socket: how the `palisade` CLI talks to the daemon.
//!
//! SOCK_SEQPACKET, one request per connection, handshake first. The socket
//! file is root:<control group> 0660; each request is authorised again from
//! the peer's SO_PEERCRED: read-only requests for root and the control
//! group, mutating ones for root only.

pub mod client;
pub mod server;

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
        | ControlRequest::BlockList { .. } => false,
        ControlRequest::Restart(_)
        | ControlRequest::Reload
        | ControlRequest::ReopenLogs
        | ControlRequest::BlockAdd(_)
        | ControlRequest::BlockRemove(_) => true,
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

/// Supplementary groups of a process, from /proc/PID/status.
pub fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use palisade_ipc::messages::RestartTarget;

    use super::*;

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
