//! The DHCP worker's protocol: DHCP records -> EVE `dhcp` events. `main.rs` runs it under
//! the worker runtime; tools and benchmarks can run it offline
//! (`palisade_worker_runtime::offline`).

use std::net::Ipv4Addr;


use palisade_ipc::messages::WorkerKind;
use crate::parse::{self, message_type_name};
use palisade_worker_runtime::{EventOut, Protocol, Record, eve};
use serde::Serialize;

/// The `dhcp` object, in Suricata's fields (its extended format).
#[derive(Serialize)]
struct DhcpBody {
    /// `request` or `reply`.
    #[serde(rename = "type")]
    kind: &'static str,
    id: u32,
    client_mac: eve::Mac,
    client_ip: Ipv4Addr,
    assigned_ip: Ipv4Addr,
    #[serde(skip_serializing_if = "Option::is_none")]
    relay_ip: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dhcp_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_ip: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_time: Option<u32>,
    /// The parameter request list (option 55) as Suricata writes it: the names of the
    /// parameters it knows, in request order (all codes are in `palisade.dhcp.params`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<&'static str>,
}

/// Suricata's name of a requested parameter (its `dhcp.params` vocabulary); `None` for
/// the codes Suricata leaves out.
fn param_name(code: u8) -> Option<&'static str> {
    Some(match code {
        1 => "subnet_mask",
        3 => "router",
        6 => "dns_server",
        15 => "domain",
        35 => "arp_timeout",
        42 => "ntp_server",
        66 => "tftp_server_name",
        150 => "tftp_server_ip",
        _ => return None,
    })
}

/// `palisade.dhcp`: what Suricata's `dhcp` object has no field for.
#[derive(Serialize)]
struct DhcpVendor {
    /// Server identifier (option 54).
    #[serde(skip_serializing_if = "Option::is_none")]
    server_id: Option<Ipv4Addr>,
    /// Every code of the parameter request list, in request order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<u8>,
    /// The option list was cut short (capture cap or malformed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    options_truncated: bool,
}

#[derive(Serialize)]
struct DhcpExtra {
    dhcp: DhcpVendor,
}

#[derive(Serialize)]
struct DhcpEvent {
    #[serde(flatten)]
    common: eve::Common,
    dhcp: DhcpBody,
    palisade: eve::Vendor<DhcpExtra>,
}

/// The DHCP worker's state.
#[derive(Debug, Default)]
pub struct Dhcp;

impl Protocol for Dhcp {
    const KIND: WorkerKind = WorkerKind::Dhcp;

    fn on_record(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        if record.hdr.kind != palisade_abi::KIND_DHCP {
            return out.drop(palisade_worker_runtime::stats::DROP_UNEXPECTED_KIND);
        }
        let m = match parse::parse(record.payload) {
            Ok(m) => m,
            Err(e) => return out.drop(e.reason()),
        };
        let common = eve::Common::new(ctx, "dhcp", &record.hdr);
        let extra = DhcpExtra {
            dhcp: DhcpVendor {
                server_id: m.server_id,
                params: m.params.clone(),
                options_truncated: m.options_truncated,
            },
        };
        let event = DhcpEvent {
            palisade: eve::Vendor::new(&common, extra),
            common,
            dhcp: DhcpBody {
                kind: if m.op == 1 { "request" } else { "reply" },
                id: m.xid,
                client_mac: eve::Mac(m.client_mac),
                client_ip: m.client_ip,
                assigned_ip: m.assigned_ip,
                relay_ip: (!m.relay_ip.is_unspecified()).then_some(m.relay_ip),
                dhcp_type: m.message_type.map(message_type_name),
                hostname: m.hostname,
                requested_ip: m.requested_ip,
                lease_time: m.lease_time,
                params: m.params.iter().copied().filter_map(param_name).collect(),
            },
        };
        out.emit(&event);
    }
}
