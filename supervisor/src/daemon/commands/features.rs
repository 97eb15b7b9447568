//! `palisade feature enable|disable NAME`: a runtime switch, saved first, then applied to
//! the kernel (`crate::features`).

use palisade_ipc::messages::ControlResponse;

use super::{super::Daemon, failed};
use crate::{
    features::Feature,
    policy::{dns_kernel, ip_kernel},
};

/// Switches `name` on or off.
pub(super) fn set(
    d: &mut Daemon,
    _registry: &mio::Registry,
    name: &str,
    enabled: bool,
) -> ControlResponse {
    let Some(feature) = Feature::from_name(name) else {
        let known: Vec<&str> = Feature::ALL.into_iter().map(Feature::name).collect();
        return failed(format!("no feature {name:?} (known: {})", known.join(", ")));
    };
    match d.features.set(feature, enabled) {
        Ok(false) => return ControlResponse::Features(d.features.states()),
        Ok(true) => {}
        Err(e) => return failed(crate::error_chain(&e)),
    }
    let applied = match feature {
        Feature::DnsBlocking => {
            let action =
                super::super::startup::dns_action(&d.features, d.opts.config.dns.block_action);
            d.dns.block_action = action;
            dns_kernel::set_action(crate::ebpf::maps::of(&d.loaded), action)
                .map_err(|e| crate::error_chain(&e))
        }
        Feature::IpBlocking => {
            d.ip.state.enforcing = enabled;
            ip_kernel::apply(
                crate::ebpf::maps::of(&d.loaded),
                &mut d.ip.tries,
                &d.ip.state,
                d.opts.config.ip.alerts_per_second,
            )
            .map(|counts| d.ip.kernel = counts)
            .map_err(|e| crate::error_chain(&e))
        }
        Feature::TlsRules => {
            d.tls.enforcing = enabled;
            d.send_tls_policy();
            if enabled {
                Ok(())
            } else {
                d.tls
                    .lift_all(crate::ebpf::maps::of(&d.loaded))
                    .map(|n| tracing::info!(connections = n, "TLS rule blocks lifted"))
                    .map_err(|e| crate::error_chain(&e))
            }
        }
        Feature::DhcpGuard => crate::policy::guard::apply(
            crate::ebpf::maps::of(&d.loaded),
            &d.opts.config.dhcp,
            enabled,
        )
        .map_err(|e| crate::error_chain(&e)),
        Feature::CaptureDns | Feature::CaptureDhcp | Feature::CaptureTls | Feature::CaptureFlow => {
            d.features
                .write_capture(
                    crate::ebpf::maps::of(&d.loaded),
                    d.opts.config.flow.start_events,
                )
                .map_err(|e| crate::error_chain(&e))
        }
    };
    // What the kernel should hold now, for the drift checks (a failure above is repaired
    // by the next one).
    if let Some(loaded) = &d.loaded {
        d.drift.config_written(loaded);
    }
    match applied {
        Ok(()) => {
            tracing::warn!(
                feature = feature.name(),
                enabled,
                "feature switched {}",
                if enabled { "on" } else { "off" }
            );
            ControlResponse::Features(d.features.states())
        }
        Err(e) => failed(format!(
            "{} is saved {} but the kernel could not be updated ({e}); the next drift check retries",
            feature.name(),
            if enabled { "on" } else { "off" }
        )),
    }
}
