//! `palisade status` (also the source of `palisade metrics`) and `palisade version`.

use std::time::Instant;

use palisade_ipc::{
    PROTOCOL_VERSION,
    messages::{CaptureStatus, ControlResponse, FlowTableStatus, StatusReport, VersionInfo},
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
    let kernel = d.loaded.as_ref().map_or_else(Vec::new, |l| {
        counters::read(&l.ebpf).unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading kernel counters");
            Vec::new()
        })
    });
    let flows = match &d.loaded {
        Some(l) => crate::flows::status(l, &d.opts.config.flow, &d.conntrack_seed),
        None => FlowTableStatus {
            idle_timeout_s: d.opts.config.flow.idle_timeout_s,
            tcp_idle_timeout_s: d.opts.config.flow.tcp_idle_timeout_s,
            update_interval_s: d.opts.config.flow.update_interval_s,
            configured_capacity: d.opts.config.flow.capacity(),
            conntrack: d.conntrack_seed.clone(),
            ..FlowTableStatus::default()
        },
    };
    ControlResponse::Status(Box::new(StatusReport {
        version: version_info(),
        pid: std::process::id(),
        uptime_ms: now.duration_since(d.started).as_millis() as u64,
        pin_dir: d
            .pins
            .as_ref()
            .map(|p| p.dir.display().to_string())
            .unwrap_or_default(),
        workers: d.slots.values().map(|s| s.status(now)).collect(),
        interfaces: d.interfaces.clone(),
        kernel,
        dns: d.dns.status(d.dns_kernel_rules),
        flows,
        capture: CaptureStatus {
            mode: d.capture.mode.name().to_owned(),
            fallback_reason: d.capture.fallback_reason.clone(),
            enforcement: crate::capture::enforcement(d.loaded.is_some()),
            sockets: d.capture.sockets.iter().map(|s| s.status()).collect(),
        },
        drift: d.drift.status.clone(),
        network: d.network.counters.clone(),
        features: d.features.states(),
    }))
}
