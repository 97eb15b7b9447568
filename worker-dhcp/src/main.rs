//! palisade-worker-dhcp: DHCP records -> EVE `dhcp` events.
//!
//! Started by `palisade run` only (it refuses to run privileged or by hand).

use std::{net::Ipv4Addr, process::ExitCode};

use palisade_ipc::messages::WorkerKind;
use palisade_worker_dhcp::parse::{self, message_type_name};
use palisade_worker_runtime::{EventOut, Protocol, Record, eve};
use serde::Serialize;

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
    server_id: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_time: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<u8>,
    /// The option list was cut short (capture cap or malformed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    options_truncated: bool,
}

#[derive(Serialize)]
struct DhcpEvent {
    #[serde(flatten)]
    common: eve::Common,
    dhcp: DhcpBody,
}

struct Dhcp;

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
        let event = DhcpEvent {
            common: eve::Common::new(ctx, "dhcp", &record.hdr),
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
                server_id: m.server_id,
                lease_time: m.lease_time,
                params: m.params,
                options_truncated: m.options_truncated,
            },
        };
        out.emit(&event);
    }
}

fn main() -> ExitCode {
    palisade_worker_runtime::run(Dhcp)
}
