//! Flow records -> EVE `flow` events, shaped like Suricata's (`flow_id`,
//! `community_id`, `flow.{pkts,bytes}_to{server,client}`, `start`, `end`,
//! `age`, `state`, `reason`, a `tcp` object with the flags), plus what
//! Suricata does not log, in the `palisade.flow` vendor object: payload byte
//! counts and whether the flow was seeded from conntrack. Start and update
//! events (`flow.reason` `start`/`update`) are written only when configured.
//! Events are written straight into the sink's buffer ([`FlowEvent::write`]).

use palisade_abi::{
    FLOW_F_SEEDED, FLOW_REASON_EVICTED, FLOW_REASON_FIN, FLOW_REASON_RST, FLOW_REASON_SHUTDOWN,
    FLOW_REASON_TIMEOUT, FlowRecord, Kind, RecordHeader,
};
use palisade_worker_runtime::{eve, json::JsonWriter};

/// Which record made the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The flow's first packet (or, for a seeded flow, the sweeper's announcement).
    Start,
    /// A periodic report of a live flow.
    Update,
    /// FIN pair, RST, idle timeout or eviction.
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

/// One `flow` event: the shared fields and the record's counters.
#[derive(Debug)]
pub struct FlowEvent {
    /// The shared fields (client -> server), with the flow's `flow_id` and `community_id`.
    pub common: eve::Common,
    icmp: Option<(u8, u8)>,
    record: FlowRecord,
    start: eve::Timestamp,
    end: eve::Timestamp,
    /// `new`, `established` or `closed`.
    state: &'static str,
    /// `start`, `update`, `fin`, `rst`, `timeout`, or `evicted` (ended early, idle, to
    /// make room in a nearly full table).
    reason: &'static str,
    tcp: bool,
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
            (Phase::End, FLOW_REASON_SHUTDOWN) if both_ways => ("established", "shutdown"),
            (Phase::End, FLOW_REASON_SHUTDOWN) => ("new", "shutdown"),
            (Phase::End, _) => ("closed", "unknown"),
        };
        Self {
            common,
            icmp: icmp.then_some((f.icmp_type, f.icmp_code)),
            record: *f,
            start: ctx.wall(f.first_seen_ns),
            end: ctx.wall(f.last_seen_ns),
            state,
            reason,
            tcp: hdr.l4_proto == 6,
        }
    }

    /// The whole event object.
    pub fn write(&self, w: &mut JsonWriter<'_>) {
        let f = &self.record;
        w.begin_object();
        self.common.write(w);
        if let Some((icmp_type, icmp_code)) = self.icmp {
            w.key("icmp_type").u64(u64::from(icmp_type));
            w.key("icmp_code").u64(u64::from(icmp_code));
        }
        w.key("flow").begin_object();
        w.key("pkts_toserver").u64(f.pkts_toserver);
        w.key("pkts_toclient").u64(f.pkts_toclient);
        // Frame bytes, link-layer header included (Suricata's meaning).
        w.key("bytes_toserver").u64(f.bytes_toserver);
        w.key("bytes_toclient").u64(f.bytes_toclient);
        w.key("start").timestamp(self.start);
        w.key("end").timestamp(self.end);
        // Whole seconds between first and last packet.
        w.key("age")
            .u64(f.last_seen_ns.saturating_sub(f.first_seen_ns) / 1_000_000_000);
        w.key("state").str(self.state);
        w.key("reason").str(self.reason);
        w.end_object();
        if self.tcp {
            write_tcp(w, f.tcp_flags_toserver, f.tcp_flags_toclient);
        }
        w.key("palisade").begin_object();
        w.key("iface_direction").str(self.common.iface_direction);
        w.key("flow").begin_object();
        // L4 payload bytes (what the applications sent).
        w.key("payload_bytes_toserver")
            .u64(f.payload_bytes_toserver);
        w.key("payload_bytes_toclient")
            .u64(f.payload_bytes_toclient);
        if f.flags & FLOW_F_SEEDED != 0 {
            // Seeded from conntrack at start: it began before Palisade did.
            w.key("seeded").bool(true);
        }
        w.end_object();
        w.end_object();
        w.end_object();
    }
}

/// Suricata's `tcp` object of a flow event: the flags each way and together (hex), and
/// each flag seen (only the true ones).
fn write_tcp(w: &mut JsonWriter<'_>, ts: u8, tc: u8) {
    let all = ts | tc;
    w.key("tcp").begin_object();
    w.key("tcp_flags").hex_u8(all);
    w.key("tcp_flags_ts").hex_u8(ts);
    w.key("tcp_flags_tc").hex_u8(tc);
    for (bit, name) in [
        (0x02, "syn"),
        (0x01, "fin"),
        (0x04, "rst"),
        (0x08, "psh"),
        (0x10, "ack"),
        (0x20, "urg"),
        (0x40, "ecn"),
        (0x80, "cwr"),
    ] {
        if all & bit != 0 {
            w.key(name).bool(true);
        }
    }
    w.end_object();
}
