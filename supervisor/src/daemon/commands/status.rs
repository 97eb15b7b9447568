//! `palisade status` (also the source of `palisade metrics`) and `palisade version`.

use std::time::Instant;

use palisade_ipc::{
    PROTOCOL_VERSION,
    messages::{ControlResponse, StatusReport, VersionInfo},
};

use crate::{daemon::Daemon, ebpf::counters};

/// Versions of this binary.
pub fn version_info() -> VersionInfo {
    VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: PROTOCOL_VERSION,
        abi: palisade_abi::ABI_VERSION,
    }
}

/// `version`: the daemon's versions.
pub(super) fn version() -> ControlResponse {
    ControlResponse::Version(version_info())
}

/// `status`: workers, interfaces, kernel counters, DNS policy, flow table.
pub(super) fn status(d: &Daemon) -> ControlResponse {
    let now = Instant::now();
    let kernel = counters::read(&d.loaded.ebpf).unwrap_or_else(|e| {
        tracing::error!(error = %e, "reading kernel counters");
        Vec::new()
    });
    ControlResponse::Status(Box::new(StatusReport {
        version: version_info(),
        pid: std::process::id(),
        uptime_ms: now.duration_since(d.started).as_millis() as u64,
        pin_dir: d.pins.dir.display().to_string(),
        workers: d.slots.values().map(|s| s.status(now)).collect(),
        interfaces: d.interfaces.clone(),
        kernel,
        dns: d.dns.status(d.dns_kernel_rules),
        flows: crate::flows::status(&d.loaded, &d.opts.config.flow, &d.conntrack_seed),
        drift: d.drift.status.clone(),
        features: d.features.states(),
    }))
}
