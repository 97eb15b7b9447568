//! `palisade dns test NAME` and `palisade dns blocked-hits`.

use std::time::Instant;

use palisade_ipc::messages::{ControlResponse, RuleHits};

use super::failed;
use crate::{
    daemon::Daemon,
    policy::{dns_kernel, dns_state::describe},
};

/// `dns test`: what the policy in force does with a name.
pub(super) fn test(d: &Daemon, name: &str) -> ControlResponse {
    ControlResponse::DnsTest(d.dns.test(name, Instant::now()))
}

/// `dns blocked-hits`: the kernel's hit counters per rule, most hits first.
pub(super) fn blocked_hits(d: &Daemon) -> ControlResponse {
    match dns_kernel::hits(crate::ebpf::maps::of(&d.loaded)) {
        Ok(mut hits) => {
            hits.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            ControlResponse::DnsBlockedHits(
                hits.into_iter()
                    .map(|(id, hits)| RuleHits {
                        id,
                        rule: d
                            .dns
                            .rules
                            .rule(id)
                            .map(describe)
                            .unwrap_or_else(|| format!("rule {id} (no longer in force)")),
                        hits,
                    })
                    .collect(),
            )
        }
        Err(e) => failed(crate::error_chain(&e)),
    }
}
