//! `palisade block add|remove|list`: run-time IP rules. The transactions
//! (rule file and kernel kept in step) are `policy::ip_block`'s.

use palisade_ipc::messages::{BlockAddRequest, ControlResponse};

use super::failed;
use crate::daemon::Daemon;

/// `block add`.
pub(super) fn add(d: &mut Daemon, add: &BlockAddRequest) -> ControlResponse {
    match d.ip.add(crate::ebpf::maps::of(&d.loaded), add) {
        Ok(info) => ControlResponse::BlockAdded(info),
        Err(e) => failed(crate::error_chain(&e)),
    }
}

/// `block remove`.
pub(super) fn remove(d: &mut Daemon, cidr: &str) -> ControlResponse {
    match d.ip.remove(crate::ebpf::maps::of(&d.loaded), cidr) {
        Ok(info) => ControlResponse::BlockRemoved(info),
        Err(e) => failed(crate::error_chain(&e)),
    }
}

/// `block list`.
pub(super) fn list(d: &Daemon, limit: u32) -> ControlResponse {
    match d.ip.list(crate::ebpf::maps::of(&d.loaded), limit) {
        Ok(list) => ControlResponse::BlockList(list),
        Err(e) => failed(crate::error_chain(&e)),
    }
}
