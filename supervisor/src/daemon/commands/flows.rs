//! `palisade flows top` and `palisade flows show --host ADDR`: live flows
//! read from the kernel table.

use std::net::IpAddr;

use palisade_ipc::messages::{ControlResponse, FlowOrder};

use super::failed;
use crate::daemon::Daemon;

/// `flows top`: the biggest flows by `order`.
pub(super) fn top(d: &Daemon, order: FlowOrder, limit: u32) -> ControlResponse {
    list(d, None, order, limit)
}

/// `flows show`: the flows of one host, biggest first.
pub(super) fn show(d: &Daemon, host: &str, limit: u32) -> ControlResponse {
    match host.parse() {
        Ok(addr) => list(d, Some(addr), FlowOrder::Bytes, limit),
        Err(_) => failed(format!("{host:?} is not an IP address")),
    }
}

fn list(d: &Daemon, host: Option<IpAddr>, order: FlowOrder, limit: u32) -> ControlResponse {
    let names = d
        .interfaces
        .iter()
        .map(|i| (i.ifindex, i.name.clone()))
        .collect();
    let Some(loaded) = &d.loaded else {
        return failed(
            "unavailable: capture is AF_PACKET; the flow table is the flow worker's (its flow events are logged as flows end)"
                .to_owned(),
        );
    };
    match crate::flows::list(loaded, &names, host, order, limit) {
        Ok(list) => ControlResponse::Flows(list),
        Err(e) => failed(crate::error_chain(&e)),
    }
}
