//! The constants of `records.h` and typed views of them.
//!
//! Every number comes from the C header through the build-time probe (`crate::c`), so the two
//! sides cannot drift; the enums below are checked against those numbers at compile time.

use crate::c;

/// Version of the record and map layouts; part of the pin directory name.
pub const ABI_VERSION: u16 = c::PAL_ABI_VERSION;
/// The oldest ABI whose flow table (`FlowKey`, `FlowValue`, `FLOW_F_*`, pinned shards) has
/// this layout: an upgrade from it carries the open flows over.
pub const FLOW_LAYOUT_SINCE: u16 = c::PAL_FLOW_LAYOUT_SINCE;
/// First field of every record: "PALR" read as a little-endian `u32`.
pub const RECORD_MAGIC: u32 = c::PAL_RECORD_MAGIC;

/// Record kind: DNS message prefix (UDP or TCP port 53).
pub const KIND_DNS: u16 = c::PAL_KIND_DNS;
/// Record kind: DHCP message prefix (UDP port 67 or 68).
pub const KIND_DHCP: u16 = c::PAL_KIND_DHCP;
/// Record kind: bytes of a followed TLS handshake, a [`crate::TlsSeg`] then one TCP segment's
/// bytes (or part of them).
pub const KIND_TLS: u16 = c::PAL_KIND_TLS;
/// Record kind: first packet of a flow; payload is a [`crate::FlowRecord`].
pub const KIND_FLOW_START: u16 = c::PAL_KIND_FLOW_START;
/// Record kind: flow ended by FIN both ways, RST or idle timeout; payload is a
/// [`crate::FlowRecord`].
pub const KIND_FLOW_END: u16 = c::PAL_KIND_FLOW_END;
/// Record kind: periodic report of a long flow; payload is a [`crate::FlowRecord`].
pub const KIND_FLOW_UPDATE: u16 = c::PAL_KIND_FLOW_UPDATE;
/// `PAL_KIND_IP_BLOCK`: payload is one `IpBlockRecord`.
pub const KIND_IP_BLOCK: u16 = c::PAL_KIND_IP_BLOCK;
/// Record kind: a UDP datagram whose first packet is a QUIC v1/v2 Initial (the UDP payload,
/// up to [`CAP_QUIC`]), written to the TLS ring.
pub const KIND_QUIC: u16 = c::PAL_KIND_QUIC;
/// Record kind (DHCP ring): an IPv6 router advertisement, the ICMPv6 message (type 134).
pub const KIND_RA: u16 = c::PAL_KIND_RA;
/// Record kind (DHCP ring): an ARP packet, from its hardware type on (up to [`CAP_ARP`]).
pub const KIND_ARP: u16 = c::PAL_KIND_ARP;
/// Record kind (DHCP ring): an IPv6 neighbour solicitation or advertisement, the ICMPv6
/// message (type 135 or 136).
pub const KIND_ND: u16 = c::PAL_KIND_ND;
/// Capture cap of ARP records (the packet and Ethernet padding).
pub const CAP_ARP: u32 = c::PAL_CAP_ARP;
/// Capture cap of RA and ND records.
pub const CAP_ICMP6: u32 = c::PAL_CAP_ICMP6;
/// Header flag (DHCP-ring records): the DHCP guard found the sender of this DHCP server
/// message or router advertisement on no allow-list entry.
pub const FLAG_GUARD_ROGUE: u8 = c::PAL_FLAG_GUARD_ROGUE;
/// Header flag (with [`FLAG_GUARD_ROGUE`]): the guard dropped the packet after recording it.
pub const FLAG_GUARD_DROPPED: u8 = c::PAL_FLAG_GUARD_DROPPED;
/// `pal_guard_config.mode`: no allow-list, nothing checked.
pub const GUARD_OFF: u32 = c::PAL_GUARD_OFF;
/// `pal_capture_config.flow_starts`: every flow gets a start record (`[flow] start_events`).
pub const FLOW_STARTS_ALL: u32 = c::PAL_FLOW_STARTS_ALL;
/// `pal_capture_config.flow_starts`: only flows the flow worker alerts on (TCP/UDP to 443, 853).
pub const FLOW_STARTS_ALERTS: u32 = c::PAL_FLOW_STARTS_ALERTS;
/// `pal_guard_config.mode`: senders not on the allow-list are flagged (alerts), not dropped.
pub const GUARD_ALERT: u32 = c::PAL_GUARD_ALERT;
/// `pal_guard_config.mode`: flagged and dropped.
pub const GUARD_DROP: u32 = c::PAL_GUARD_DROP;
/// `pal_guard_key.type`: a source MAC.
pub const GUARD_KEY_MAC: u8 = c::PAL_GUARD_KEY_MAC;
/// `pal_guard_key.type`: an IPv4 source address.
pub const GUARD_KEY_IPV4: u8 = c::PAL_GUARD_KEY_IPV4;
/// `pal_guard_key.type`: an IPv6 source address.
pub const GUARD_KEY_IPV6: u8 = c::PAL_GUARD_KEY_IPV6;
/// Capacity of `pal_guard_allow`.
pub const GUARD_ALLOW_MAX: u32 = c::PAL_GUARD_ALLOW_MAX;
/// Capacity of `pal_guard_sources` (LRU).
pub const GUARD_SOURCES: u32 = c::PAL_GUARD_SOURCES;
/// Smallest UDP payload the kernel looks at for a QUIC Initial (RFC 9000 section 14.1).
pub const QUIC_MIN_DATAGRAM: u32 = c::PAL_QUIC_MIN_DATAGRAM;
/// QUIC version 1 (RFC 9000).
pub const QUIC_V1: u32 = c::PAL_QUIC_V1;
/// QUIC version 2 (RFC 9369).
pub const QUIC_V2: u32 = c::PAL_QUIC_V2;

/// Packet entering the interface.
pub const DIR_INGRESS: u8 = c::PAL_DIR_INGRESS;
/// Packet leaving the interface.
pub const DIR_EGRESS: u8 = c::PAL_DIR_EGRESS;

/// Header flag: the payload was cut at the kind's capture cap.
pub const FLAG_TRUNCATED: u8 = c::PAL_FLAG_TRUNCATED;
/// Header flag: `vlan_id` is valid.
pub const FLAG_VLAN: u8 = c::PAL_FLAG_VLAN;
/// Header flag (DNS records): the query was blocked by the domain policy (answered NXDOMAIN by
/// the kernel, or dropped). The payload is the query as it was seen, before any rewrite.
pub const FLAG_DNS_BLOCKED: u8 = c::PAL_FLAG_DNS_BLOCKED;
/// Header flag (DNS records): the answer's name is blocked, so the kernel rewrote it to NXDOMAIN
/// (or dropped it, with the drop action). The payload is the answer as the upstream sent it.
pub const FLAG_DNS_REWRITTEN: u8 = c::PAL_FLAG_DNS_REWRITTEN;

/// Ring (and stats group) of DNS records.
pub const RING_DNS: u32 = c::PAL_RING_DNS;
/// Ring (and stats group) of DHCP records.
pub const RING_DHCP: u32 = c::PAL_RING_DHCP;
/// Ring (and stats group) of TLS records.
pub const RING_TLS: u32 = c::PAL_RING_TLS;
/// Ring (and stats group) of flow records.
pub const RING_FLOW: u32 = c::PAL_RING_FLOW;
/// Number of rings.
pub const RING_COUNT: u32 = c::PAL_RING_COUNT;
/// Stats group of whole-packet counters (packets seen, not parsed).
pub const STATS_GLOBAL: u32 = c::PAL_STATS_GLOBAL;

/// Stats slot: records written (in the global group: packets seen).
pub const STAT_RECORDS: u32 = c::PAL_STAT_RECORDS;
/// Stats slot: records dropped because the ring was full.
pub const STAT_RING_FULL: u32 = c::PAL_STAT_RING_FULL;
/// Stats slot: records written with a truncated payload.
pub const STAT_TRUNCATED: u32 = c::PAL_STAT_TRUNCATED;
/// Stats slot: packets whose headers could not be read.
pub const STAT_NOT_PARSED: u32 = c::PAL_STAT_NOT_PARSED;
/// Stats slot: flow table inserts that failed.
pub const STAT_MAP_FULL: u32 = c::PAL_STAT_MAP_FULL;
/// Stats slot: records not made because their capture is switched off.
pub const STAT_CAPTURE_OFF: u32 = c::PAL_STAT_CAPTURE_OFF;
/// Slots per stats group.
pub const STAT_COUNT: u32 = c::PAL_STAT_COUNT;
/// Entries of `pal_stats`.
pub const STATS_ENTRIES: u32 = c::PAL_STATS_ENTRIES;

/// Payload bytes captured per DNS record.
pub const CAP_DNS: u32 = c::PAL_CAP_DNS;
/// Payload bytes captured per DHCP record.
pub const CAP_DHCP: u32 = c::PAL_CAP_DHCP;
/// Payload bytes captured per TLS record.
pub const CAP_TLS: u32 = c::PAL_CAP_TLS;
/// Capture cap of a QUIC Initial datagram.
pub const CAP_QUIC: u32 = c::PAL_CAP_QUIC;
/// Largest capture cap.
pub const CAP_MAX: u32 = c::PAL_CAP_MAX;

/// Flow record reason: a start or update record.
pub const FLOW_REASON_NONE: u8 = c::PAL_FLOW_REASON_NONE;
/// Flow record reason: FIN seen from both sides.
pub const FLOW_REASON_FIN: u8 = c::PAL_FLOW_REASON_FIN;
/// Flow record reason: RST seen.
pub const FLOW_REASON_RST: u8 = c::PAL_FLOW_REASON_RST;
/// Flow record reason: idle for longer than the protocol's timeout.
pub const FLOW_REASON_TIMEOUT: u8 = c::PAL_FLOW_REASON_TIMEOUT;
/// Flow record reason: ended early to make room (its shard was nearly full and it was idle
/// for its emergency timeout).
pub const FLOW_REASON_EVICTED: u8 = c::PAL_FLOW_REASON_EVICTED;
/// Flow record reason: open when the table went away (the supervisor stopped with
/// `--detach-on-exit`), ended by `pal_flow_end_all`.
pub const FLOW_REASON_SHUTDOWN: u8 = c::PAL_FLOW_REASON_SHUTDOWN;
/// Flows `pal_flow_end_all` ends per run.
pub const FLOW_END_BATCH: u32 = c::PAL_FLOW_END_BATCH;

/// Shards of the flow table (`pal_flows` slots).
pub const FLOW_SHARDS: u32 = c::PAL_FLOW_SHARDS;

/// The shard of a flow key: `pal_flow_shard()` of `flows.bpf.h` (the key's ten 32-bit
/// words in native byte order folded by XOR, times the golden-ratio constant, top bits).
/// The supervisor seeds flows into the shard the kernel looks them up in.
pub fn flow_shard(key: &crate::FlowKey) -> u32 {
    let bytes = key.to_bytes();
    let h = bytes
        .chunks_exact(4)
        .filter_map(|w| <[u8; 4]>::try_from(w).ok())
        .map(u32::from_ne_bytes)
        .fold(0, |a, w| a ^ w);
    h.wrapping_mul(0x9e37_79b9) >> (32 - FLOW_SHARDS.trailing_zeros())
}
/// Flow flag: the flow was seeded from conntrack at supervisor start.
pub const FLOW_F_SEEDED: u8 = c::PAL_FLOW_F_SEEDED;
/// Flow flag: a seeded flow whose start record the kernel sweeper still owes.
pub const FLOW_F_ANNOUNCE: u8 = c::PAL_FLOW_F_ANNOUNCE;
/// Flow flag: `vlan_id` is valid.
pub const FLOW_F_VLAN: u8 = c::PAL_FLOW_F_VLAN;

/// FNV-1a 64 offset basis: the hash of the empty string.
pub const FNV64_OFFSET: u64 = c::PAL_FNV64_OFFSET;
/// FNV-1a 64 prime.
pub const FNV64_PRIME: u64 = c::PAL_FNV64_PRIME;
/// Longest QNAME on the wire (length octets and the root label included).
pub const DNS_WIRE_MAX: usize = c::PAL_DNS_WIRE_MAX;
/// Longest normalized name (the wire length minus 2).
pub const DNS_NAME_MAX: usize = c::PAL_DNS_NAME_MAX;
/// Longest label.
pub const DNS_LABEL_MAX: usize = c::PAL_DNS_LABEL_MAX;
/// Suffixes (innermost first) the kernel looks up per name: a rule has at most this many labels.
pub const DNS_SUFFIX_MAX: usize = c::PAL_DNS_SUFFIX_MAX;

/// `DnsRule::action`: block the name.
pub const DNS_BLOCK: u8 = c::PAL_DNS_BLOCK;
/// `DnsRule::action`: allow the name (wins over every block).
pub const DNS_ALLOW: u8 = c::PAL_DNS_ALLOW;
/// `DnsRule::flags`: the rule covers the name itself only, not its subdomains.
pub const DNS_RULE_EXACT: u8 = c::PAL_DNS_RULE_EXACT;
/// `DnsRule::flags`, with [`DNS_ALLOW`] and [`DNS_RULE_EXACT`] only: the entry also blocks every
/// subdomain of the name (an allow-exact and a block-suffix rule for the same name).
pub const DNS_RULE_BLOCK_SUBDOMAINS: u8 = c::PAL_DNS_RULE_BLOCK_SUBDOMAINS;

/// `DnsConfig::block_action`: no enforcement, records only.
pub const DNS_ACTION_OFF: u32 = c::PAL_DNS_ACTION_OFF;
/// `DnsConfig::block_action`: answer blocked queries with NXDOMAIN from the kernel.
pub const DNS_ACTION_NXDOMAIN: u32 = c::PAL_DNS_ACTION_NXDOMAIN;
/// `DnsConfig::block_action`: drop blocked queries (the client times out).
pub const DNS_ACTION_DROP: u32 = c::PAL_DNS_ACTION_DROP;
/// Entries of `pal_dns_stats`.
pub const DNS_STAT_COUNT: u32 = c::PAL_DNS_STAT_COUNT;

/// What the kernel does with a blocked DNS query (`pal_dns_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockAction {
    /// [`DNS_ACTION_OFF`]: no enforcement.
    Off,
    /// [`DNS_ACTION_NXDOMAIN`]: answer NXDOMAIN from the kernel.
    Nxdomain,
    /// [`DNS_ACTION_DROP`]: drop.
    Drop,
}

impl BlockAction {
    /// The `block_action` value.
    pub const fn raw(self) -> u32 {
        match self {
            Self::Off => DNS_ACTION_OFF,
            Self::Nxdomain => DNS_ACTION_NXDOMAIN,
            Self::Drop => DNS_ACTION_DROP,
        }
    }

    /// The action of a raw value; the kernel treats unknown values as off.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            DNS_ACTION_OFF => Some(Self::Off),
            DNS_ACTION_NXDOMAIN => Some(Self::Nxdomain),
            DNS_ACTION_DROP => Some(Self::Drop),
            _ => None,
        }
    }
}

/// A counter of `pal_dns_stats` (per CPU; key = [`DnsStat::index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsStat {
    /// UDP queries evaluated against the policy (enforcement on).
    QueriesChecked,
    /// Queries an allow rule decided.
    QueriesAllowed,
    /// Queries answered NXDOMAIN by the kernel.
    BlockedNxdomain,
    /// Queries dropped (drop action, or an NXDOMAIN that could not be made).
    BlockedDrop,
    /// UDP answers evaluated.
    AnswersChecked,
    /// Answers rewritten to NXDOMAIN.
    AnswersRewritten,
    /// Answers dropped (drop action, or not rewritable, e.g. an IP fragment).
    AnswersDropped,
    /// Names the kernel cannot match: compression pointer, too long, malformed, cut off.
    NotMatchable,
    /// Blocks decided by a learned entry (`pal_dns_learned`).
    LearnedHits,
    /// Learned entries found but expired (ignored).
    LearnedExpired,
    /// NXDOMAIN wanted but the packet could not be rewritten (IPv6 extension headers on a
    /// query, IPv4 fragment, GSO, question not captured): dropped instead.
    NxdomainUnsupported,
    /// A helper failed half-way through a rewrite: the packet was dropped.
    RewriteFailed,
    /// `bpf_redirect` refused: the query was dropped.
    RedirectFailed,
    /// A per-rule hit counter could not be inserted into `pal_dns_hits`.
    HitsMapFull,
    /// A fragmented UDP datagram to port 53 (IPv4 first fragment with more to come, IPv6
    /// first fragment): its name cannot be judged, so it is dropped (also in `BlockedDrop`).
    FragmentDropped,
}

impl DnsStat {
    /// Every counter, in key order.
    pub const ALL: [Self; 15] = [
        Self::QueriesChecked,
        Self::QueriesAllowed,
        Self::BlockedNxdomain,
        Self::BlockedDrop,
        Self::AnswersChecked,
        Self::AnswersRewritten,
        Self::AnswersDropped,
        Self::NotMatchable,
        Self::LearnedHits,
        Self::LearnedExpired,
        Self::NxdomainUnsupported,
        Self::RewriteFailed,
        Self::RedirectFailed,
        Self::HitsMapFull,
        Self::FragmentDropped,
    ];

    /// `PAL_DNS_STAT_*`: the key in `pal_dns_stats`.
    pub const fn index(self) -> u32 {
        match self {
            Self::QueriesChecked => c::PAL_DNS_STAT_QUERIES_CHECKED,
            Self::QueriesAllowed => c::PAL_DNS_STAT_QUERIES_ALLOWED,
            Self::BlockedNxdomain => c::PAL_DNS_STAT_BLOCKED_NXDOMAIN,
            Self::BlockedDrop => c::PAL_DNS_STAT_BLOCKED_DROP,
            Self::AnswersChecked => c::PAL_DNS_STAT_ANSWERS_CHECKED,
            Self::AnswersRewritten => c::PAL_DNS_STAT_ANSWERS_REWRITTEN,
            Self::AnswersDropped => c::PAL_DNS_STAT_ANSWERS_DROPPED,
            Self::NotMatchable => c::PAL_DNS_STAT_NOT_MATCHABLE,
            Self::LearnedHits => c::PAL_DNS_STAT_LEARNED_HITS,
            Self::LearnedExpired => c::PAL_DNS_STAT_LEARNED_EXPIRED,
            Self::NxdomainUnsupported => c::PAL_DNS_STAT_NXDOMAIN_UNSUPPORTED,
            Self::RewriteFailed => c::PAL_DNS_STAT_REWRITE_FAILED,
            Self::RedirectFailed => c::PAL_DNS_STAT_REDIRECT_FAILED,
            Self::HitsMapFull => c::PAL_DNS_STAT_HITS_MAP_FULL,
            Self::FragmentDropped => c::PAL_DNS_STAT_FRAGMENT_DROPPED,
        }
    }

    /// Short lowercase name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::QueriesChecked => "queries_checked",
            Self::QueriesAllowed => "queries_allowed",
            Self::BlockedNxdomain => "blocked_nxdomain",
            Self::BlockedDrop => "blocked_drop",
            Self::AnswersChecked => "answers_checked",
            Self::AnswersRewritten => "answers_rewritten",
            Self::AnswersDropped => "answers_dropped",
            Self::NotMatchable => "not_matchable",
            Self::LearnedHits => "learned_hits",
            Self::LearnedExpired => "learned_expired",
            Self::NxdomainUnsupported => "nxdomain_unsupported",
            Self::RewriteFailed => "rewrite_failed",
            Self::RedirectFailed => "redirect_failed",
            Self::HitsMapFull => "hits_map_full",
            Self::FragmentDropped => "fragment_dropped",
        }
    }
}

/// A counter of `pal_flow_stats` (per CPU; key = [`FlowStat::index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowStat {
    /// Flows started by a packet.
    Created,
    /// Flows seeded from conntrack, announced by the sweeper.
    Seeded,
    /// Flows ended by a FIN from both sides.
    EndedFin,
    /// Flows ended by a RST.
    EndedRst,
    /// Flows ended by the sweeper after their idle timeout.
    EndedTimeout,
    /// Update records made for long flows.
    Updates,
    /// Flows ended early (with a record) by an emergency walk of a nearly full shard.
    EndedEvicted,
    /// Shard walks made in emergency.
    Emergency,
    /// Packets dropped because their flow is blocked (TLS policy).
    Blocked,
    /// Flows ended (with a record) because the table went away.
    EndedShutdown,
}

impl FlowStat {
    /// Every counter, in key order.
    pub const ALL: [Self; 10] = [
        Self::Created,
        Self::Seeded,
        Self::EndedFin,
        Self::EndedRst,
        Self::EndedTimeout,
        Self::Updates,
        Self::EndedEvicted,
        Self::Emergency,
        Self::Blocked,
        Self::EndedShutdown,
    ];

    /// `PAL_FLOW_STAT_*`: the key in `pal_flow_stats`.
    pub const fn index(self) -> u32 {
        match self {
            Self::Created => c::PAL_FLOW_STAT_CREATED,
            Self::Seeded => c::PAL_FLOW_STAT_SEEDED,
            Self::EndedFin => c::PAL_FLOW_STAT_ENDED_FIN,
            Self::EndedRst => c::PAL_FLOW_STAT_ENDED_RST,
            Self::EndedTimeout => c::PAL_FLOW_STAT_ENDED_TIMEOUT,
            Self::Updates => c::PAL_FLOW_STAT_UPDATES,
            Self::EndedEvicted => c::PAL_FLOW_STAT_ENDED_EVICTED,
            Self::Emergency => c::PAL_FLOW_STAT_EMERGENCY,
            Self::Blocked => c::PAL_FLOW_STAT_BLOCKED,
            Self::EndedShutdown => c::PAL_FLOW_STAT_ENDED_SHUTDOWN,
        }
    }

    /// Short lowercase name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Seeded => "seeded",
            Self::EndedFin => "ended_fin",
            Self::EndedRst => "ended_rst",
            Self::EndedTimeout => "ended_timeout",
            Self::Updates => "updates",
            Self::EndedEvicted => "ended_evicted",
            Self::Emergency => "emergency_walks",
            Self::Blocked => "blocked_packets",
            Self::EndedShutdown => "ended_shutdown",
        }
    }
}

/// Capacity of `pal_flow_block` (connections the TLS policy cut at once).
pub const FLOW_BLOCK_MAX: u32 = c::PAL_FLOW_BLOCK_MAX;

/// Entries of `pal_flow_stats`.
pub const FLOW_STAT_COUNT: u32 = c::PAL_FLOW_STAT_COUNT;

/// Group name of the `pal_flow_stats` counters in [`kernel_counters`].
pub const FLOW_TABLE_GROUP: &str = "flow_table";

/// Stream bytes the kernel follows per direction of a TLS handshake.
pub const TLS_MAX_BYTES: u32 = c::PAL_TLS_MAX_BYTES;
/// How long after the first hello the kernel follows a TLS handshake (boot-clock ns).
pub const TLS_MAX_NS: u64 = c::PAL_TLS_MAX_NS;
/// Records made from one skb at most (a longer GSO/GRO segment is cut).
pub const TLS_CHUNKS: u32 = c::PAL_TLS_CHUNKS;
/// Handshakes the kernel follows at once (`pal_tls_conns`, LRU).
pub const TLS_CONNS: u32 = c::PAL_TLS_CONNS;
/// [`crate::TlsSeg::dir`]: client to server.
pub const TLS_DIR_CLIENT: u8 = c::PAL_TLS_DIR_CLIENT;
/// [`crate::TlsSeg::dir`]: server to client.
pub const TLS_DIR_SERVER: u8 = c::PAL_TLS_DIR_SERVER;
/// [`crate::TlsSeg::flags`]: stream offset 0 of the direction is in this record.
pub const TLS_SEG_FIRST: u8 = c::PAL_TLS_SEG_FIRST;
/// [`crate::TlsSeg::flags`]: the kernel copies nothing more of this direction.
pub const TLS_SEG_LAST: u8 = c::PAL_TLS_SEG_LAST;
/// [`crate::TlsSeg::flags`]: part of the segment was not copied (a bound).
pub const TLS_SEG_CUT: u8 = c::PAL_TLS_SEG_CUT;
/// [`crate::TlsSeg::flags`]: the segment carried FIN or RST.
pub const TLS_SEG_FIN: u8 = c::PAL_TLS_SEG_FIN;
/// [`crate::TlsConn::state`]: the direction's stream start is not known yet.
pub const TLS_ST_NO_BASE: u8 = c::PAL_TLS_ST_NO_BASE;
/// [`crate::TlsConn::state`]: copying, record headers followed.
pub const TLS_ST_WALK: u8 = c::PAL_TLS_ST_WALK;
/// [`crate::TlsConn::state`]: copying, a record header was missed.
pub const TLS_ST_BLIND: u8 = c::PAL_TLS_ST_BLIND;
/// [`crate::TlsConn::state`]: done.
pub const TLS_ST_DONE: u8 = c::PAL_TLS_ST_DONE;

/// A counter of `pal_tls_stats` (per CPU; key = [`TlsStat::index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsStat {
    /// Handshakes followed.
    Followed,
    /// Segments copied.
    Segments,
    /// Directions that ended at encrypted data or an alert.
    Done,
    /// Directions stopped at [`TLS_MAX_BYTES`].
    BoundBytes,
    /// Handshakes stopped at [`TLS_MAX_NS`].
    BoundTime,
    /// Segments longer than [`TLS_CHUNKS`] records.
    ChunksCut,
    /// Directions whose record walk missed a header.
    Blind,
    /// Handshakes ended by FIN or RST while followed.
    Closed,
    /// QUIC Initial datagrams copied.
    QuicInitials,
}

impl TlsStat {
    /// Every counter, in key order.
    pub const ALL: [Self; 9] = [
        Self::Followed,
        Self::Segments,
        Self::Done,
        Self::BoundBytes,
        Self::BoundTime,
        Self::ChunksCut,
        Self::Blind,
        Self::Closed,
        Self::QuicInitials,
    ];

    /// `PAL_TLS_STAT_*`: the key in `pal_tls_stats`.
    pub const fn index(self) -> u32 {
        match self {
            Self::Followed => c::PAL_TLS_STAT_FOLLOWED,
            Self::Segments => c::PAL_TLS_STAT_SEGMENTS,
            Self::Done => c::PAL_TLS_STAT_DONE,
            Self::BoundBytes => c::PAL_TLS_STAT_BOUND_BYTES,
            Self::BoundTime => c::PAL_TLS_STAT_BOUND_TIME,
            Self::ChunksCut => c::PAL_TLS_STAT_CHUNKS_CUT,
            Self::Blind => c::PAL_TLS_STAT_BLIND,
            Self::Closed => c::PAL_TLS_STAT_CLOSED,
            Self::QuicInitials => c::PAL_TLS_STAT_QUIC_INITIALS,
        }
    }

    /// Short lowercase name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Followed => "followed",
            Self::Segments => "segments",
            Self::Done => "ended_encrypted",
            Self::BoundBytes => "bound_bytes",
            Self::BoundTime => "bound_time",
            Self::ChunksCut => "chunks_cut",
            Self::Blind => "walk_blind",
            Self::Closed => "ended_fin_rst",
            Self::QuicInitials => "quic_initials",
        }
    }
}

/// Entries of `pal_tls_stats`.
pub const TLS_STAT_COUNT: u32 = c::PAL_TLS_STAT_COUNT;

/// A counter of `pal_guard_stats` (per CPU; key = [`GuardStat::index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardStat {
    /// DHCP server messages and router advertisements checked (guard on).
    Checked,
    /// Their sender was on the allow-list.
    Allowed,
    /// It was not (flagged: an alert).
    Rogue,
    /// Of those, dropped.
    Dropped,
    /// A rogue sender could not be counted in `pal_guard_sources`.
    SourcesFull,
}

impl GuardStat {
    /// Every counter, in key order.
    pub const ALL: [Self; 5] = [
        Self::Checked,
        Self::Allowed,
        Self::Rogue,
        Self::Dropped,
        Self::SourcesFull,
    ];

    /// `PAL_GUARD_STAT_*`: the key in `pal_guard_stats`.
    pub const fn index(self) -> u32 {
        match self {
            Self::Checked => c::PAL_GUARD_STAT_CHECKED,
            Self::Allowed => c::PAL_GUARD_STAT_ALLOWED,
            Self::Rogue => c::PAL_GUARD_STAT_ROGUE,
            Self::Dropped => c::PAL_GUARD_STAT_DROPPED,
            Self::SourcesFull => c::PAL_GUARD_STAT_SOURCES_FULL,
        }
    }

    /// Short lowercase name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Checked => "checked",
            Self::Allowed => "allowed",
            Self::Rogue => "rogue",
            Self::Dropped => "dropped",
            Self::SourcesFull => "sources_map_full",
        }
    }
}

/// Entries of `pal_guard_stats`.
pub const GUARD_STAT_COUNT: u32 = c::PAL_GUARD_STAT_COUNT;

/// Group name of the `pal_guard_stats` counters in [`kernel_counters`].
pub const DHCP_GUARD_GROUP: &str = "dhcp_guard";

/// A counter of `pal_trace_stats` (per CPU; key = [`TraceStat::index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceStat {
    /// Trace events written to `rb_trace`.
    Events,
    /// Trace events lost: `rb_trace` was full.
    Lost,
}

impl TraceStat {
    /// Every counter, in key order.
    pub const ALL: [Self; 2] = [Self::Events, Self::Lost];

    /// `PAL_TRACE_STAT_*`: the key in `pal_trace_stats`.
    pub const fn index(self) -> u32 {
        match self {
            Self::Events => c::PAL_TRACE_STAT_EVENTS,
            Self::Lost => c::PAL_TRACE_STAT_LOST,
        }
    }

    /// Short lowercase name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Lost => "ring_full",
        }
    }
}

/// Entries of `pal_trace_stats`.
pub const TRACE_STAT_COUNT: u32 = c::PAL_TRACE_STAT_COUNT;

/// Group name of the `pal_trace_stats` counters in [`kernel_counters`].
pub const TRACE_GROUP: &str = "trace";

/// Group name of the `pal_tls_stats` counters in [`kernel_counters`].
pub const TLS_CAPTURE_GROUP: &str = "tls_capture";

/// Group name of the `pal_dns_stats` counters in [`kernel_counters`].
pub const DNS_POLICY_GROUP: &str = "dns_policy";

/// One kernel counter: where it lives and what to call it. Every counter is a per-CPU `u64`
/// (sum the CPUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterDef {
    /// The per-CPU array holding it (`MAP_STATS` or `MAP_DNS_STATS`).
    pub map: &'static str,
    /// Its key in that map.
    pub key: u32,
    /// Group name: a ring (`dns`, `dhcp`, `tls`, `flow`), `global` or `dns_policy`.
    pub group: &'static str,
    /// Counter name within the group.
    pub name: &'static str,
}

/// Every kernel counter, `pal_stats` (group x slot) first, then `pal_dns_stats`, then
/// `pal_flow_stats`. Status output
/// and metrics should iterate this rather than spell names, so new counters show up by
/// themselves.
pub fn kernel_counters() -> impl Iterator<Item = CounterDef> {
    let stats = StatGroup::ALL.into_iter().flat_map(|group| {
        StatSlot::ALL.into_iter().map(move |slot| CounterDef {
            map: crate::MAP_STATS,
            key: stats_key(group, slot),
            group: group.name(),
            name: slot.name(),
        })
    });
    let dns = DnsStat::ALL.into_iter().map(|stat| CounterDef {
        map: crate::MAP_DNS_STATS,
        key: stat.index(),
        group: DNS_POLICY_GROUP,
        name: stat.name(),
    });
    let flows = FlowStat::ALL.into_iter().map(|stat| CounterDef {
        map: crate::MAP_FLOW_STATS,
        key: stat.index(),
        group: FLOW_TABLE_GROUP,
        name: stat.name(),
    });
    let ip = IpStat::ALL.into_iter().map(|stat| CounterDef {
        map: crate::MAP_IP_STATS,
        key: stat.index(),
        group: IP_POLICY_GROUP,
        name: stat.name(),
    });
    let tls = TlsStat::ALL.into_iter().map(|stat| CounterDef {
        map: crate::MAP_TLS_STATS,
        key: stat.index(),
        group: TLS_CAPTURE_GROUP,
        name: stat.name(),
    });
    let guard = GuardStat::ALL.into_iter().map(|stat| CounterDef {
        map: crate::MAP_GUARD_STATS,
        key: stat.index(),
        group: DHCP_GUARD_GROUP,
        name: stat.name(),
    });
    let trace = TraceStat::ALL.into_iter().map(|stat| CounterDef {
        map: crate::MAP_TRACE_STATS,
        key: stat.index(),
        group: TRACE_GROUP,
        name: stat.name(),
    });
    stats
        .chain(dns)
        .chain(flows)
        .chain(ip)
        .chain(tls)
        .chain(guard)
        .chain(trace)
}

/// A record kind (`RecordHeader::kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// [`KIND_DNS`]
    Dns,
    /// [`KIND_DHCP`]
    Dhcp,
    /// [`KIND_TLS`]
    Tls,
    /// [`KIND_FLOW_START`]
    FlowStart,
    /// [`KIND_FLOW_END`]
    FlowEnd,
    /// [`KIND_FLOW_UPDATE`]
    FlowUpdate,
    /// [`KIND_IP_BLOCK`]: a packet the IP policy dropped (rate-limited alerts).
    IpBlock,
    /// [`KIND_QUIC`]: a QUIC Initial datagram.
    Quic,
    /// [`KIND_RA`]: a router advertisement.
    Ra,
    /// [`KIND_ARP`]: an ARP packet.
    Arp,
    /// [`KIND_ND`]: a neighbour solicitation or advertisement.
    Nd,
}

impl Kind {
    /// The kind of a raw `kind` field, `None` when unknown.
    pub const fn from_raw(raw: u16) -> Option<Self> {
        match raw {
            KIND_DNS => Some(Self::Dns),
            KIND_DHCP => Some(Self::Dhcp),
            KIND_TLS => Some(Self::Tls),
            KIND_FLOW_START => Some(Self::FlowStart),
            KIND_FLOW_END => Some(Self::FlowEnd),
            KIND_FLOW_UPDATE => Some(Self::FlowUpdate),
            KIND_IP_BLOCK => Some(Self::IpBlock),
            KIND_QUIC => Some(Self::Quic),
            KIND_RA => Some(Self::Ra),
            KIND_ARP => Some(Self::Arp),
            KIND_ND => Some(Self::Nd),
            _ => None,
        }
    }

    /// The raw `kind` field value.
    pub const fn raw(self) -> u16 {
        match self {
            Self::Dns => KIND_DNS,
            Self::Dhcp => KIND_DHCP,
            Self::Tls => KIND_TLS,
            Self::FlowStart => KIND_FLOW_START,
            Self::FlowEnd => KIND_FLOW_END,
            Self::FlowUpdate => KIND_FLOW_UPDATE,
            Self::IpBlock => KIND_IP_BLOCK,
            Self::Quic => KIND_QUIC,
            Self::Ra => KIND_RA,
            Self::Arp => KIND_ARP,
            Self::Nd => KIND_ND,
        }
    }

    /// The ring records of this kind are written to.
    pub const fn ring(self) -> Ring {
        match self {
            Self::Dns => Ring::Dns,
            Self::Dhcp | Self::Ra | Self::Arp | Self::Nd => Ring::Dhcp,
            Self::Tls | Self::Quic => Ring::Tls,
            Self::FlowStart | Self::FlowEnd | Self::FlowUpdate | Self::IpBlock => Ring::Flow,
        }
    }

    /// Largest `payload_len` a record of this kind can have.
    pub const fn max_payload(self) -> u32 {
        match self {
            Self::Dns => CAP_DNS,
            Self::Dhcp => CAP_DHCP,
            Self::Tls => CAP_TLS,
            Self::Quic => CAP_QUIC,
            Self::Arp => CAP_ARP,
            Self::Ra | Self::Nd => CAP_ICMP6,
            // Exactly one pal_flow_record (72 bytes: the cast cannot truncate).
            Self::FlowStart | Self::FlowEnd | Self::FlowUpdate => {
                crate::records::FlowRecord::SIZE as u32
            }
            // Exactly one pal_ip_block_record (12 bytes).
            Self::IpBlock => crate::records::IpBlockRecord::SIZE as u32,
        }
    }
}

/// One ring buffer, i.e. one worker. Its index is also its stats group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ring {
    /// `rb_dns`
    Dns,
    /// `rb_dhcp`
    Dhcp,
    /// `rb_tls`
    Tls,
    /// `rb_flow`
    Flow,
}

impl Ring {
    /// Every ring, in index order.
    pub const ALL: [Self; 4] = [Self::Dns, Self::Dhcp, Self::Tls, Self::Flow];

    /// `PAL_RING_*`: the ring's index and stats group.
    pub const fn index(self) -> u32 {
        match self {
            Self::Dns => RING_DNS,
            Self::Dhcp => RING_DHCP,
            Self::Tls => RING_TLS,
            Self::Flow => RING_FLOW,
        }
    }

    /// Name of the ring buffer map in the object (and of its pin).
    pub const fn map_name(self) -> &'static str {
        match self {
            Self::Dns => crate::MAP_RB_DNS,
            Self::Dhcp => crate::MAP_RB_DHCP,
            Self::Tls => crate::MAP_RB_TLS,
            Self::Flow => crate::MAP_RB_FLOW,
        }
    }

    /// Short lowercase name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Dhcp => "dhcp",
            Self::Tls => "tls",
            Self::Flow => "flow",
        }
    }

    /// Whether records of `kind` belong in this ring.
    pub const fn carries(self, kind: Kind) -> bool {
        kind.ring().index() == self.index()
    }
}

/// A group of counters in `pal_stats`: one per ring, plus the whole-packet group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatGroup {
    /// Counters of one ring's records.
    Ring(Ring),
    /// Whole-packet counters (`PAL_STATS_GLOBAL`).
    Global,
}

impl StatGroup {
    /// Every group, in index order.
    pub const ALL: [Self; 5] = [
        Self::Ring(Ring::Dns),
        Self::Ring(Ring::Dhcp),
        Self::Ring(Ring::Tls),
        Self::Ring(Ring::Flow),
        Self::Global,
    ];

    /// Group index in the key arithmetic.
    pub const fn index(self) -> u32 {
        match self {
            Self::Ring(ring) => ring.index(),
            Self::Global => STATS_GLOBAL,
        }
    }

    /// Short lowercase name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ring(ring) => ring.name(),
            Self::Global => "global",
        }
    }
}

/// A counter within a [`StatGroup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatSlot {
    /// Records written to the ring; in the global group, packets seen.
    Records,
    /// Records dropped: the ring had no room.
    RingFull,
    /// Records written with the payload cut at the capture cap.
    Truncated,
    /// Packets whose headers could not be read (global group).
    NotParsed,
    /// Flow table inserts that failed (flow group).
    MapFull,
    /// Records not made: the ring's capture is switched off (`capture-*` features).
    CaptureOff,
}

impl StatSlot {
    /// Every slot, in index order.
    pub const ALL: [Self; 6] = [
        Self::Records,
        Self::RingFull,
        Self::Truncated,
        Self::NotParsed,
        Self::MapFull,
        Self::CaptureOff,
    ];

    /// `PAL_STAT_*`: the slot index.
    pub const fn index(self) -> u32 {
        match self {
            Self::Records => STAT_RECORDS,
            Self::RingFull => STAT_RING_FULL,
            Self::Truncated => STAT_TRUNCATED,
            Self::NotParsed => STAT_NOT_PARSED,
            Self::MapFull => STAT_MAP_FULL,
            Self::CaptureOff => STAT_CAPTURE_OFF,
        }
    }

    /// Short lowercase name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Records => "records",
            Self::RingFull => "ring_full",
            Self::Truncated => "truncated",
            Self::NotParsed => "not_parsed",
            Self::MapFull => "map_full",
            Self::CaptureOff => "capture_off",
        }
    }
}

/// Key of a counter in `pal_stats`: `group * STAT_COUNT + slot`.
pub const fn stats_key(group: StatGroup, slot: StatSlot) -> u32 {
    group.index() * STAT_COUNT + slot.index()
}

// The enums above must cover the C ranges exactly, in index order.
#[expect(
    clippy::indexing_slicing,
    reason = "const evaluation: a bad index fails the build"
)]
const _: () = {
    assert!(Ring::ALL.len() as u32 == RING_COUNT);
    assert!(StatGroup::ALL.len() as u32 == STATS_GLOBAL + 1);
    assert!(StatSlot::ALL.len() as u32 == STAT_COUNT);
    assert!(STATS_ENTRIES == (STATS_GLOBAL + 1) * STAT_COUNT);
    let mut i = 0;
    while i < Ring::ALL.len() {
        assert!(Ring::ALL[i].index() == i as u32);
        i += 1;
    }
    let mut i = 0;
    while i < StatGroup::ALL.len() {
        assert!(StatGroup::ALL[i].index() == i as u32);
        i += 1;
    }
    let mut i = 0;
    while i < StatSlot::ALL.len() {
        assert!(StatSlot::ALL[i].index() == i as u32);
        i += 1;
    }
    assert!(CAP_DNS <= CAP_MAX && CAP_DHCP <= CAP_MAX && CAP_TLS <= CAP_MAX && CAP_QUIC <= CAP_MAX);
    assert!(DnsStat::ALL.len() as u32 == DNS_STAT_COUNT);
    let mut i = 0;
    while i < DnsStat::ALL.len() {
        assert!(DnsStat::ALL[i].index() == i as u32);
        i += 1;
    }
    assert!(DNS_NAME_MAX + 2 == DNS_WIRE_MAX);
};

/// `IpBlockRecord::matched`: the rule matched the packet's source address.
pub const IP_MATCH_SRC: u8 = c::PAL_IP_MATCH_SRC;
/// `IpBlockRecord::matched`: the rule matched the packet's destination address.
pub const IP_MATCH_DST: u8 = c::PAL_IP_MATCH_DST;
/// `IpBlockRecord::hook`: dropped by `pal_xdp_block`.
pub const IP_HOOK_XDP: u8 = c::PAL_IP_HOOK_XDP;
/// `IpBlockRecord::hook`: dropped by `pal_tc_block_ingress` / `pal_tc_block_egress`.
pub const IP_HOOK_TC: u8 = c::PAL_IP_HOOK_TC;

/// `pal_trace_event.hook`: `pal_xdp_block`.
pub const TRACE_HOOK_XDP: u8 = c::PAL_TRACE_HOOK_XDP;
/// `pal_trace_event.hook`: `pal_tc_block_ingress` / `pal_tc_block_egress`.
pub const TRACE_HOOK_TC_BLOCK: u8 = c::PAL_TRACE_HOOK_TC_BLOCK;
/// `pal_trace_event.hook`: the observer, `pal_tc_ingress` / `pal_tc_egress`.
pub const TRACE_HOOK_OBSERVER: u8 = c::PAL_TRACE_HOOK_OBSERVER;
/// `pal_trace_event.decided_by`: nothing acted on the packet.
pub const TRACE_BY_NONE: u8 = c::PAL_TRACE_BY_NONE;
/// `pal_trace_event.decided_by`: an IP policy rule (`rule_id`, `prefixlen`, `matched`).
pub const TRACE_BY_IP_RULE: u8 = c::PAL_TRACE_BY_IP_RULE;
/// `pal_trace_event.decided_by`: the DNS domain policy.
pub const TRACE_BY_DNS_POLICY: u8 = c::PAL_TRACE_BY_DNS_POLICY;
/// `pal_trace_event.decided_by`: a connection a TLS rule cut.
pub const TRACE_BY_TLS_CUT: u8 = c::PAL_TRACE_BY_TLS_CUT;
/// `pal_trace_event.decided_by`: the DHCP guard.
pub const TRACE_BY_DHCP_GUARD: u8 = c::PAL_TRACE_BY_DHCP_GUARD;
/// `pal_trace_event.flags`: `vlan_id` is valid.
pub const TRACE_F_VLAN: u8 = c::PAL_TRACE_F_VLAN;
/// `pal_trace_event.flags`: the flow table had no room for the packet's flow.
pub const TRACE_F_FLOW_FULL: u8 = c::PAL_TRACE_F_FLOW_FULL;
/// `pal_trace_event.flags`: the DNS policy rewrote this answer in place (its verdict stays
/// "pass").
pub const TRACE_F_REWRITTEN: u8 = c::PAL_TRACE_F_REWRITTEN;
/// Entries of `pal_ip_stats`.
pub const IP_STAT_COUNT: u32 = c::PAL_IP_STAT_COUNT;

/// Group name of the `pal_ip_stats` counters in [`kernel_counters`].
pub const IP_POLICY_GROUP: &str = "ip_policy";

/// A counter of `pal_ip_stats` (per CPU; key = [`IpStat::index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpStat {
    /// IPv4 packets dropped by a rule.
    DroppedV4,
    /// IPv6 packets dropped by a rule.
    DroppedV6,
    /// Alert records written to `rb_flow`.
    Alerts,
    /// Drops not alerted: over the rate limit, or alerts off.
    AlertsSuppressed,
    /// Alerts lost: `rb_flow` had no room.
    AlertsLost,
    /// A TTL rule matched after its expiry and was ignored.
    Expired,
    /// A per-rule hit counter could not be inserted into `pal_ip_hits`.
    HitsMapFull,
    /// IP header cut short or malformed: the packet was passed.
    NotParsed,
    /// More VLAN tags than the policy walks while rules are in force: dropped (it could not
    /// be checked, so it does not pass).
    VlanTooDeep,
}

impl IpStat {
    /// Every counter, in key order.
    pub const ALL: [Self; 9] = [
        Self::DroppedV4,
        Self::DroppedV6,
        Self::Alerts,
        Self::AlertsSuppressed,
        Self::AlertsLost,
        Self::Expired,
        Self::HitsMapFull,
        Self::NotParsed,
        Self::VlanTooDeep,
    ];

    /// `PAL_IP_STAT_*`: the key in `pal_ip_stats`.
    pub const fn index(self) -> u32 {
        match self {
            Self::DroppedV4 => c::PAL_IP_STAT_DROPPED_V4,
            Self::DroppedV6 => c::PAL_IP_STAT_DROPPED_V6,
            Self::Alerts => c::PAL_IP_STAT_ALERTS,
            Self::AlertsSuppressed => c::PAL_IP_STAT_ALERTS_SUPPRESSED,
            Self::AlertsLost => c::PAL_IP_STAT_ALERTS_LOST,
            Self::Expired => c::PAL_IP_STAT_EXPIRED,
            Self::HitsMapFull => c::PAL_IP_STAT_HITS_MAP_FULL,
            Self::NotParsed => c::PAL_IP_STAT_NOT_PARSED,
            Self::VlanTooDeep => c::PAL_IP_STAT_VLAN_TOO_DEEP,
        }
    }

    /// Short lowercase name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::DroppedV4 => "dropped_v4",
            Self::DroppedV6 => "dropped_v6",
            Self::Alerts => "alerts",
            Self::AlertsSuppressed => "alerts_suppressed",
            Self::AlertsLost => "alerts_lost",
            Self::Expired => "expired",
            Self::HitsMapFull => "hits_map_full",
            Self::NotParsed => "not_parsed",
            Self::VlanTooDeep => "vlan_too_deep",
        }
    }
}

/// Words of the IPv4 /16 pre-filter bitmap (`pal_ip4_filter`): one bit per /16.
pub const IP4_FILTER_WORDS: usize = c::PAL_IP4_FILTER_WORDS as usize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_map_to_rings() {
        for raw in 0..=u16::from(u8::MAX) {
            if let Some(kind) = Kind::from_raw(raw) {
                assert_eq!(kind.raw(), raw);
                assert!(kind.ring().carries(kind));
            }
        }
        assert_eq!(
            Kind::from_raw(KIND_FLOW_END).map(Kind::ring),
            Some(Ring::Flow)
        );
        assert_eq!(Kind::from_raw(0), None);
    }

    #[test]
    fn flow_shards_spread_and_ignore_nothing_but_the_key() {
        let mut used = [0u32; FLOW_SHARDS as usize];
        for port in 0..8192u16 {
            let mut key = crate::FlowKey {
                port_lo: port,
                port_hi: 53,
                l4_proto: 17,
                ip_version: 4,
                ..crate::FlowKey::default()
            };
            key.addr_lo[..4].copy_from_slice(&[10, 0, 0, 1]);
            key.addr_hi[..4].copy_from_slice(&[10, 0, 0, 2]);
            let shard = flow_shard(&key);
            assert!(shard < FLOW_SHARDS);
            if let Some(n) = used.get_mut(shard as usize) {
                *n += 1;
            }
            assert_eq!(flow_shard(&key), shard, "a function of the key alone");
        }
        // 8192 keys over 64 shards: 128 each on average; none empty or more than double.
        assert!(used.iter().all(|n| (32..=256).contains(n)), "{used:?}");
    }

    #[test]
    fn kernel_counters_are_unique_and_complete() {
        let all: Vec<CounterDef> = kernel_counters().collect();
        assert_eq!(
            all.len() as u32,
            STATS_ENTRIES
                + DNS_STAT_COUNT
                + FLOW_STAT_COUNT
                + IP_STAT_COUNT
                + TLS_STAT_COUNT
                + GUARD_STAT_COUNT
                + TRACE_STAT_COUNT,
            "every slot of the counter maps"
        );
        let mut names: Vec<(&str, &str)> = all.iter().map(|c| (c.group, c.name)).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "group/name pairs are unique");
        let mut keys: Vec<(&str, u32)> = all.iter().map(|c| (c.map, c.key)).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), all.len(), "map/key pairs are unique");
        for action in [BlockAction::Off, BlockAction::Nxdomain, BlockAction::Drop] {
            assert_eq!(BlockAction::from_raw(action.raw()), Some(action));
        }
        assert_eq!(BlockAction::from_raw(3), None);
    }

    #[test]
    fn stats_keys_cover_the_map() {
        let mut keys: Vec<u32> = StatGroup::ALL
            .iter()
            .flat_map(|&group| {
                StatSlot::ALL
                    .iter()
                    .map(move |&slot| stats_key(group, slot))
            })
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, (0..STATS_ENTRIES).collect::<Vec<_>>());
    }
}
