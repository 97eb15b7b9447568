//! `palisade guard`: the DHCP guard's mode and allow-list (the configuration in force) and
//! the senders not on it that the kernel counted (`pal_guard_sources`, root-owned: the DHCP
//! worker neither writes nor reads it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade_abi::{GUARD_ALERT, GUARD_DROP, GuardSource, GuardSourceKey, MAP_GUARD_CONFIG};
use palisade_ipc::messages::{ControlResponse, GUARD_SENDERS_MAX, GuardReport, GuardSender};

use super::{super::Daemon, failed};
use crate::config::AllowedServer;

fn mac_text(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn sender(key: &GuardSourceKey, value: &GuardSource, boot_now: u64, wall_now: u64) -> GuardSender {
    let ip = if key.ip_version == 4 {
        let [a, b, c, d, ..] = key.addr;
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    } else {
        IpAddr::V6(Ipv6Addr::from(key.addr))
    };
    // Boot-clock ns to wall-clock seconds.
    let wall = |ns: u64| wall_now.saturating_sub(boot_now.saturating_sub(ns) / 1_000_000_000);
    GuardSender {
        mac: mac_text(key.mac),
        ip: ip.to_string(),
        dhcp4: value.dhcp4,
        dhcp6: value.dhcp6,
        ra: value.ra,
        dropped: value.dropped,
        first_seen: wall(value.first_ns),
        last_seen: wall(value.last_ns),
    }
}

/// The guard's report, at most `limit` senders (most recently seen first).
pub(super) fn report(d: &Daemon, limit: u32) -> ControlResponse {
    let maps = crate::ebpf::maps::of(&d.loaded);
    let read = || -> Result<(u32, Vec<(GuardSourceKey, GuardSource)>), String> {
        let mode =
            palisade_ebpf::guard::mode(maps.fd(MAP_GUARD_CONFIG).map_err(|e| e.to_string())?)
                .map_err(|e| format!("{MAP_GUARD_CONFIG}: {e}"))?;
        let map = maps
            .fd(palisade_abi::MAP_GUARD_SOURCES)
            .map_err(|e| e.to_string())?;
        let sources = palisade_ebpf::guard::sources(map)
            .map_err(|e| format!("{}: {e}", palisade_abi::MAP_GUARD_SOURCES))?;
        Ok((mode, sources))
    };
    let (mode, mut sources) = match read() {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    sources.sort_by_key(|(_, v)| std::cmp::Reverse(v.last_ns));
    let boot_now = crate::flows::boot_now_ns();
    let wall_now = crate::policy::ip::unix_now();
    let total = u32::try_from(sources.len()).unwrap_or(u32::MAX);
    ControlResponse::Guard(GuardReport {
        mode: match mode {
            GUARD_DROP => "drop",
            GUARD_ALERT => "alert",
            _ => "off",
        }
        .to_owned(),
        allowed_servers: d
            .opts
            .config
            .dhcp
            .allowed_servers
            .iter()
            .map(|s| match s {
                AllowedServer::Mac(m) => mac_text(*m),
                AllowedServer::Ip(ip) => ip.to_string(),
            })
            .collect(),
        senders_total: total,
        senders: sources
            .iter()
            .take(limit.min(GUARD_SENDERS_MAX) as usize)
            .map(|(k, v)| sender(k, v, boot_now, wall_now))
            .collect(),
    })
}
