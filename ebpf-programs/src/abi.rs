//! The constants of `records.h` and typed views of them.
//!
//! Every number comes from the C header through the build-time probe (`crate::c`), so the two
//! sides cannot drift; the enums below are checked against those numbers at compile time.

use crate::c;

/// Version of the record and map layouts; part of the pin directory name.
pub const ABI_VERSION: u16 = c::PAL_ABI_VERSION;
/// First field of every record: "PALR" read as a little-endian `u32`.
pub const RECORD_MAGIC: u32 = c::PAL_RECORD_MAGIC;

/// Record kind: DNS message prefix (UDP or TCP port 53).
pub const KIND_DNS: u16 = c::PAL_KIND_DNS;
/// Record kind: DHCP message prefix (UDP port 67 or 68).
pub const KIND_DHCP: u16 = c::PAL_KIND_DHCP;
/// Record kind: TCP segment starting a TLS handshake record.
pub const KIND_TLS: u16 = c::PAL_KIND_TLS;
/// Record kind: first packet of a flow; payload is a [`crate::FlowRecord`].
pub const KIND_FLOW_START: u16 = c::PAL_KIND_FLOW_START;
/// Record kind: flow ended by FIN both ways or RST; payload is a [`crate::FlowRecord`].
pub const KIND_FLOW_END: u16 = c::PAL_KIND_FLOW_END;

/// Packet entering the interface.
pub const DIR_INGRESS: u8 = c::PAL_DIR_INGRESS;
/// Packet leaving the interface.
pub const DIR_EGRESS: u8 = c::PAL_DIR_EGRESS;

/// Header flag: the payload was cut at the kind's capture cap.
pub const FLAG_TRUNCATED: u8 = c::PAL_FLAG_TRUNCATED;
/// Header flag: `vlan_id` is valid.
pub const FLAG_VLAN: u8 = c::PAL_FLAG_VLAN;

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
/// Largest capture cap.
pub const CAP_MAX: u32 = c::PAL_CAP_MAX;

/// Flow record reason: a start record.
pub const FLOW_REASON_NONE: u8 = c::PAL_FLOW_REASON_NONE;
/// Flow record reason: FIN seen from both sides.
pub const FLOW_REASON_FIN: u8 = c::PAL_FLOW_REASON_FIN;
/// Flow record reason: RST seen.
pub const FLOW_REASON_RST: u8 = c::PAL_FLOW_REASON_RST;

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
        }
    }

    /// The ring records of this kind are written to.
    pub const fn ring(self) -> Ring {
        match self {
            Self::Dns => Ring::Dns,
            Self::Dhcp => Ring::Dhcp,
            Self::Tls => Ring::Tls,
            Self::FlowStart | Self::FlowEnd => Ring::Flow,
        }
    }

    /// Largest `payload_len` a record of this kind can have.
    pub const fn max_payload(self) -> u32 {
        match self {
            Self::Dns => CAP_DNS,
            Self::Dhcp => CAP_DHCP,
            Self::Tls => CAP_TLS,
            // Exactly one pal_flow_record (56 bytes: the cast cannot truncate).
            Self::FlowStart | Self::FlowEnd => crate::records::FlowRecord::SIZE as u32,
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
}

impl StatSlot {
    /// Every slot, in index order.
    pub const ALL: [Self; 5] = [
        Self::Records,
        Self::RingFull,
        Self::Truncated,
        Self::NotParsed,
        Self::MapFull,
    ];

    /// `PAL_STAT_*`: the slot index.
    pub const fn index(self) -> u32 {
        match self {
            Self::Records => STAT_RECORDS,
            Self::RingFull => STAT_RING_FULL,
            Self::Truncated => STAT_TRUNCATED,
            Self::NotParsed => STAT_NOT_PARSED,
            Self::MapFull => STAT_MAP_FULL,
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
    assert!(CAP_DNS <= CAP_MAX && CAP_DHCP <= CAP_MAX && CAP_TLS <= CAP_MAX);
};

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
