//! `palisade devices`: pieces of the DHCP worker's device inventory file, handed over as
//! the worker wrote them (the daemon does not parse them; `crate::devices`).

use palisade_ipc::messages::ControlResponse;

use super::{super::Daemon, failed};

/// The piece of `<state_dir>/devices.jsonl` at `offset`.
pub(super) fn chunk(d: &Daemon, offset: u64) -> ControlResponse {
    match crate::devices::chunk(&d.opts.config.state_dir, offset) {
        Ok(c) => ControlResponse::Devices(c),
        Err(e) => failed(crate::error_chain(&e)),
    }
}
