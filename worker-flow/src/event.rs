//! Flow records -> EVE `flow` events, shaped like Suricata's (`flow_id`,
//! `community_id`, `flow.{pkts,bytes}_to{server,client}`, `start`, `end`,
//! `age`, `state`, `reason`, a `tcp` object with the flags), plus what
//! Suricata does not log, in the `palisade.flow` vendor object: payload byte
//! counts and whether the flow was seeded from conntrack. Start and update
//! events (`flow.reason` `start`/`update`) are written only when configured.

use palisade_abi::{
    FLOW_F_SEEDED, FLOW_REASON_EVICTED, FLOW_REASON_FIN, FLOW_REASON_RST, FLOW_REASON_TIMEOUT,
    FlowRecord, Kind, RecordHeader,
};
use palisade_worker_runtime::eve;
use serde::Serialize;

/// Which record made the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The flow's first packet (or, for a seeded flow, the sweeper's announcement).
    Start,
    /// A periodic report of a live flow.
    Update,
    /// FIN pair, RST or idle timeout.
    End,
}

impl Phase {
    /// The phase of a flow record kind.
    pub fn of(kind: Kind) -> Option<Self> {
        match kind {
            Kind::FlowStart => Some(Self::Start),
            Kind::FlowUpdate => Some(Self::Update),
            Kind::FlowEnd => Some(Self::End),
            _ => None,
        }
    }
}

#[derive(Serialize)]
pub struct FlowBody {
    pkts_toserver: u64,
    pkts_toclient: u64,
    /// Frame bytes, link-layer header included (Suricata's meaning).
    bytes_toserver: u64,
    bytes_toclient: u64,
    start: eve::Timestamp,
    end: eve::Timestamp,
    /// Whole seconds between first and last packet.
    age: u64,
    /// `new`, `established` or `closed`.
    state: &'static str,
    /// `start`, `update`, `fin`, `rst`, `timeout`, or `evicted` (ended early, idle, to
    /// make room in a nearly full table).
    reason: &'static str,
}

/// `palisade.flow`: what Suricata's `flow` object has no field for.
#[derive(Serialize)]
pub struct FlowVendor {
    /// L4 payload bytes (what the applications sent).
    payload_bytes_toserver: u64,
    payload_bytes_toclient: u64,
    /// The flow was seeded from conntrack at start (it began before Palisade did).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    seeded: bool,
}

#[derive(Serialize)]
pub struct FlowExtra {
    flow: FlowVendor,
}

/// Suricata's `tcp` object of a flow event.
#[derive(Serialize)]
pub struct TcpBody {
    tcp_flags: String,
    tcp_flags_ts: String,
    tcp_flags_tc: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    syn: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fin: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    rst: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    psh: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ack: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    urg: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ecn: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cwr: bool,
}

impl TcpBody {
    fn new(ts: u8, tc: u8) -> Self {
        let all = ts | tc;
        Self {
            tcp_flags: format!("{all:02x}"),
            tcp_flags_ts: format!("{ts:02x}"),
            tcp_flags_tc: format!("{tc:02x}"),
            fin: all & 0x01 != 0,
            syn: all & 0x02 != 0,
            rst: all & 0x04 != 0,
            psh: all & 0x08 != 0,
            ack: all & 0x10 != 0,
            urg: all & 0x20 != 0,
            ecn: all & 0x40 != 0,
            cwr: all & 0x80 != 0,
        }
    }
}

#[derive(Serialize)]
pub struct FlowEvent {
    #[serde(flatten)]
    pub common: eve::Common,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    pub flow: FlowBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpBody>,
    pub palisade: eve::Vendor<FlowExtra>,
}

impl FlowEvent {
    /// The event of one flow record (header oriented client -> server).
    pub fn new(ctx: &eve::Context, hdr: &RecordHeader, f: &FlowRecord, phase: Phase) -> Self {
        let mut common = eve::Common::new(ctx, "flow", hdr);
        let icmp = matches!(hdr.l4_proto, 1 | 58);
        let (sport, dport) = if icmp {
            (u16::from(f.icmp_type), u16::from(f.icmp_code))
        } else {
            (hdr.src_port, hdr.dst_port)
        };
        common.set_flow(hdr.l4_proto, sport, dport, f.first_seen_ns);
        let palisade = eve::Vendor::new(
            &common,
            FlowExtra {
                flow: FlowVendor {
                    payload_bytes_toserver: f.payload_bytes_toserver,
                    payload_bytes_toclient: f.payload_bytes_toclient,
                    seeded: f.flags & FLOW_F_SEEDED != 0,
                },
            },
        );
        let both_ways = f.pkts_toserver > 0 && f.pkts_toclient > 0;
        let (state, reason) = match (phase, f.end_reason) {
            (Phase::Start, _) => ("new", "start"),
            (Phase::Update, _) => ("established", "update"),
            (Phase::End, FLOW_REASON_FIN) => ("closed", "fin"),
            (Phase::End, FLOW_REASON_RST) => ("closed", "rst"),
            (Phase::End, FLOW_REASON_TIMEOUT) if both_ways => ("established", "timeout"),
            (Phase::End, FLOW_REASON_TIMEOUT) => ("new", "timeout"),
            (Phase::End, FLOW_REASON_EVICTED) if both_ways => ("established", "evicted"),
            (Phase::End, FLOW_REASON_EVICTED) => ("new", "evicted"),
            (Phase::End, _) => ("closed", "unknown"),
        };
        Self {
            common,
            icmp_type: icmp.then_some(f.icmp_type),
            icmp_code: icmp.then_some(f.icmp_code),
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
            },
            tcp: (hdr.l4_proto == 6)
                .then(|| TcpBody::new(f.tcp_flags_toserver, f.tcp_flags_toclient)),
            palisade,
        }
    }
}
