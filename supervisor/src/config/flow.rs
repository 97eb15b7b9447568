//! `[flow]`: the kernel flow table's timeouts and conntrack seeding.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, check::Checker};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlow {
    idle_timeout_s: Option<Spanned<i64>>,
    tcp_idle_timeout_s: Option<Spanned<i64>>,
    update_interval_s: Option<Spanned<i64>>,
    seed_from_conntrack: Option<bool>,
    start_events: Option<bool>,
    memory_mib: Option<Spanned<i64>>,
}

/// `[flow]`: the kernel flow table's timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// UDP, ICMP: a flow ends after this many seconds without a packet.
    pub idle_timeout_s: u32,
    /// TCP without FIN pair or RST: idem.
    pub tcp_idle_timeout_s: u32,
    /// Seconds between update records of a long flow; 0 for none.
    pub update_interval_s: u32,
    /// Seed the table from the kernel's conntrack table at start.
    pub seed_from_conntrack: bool,
    /// Write a `flow` event when a flow starts too. Off: one event per flow, at its end
    /// (plus periodic updates of long flows), as Suricata and Zeek log flows.
    pub start_events: bool,
    /// Kernel memory the flow table may use, MiB: its capacity is this over
    /// [`palisade_abi::FLOW_BYTES`] per flow. Memory is taken as flows arrive.
    pub memory_mib: u32,
}

impl FlowConfig {
    /// Flows the memory budget holds: a multiple of the shard count.
    pub fn capacity(&self) -> u64 {
        let shards = u64::from(palisade_abi::FLOW_SHARDS);
        (u64::from(self.memory_mib) << 20) / palisade_abi::FLOW_BYTES / shards * shards
    }

    /// Flows per shard.
    pub fn shard_capacity(&self) -> u32 {
        u32::try_from(self.capacity() / u64::from(palisade_abi::FLOW_SHARDS)).unwrap_or(u32::MAX)
    }

    /// The sweeper's view, in nanoseconds.
    pub fn timeouts(&self) -> palisade_ebpf::flow_table::Timeouts {
        const NS: u64 = 1_000_000_000;
        palisade_ebpf::flow_table::Timeouts {
            idle_ns: u64::from(self.idle_timeout_s) * NS,
            tcp_idle_ns: u64::from(self.tcp_idle_timeout_s) * NS,
            update_ns: u64::from(self.update_interval_s) * NS,
        }
    }
}

/// Defaults: Zeek's inactivity timeouts (1 min UDP/ICMP, 5 min TCP), no periodic updates
/// and no start events (as Suricata and Zeek: one event per flow), seeding on.
pub const DEFAULT_FLOW: FlowConfig = FlowConfig {
    idle_timeout_s: 60,
    tcp_idle_timeout_s: 300,
    update_interval_s: 0,
    seed_from_conntrack: true,
    start_events: false,
    memory_mib: 256,
};

/// Validates `[flow]`.
pub(super) fn parse(c: &Checker<'_>, raw: RawFlow) -> Result<FlowConfig, ConfigError> {
    const DAY: u32 = 86_400;
    Ok(FlowConfig {
        idle_timeout_s: c.seconds(
            "flow.idle_timeout_s",
            raw.idle_timeout_s,
            DEFAULT_FLOW.idle_timeout_s,
            1..=DAY,
        )?,
        tcp_idle_timeout_s: c.seconds(
            "flow.tcp_idle_timeout_s",
            raw.tcp_idle_timeout_s,
            DEFAULT_FLOW.tcp_idle_timeout_s,
            1..=7 * DAY,
        )?,
        update_interval_s: c.seconds(
            "flow.update_interval_s",
            raw.update_interval_s,
            DEFAULT_FLOW.update_interval_s,
            0..=DAY,
        )?,
        seed_from_conntrack: raw
            .seed_from_conntrack
            .unwrap_or(DEFAULT_FLOW.seed_from_conntrack),
        start_events: raw.start_events.unwrap_or(DEFAULT_FLOW.start_events),
        memory_mib: c.whole(
            "flow.memory_mib",
            raw.memory_mib,
            DEFAULT_FLOW.memory_mib,
            1..=65_536,
            "MiB",
        )?,
    })
}
