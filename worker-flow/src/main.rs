//! palisade-worker-flow: flow start/end records -> EVE `flow` events.
//!
//! Started by `palisade run` only (it refuses to run privileged or by hand).

use std::process::ExitCode;

use palisade_ebpf::{FlowRecord, KIND_FLOW_END, KIND_FLOW_START};
use palisade_ipc::messages::WorkerKind;
use palisade_worker_runtime::{EventOut, Protocol, Record, eve};
use serde::Serialize;

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

struct Flow;

impl Protocol for Flow {
    const KIND: WorkerKind = WorkerKind::Flow;

    fn on_record(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        let (state, start) = match record.hdr.kind {
            KIND_FLOW_START => ("new", true),
            KIND_FLOW_END => ("closed", false),
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
    palisade_worker_runtime::run(Flow)
}
