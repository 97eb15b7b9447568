//! `palisade tls rules add|remove|list`: run-time TLS rules (`policy::tls`), sent to the TLS
//! worker as soon as they change.

use palisade_ipc::messages::{ControlResponse, TlsRuleSpec};

use super::failed;
use crate::daemon::Daemon;

/// `tls rules add`.
pub(super) fn add(d: &mut Daemon, spec: &TlsRuleSpec) -> ControlResponse {
    match d.tls.rules.add(spec) {
        Ok(rule) => {
            tracing::info!(id = rule.id, kind = rule.spec.kind.name(), value = %rule.spec.value, block = rule.spec.block, "runtime TLS rule added");
            d.send_tls_policy();
            ControlResponse::TlsRuleAdded(d.tls.info(&rule))
        }
        Err(e) => failed(crate::error_chain(&e)),
    }
}

/// `tls rules remove`.
pub(super) fn remove(d: &mut Daemon, spec: &TlsRuleSpec) -> ControlResponse {
    match d.tls.rules.remove(spec) {
        Ok(rule) => {
            tracing::info!(id = rule.id, kind = rule.spec.kind.name(), value = %rule.spec.value, "runtime TLS rule removed");
            d.send_tls_policy();
            ControlResponse::TlsRuleRemoved(d.tls.info(&rule))
        }
        Err(e) => failed(crate::error_chain(&e)),
    }
}

/// `tls rules list`.
pub(super) fn list(d: &mut Daemon, limit: u32) -> ControlResponse {
    let now = crate::flows::boot_now_ns();
    ControlResponse::TlsRuleList(d.tls.list(crate::ebpf::maps::of(&d.loaded), now, limit))
}
