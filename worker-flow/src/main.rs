//! palisade-worker-flow: flow start/end records -> EVE `flow` events.
//!
//! Started by `palisade run` only (it refuses to run privileged or by hand).

mod ip_alert;

use std::{collections::HashSet, net::IpAddr, process::ExitCode};

use palisade_ebpf::{FlowRecord, KIND_FLOW_END, KIND_FLOW_START, KIND_IP_BLOCK};
use palisade_ipc::messages::{SupervisorToWorker, WorkerKind, WorkerToSupervisor};
use palisade_worker_runtime::{
    EventOut, Protocol, Record,
    alert::{self, Alert, Signature},
    eve,
};
use serde::Serialize;

/// The DNS-over-TLS port (RFC 7858) and the DoH port.
const DOT_PORT: u16 = 853;
const HTTPS_PORT: u16 = 443;

#[derive(Serialize)]
struct FlowBody {
    pkts_toserver: u64,
    pkts_toclient: u64,
    bytes_toserver: u64,
    bytes_toclient: u64,
    start: eve::Timestamp,
    end: eve::Timestamp,
    /// Seconds between first and last packet.
    age: u64,
    /// `new` (start record) or `closed`.
    state: &'static str,
    /// `start`, `fin` or `rst`.
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp_flags_ts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp_flags_tc: Option<String>,
}

#[derive(Serialize)]
struct FlowEvent {
    #[serde(flatten)]
    common: eve::Common,
    flow: FlowBody,
}

/// An alert about a flow.
#[derive(Serialize)]
struct FlowAlert {
    #[serde(flatten)]
    common: eve::Common,
    alert: Alert,
}

#[derive(Default)]
struct Flow {
    /// Addresses of known encrypted-DNS resolvers.
    resolvers: HashSet<IpAddr>,
}

impl Flow {
    /// The encrypted-DNS signature a new flow matches, if any.
    fn encrypted_dns(&self, common: &eve::Common) -> Option<Signature> {
        if common.dest_port == DOT_PORT {
            return Some(alert::DNS_OVER_TLS);
        }
        let resolver_port = common.dest_port == HTTPS_PORT || common.dest_port == DOT_PORT;
        (resolver_port && self.resolvers.contains(&common.dest_ip))
            .then_some(alert::ENCRYPTED_DNS_RESOLVER_CONNECTION)
    }
}

impl Protocol for Flow {
    const KIND: WorkerKind = WorkerKind::Flow;

    fn on_supervisor_message(
        &mut self,
        _ctx: &eve::Context,
        msg: SupervisorToWorker,
        out: &mut EventOut<'_>,
    ) -> Result<(), &'static str> {
        let SupervisorToWorker::Policy(policy) = msg else {
            return Err("unexpected message for the flow worker");
        };
        self.resolvers = policy
            .encrypted_dns_addresses
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        out.send(WorkerToSupervisor::RulesetApplied {
            ruleset: policy.ruleset,
        });
        Ok(())
    }

    fn on_record(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        let (state, start) = match record.hdr.kind {
            KIND_FLOW_START => ("new", true),
            KIND_FLOW_END => ("closed", false),
            KIND_IP_BLOCK => return ip_alert::render(ctx, record, out),
            _ => return out.drop(palisade_worker_runtime::stats::DROP_UNEXPECTED_KIND),
        };
        let Ok(f) = FlowRecord::read(record.payload) else {
            return out.drop("flow_record_malformed");
        };
        let reason = match f.end_reason {
            _ if start => "start",
            palisade_ebpf::FLOW_REASON_FIN => "fin",
            palisade_ebpf::FLOW_REASON_RST => "rst",
            _ => "unknown",
        };
        let tcp = record.hdr.l4_proto == 6;
        if start {
            let common = eve::Common::new(ctx, "alert", &record.hdr);
            if let Some(sig) = self.encrypted_dns(&common) {
                out.emit(&FlowAlert {
                    common,
                    alert: Alert::new(sig, "allowed"),
                });
            }
        }
        let event = FlowEvent {
            common: eve::Common::new(ctx, "flow", &record.hdr),
            flow: FlowBody {
                pkts_toserver: f.pkts_toserver,
                pkts_toclient: f.pkts_toclient,
                bytes_toserver: f.bytes_toserver,
                bytes_toclient: f.bytes_toclient,
                start: ctx.wall(f.first_seen_ns),
                end: ctx.wall(f.last_seen_ns),
                age: f.last_seen_ns.saturating_sub(f.first_seen_ns) / 1_000_000_000,
                state,
                reason,
                tcp_flags_ts: tcp.then(|| format!("{:02x}", f.tcp_flags_toserver)),
                tcp_flags_tc: tcp.then(|| format!("{:02x}", f.tcp_flags_toclient)),
            },
        };
        out.emit(&event);
    }
}

fn main() -> ExitCode {
    palisade_worker_runtime::run(Flow::default())
}
