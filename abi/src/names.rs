//! Names of the programs, maps and load-time globals of Palisade's eBPF object, and the sizes
//! the object declares, so no other crate spells them. Names only: opening or writing a map
//! is the supervisor's (`palisade-ebpf`, `supervisor/src/ebpf`).

/// TC classifier for packets entering the interface (`TcAttachType::Ingress`).
pub const PROG_TC_INGRESS: &str = "pal_tc_ingress";
/// TC classifier for packets leaving the interface (`TcAttachType::Egress`).
pub const PROG_TC_EGRESS: &str = "pal_tc_egress";

/// Program the supervisor runs once with `BPF_PROG_TEST_RUN` to (re)arm the flow sweeper
/// timer ((`palisade_ebpf::prog_test_run`)); never attached.
pub const PROG_FLOW_TIMER_ARM: &str = "pal_flow_timer_arm";
/// Program the supervisor runs with `BPF_PROG_TEST_RUN` before the flow table goes away: ends
/// up to [`crate::FLOW_END_BATCH`] open flows per run with their end record (reason
/// shutdown) and returns how many; never attached.
pub const PROG_FLOW_END_ALL: &str = "pal_flow_end_all";
/// XDP program of the IP policy (native or generic mode).
pub const PROG_XDP_BLOCK: &str = "pal_xdp_block";
/// TC classifier of the IP policy for ingress (`xdp_mode = "tc"`), attached first in TCX.
pub const PROG_TC_BLOCK_INGRESS: &str = "pal_tc_block_ingress";
/// TC classifier of the IP policy for egress (every mode), attached first in TCX.
pub const PROG_TC_BLOCK_EGRESS: &str = "pal_tc_block_egress";

/// Ring buffer of DNS records, read by the DNS worker.
pub const MAP_RB_DNS: &str = "rb_dns";
/// Ring buffer of DHCP records, read by the DHCP worker.
pub const MAP_RB_DHCP: &str = "rb_dhcp";
/// Ring buffer of TLS handshake records, read by the TLS worker.
pub const MAP_RB_TLS: &str = "rb_tls";
/// Ring buffer of flow start/end records, read by the flow worker.
pub const MAP_RB_FLOW: &str = "rb_flow";
/// Per-CPU `u64` counters; key from [`crate::stats_key`].
pub const MAP_STATS: &str = "pal_stats";
/// LRU hash of live flows: [`crate::FlowKey`] -> [`crate::FlowValue`].
pub const MAP_FLOWS: &str = "pal_flows";
/// Array, one [`crate::FlowConfig`]: idle timeouts, update interval, sweeper period.
pub const MAP_FLOW_CONFIG: &str = "pal_flow_config";
/// Array, one [`crate::FlowSweep`]: what the kernel sweeper saw on its latest walk.
pub const MAP_FLOW_SWEEP: &str = "pal_flow_sweep";
/// Per-CPU `u64` flow counters, key `FLOW_STAT_*` (sum the CPUs).
pub const MAP_FLOW_STATS: &str = "pal_flow_stats";
/// Array, one `struct bpf_timer`: the sweeper's timer (kernel-only value).
pub const MAP_FLOW_TIMER: &str = "pal_flow_timer";
/// Per-CPU scratch buffer where records are assembled. Internal, never pinned.
pub const MAP_SCRATCH: &str = "pal_scratch";
/// `BPF_MAP_TYPE_ARRAY_OF_MAPS`, one slot: the current DNS rule set, a hash map
/// `u64 name hash -> DnsRule` (`palisade_ebpf::dns_policy` builds and swaps it). Empty slot: no rule set.
pub const MAP_DNS_POLICY: &str = "pal_dns_policy";
/// Hash `u64 name hash -> DnsLearned`: exact-name blocks learned at run time, with expiry.
pub const MAP_DNS_LEARNED: &str = "pal_dns_learned";
/// Array, one [`crate::DnsConfig`]: the block action. All zero (the default) means enforcement off.
pub const MAP_DNS_CONFIG: &str = "pal_dns_config";
/// LRU per-CPU hash `u32 rule id -> u64`: packets each rule decided (sum the CPUs).
pub const MAP_DNS_HITS: &str = "pal_dns_hits";
/// Per-CPU `u64` counters of the DNS policy, key [`crate::DnsStat::index`].
pub const MAP_DNS_STATS: &str = "pal_dns_stats";

/// `BPF_MAP_TYPE_ARRAY_OF_MAPS`, one slot: the IPv4 LPM trie `Ip4Key -> IpRule` in force
/// (`palisade_ebpf::ip_policy` builds and swaps it). Empty slot: no IPv4 rules.
pub const MAP_IP4_POLICY: &str = "pal_ip4_policy";
/// As [`MAP_IP4_POLICY`], for IPv6 (`Ip6Key -> IpRule`).
pub const MAP_IP6_POLICY: &str = "pal_ip6_policy";
/// Array of `u64` words: the IPv4 pre-filter, one bit per /16 that some IPv4 rule covers or
/// lies in (`palisade_ebpf::ip_policy::filter_bits`). A clear bit skips the trie lookup.
pub const MAP_IP4_FILTER: &str = "pal_ip4_filter";
/// LRU per-CPU hash `u32 rule id -> u64`: packets each IP rule dropped (sum the CPUs).
pub const MAP_IP_HITS: &str = "pal_ip_hits";
/// Array, one [`crate::IpConfig`]: the alert rate limit. All zero means no alerts.
pub const MAP_IP_CONFIG: &str = "pal_ip_config";
/// Per-CPU `u64` counters of the IP policy, key [`crate::IpStat::index`].
pub const MAP_IP_STATS: &str = "pal_ip_stats";
/// LRU hash [`crate::FlowKey`] -> [`crate::TlsConn`]: TLS handshakes the kernel follows.
pub const MAP_TLS_CONNS: &str = "pal_tls_conns";
/// Per-CPU `u64` counters of the TLS capture, key [`crate::TlsStat::index`].
pub const MAP_TLS_STATS: &str = "pal_tls_stats";
/// Hash [`crate::FlowKey`] -> [`crate::FlowBlock`]: connections the TLS policy cut
/// (capacity [`crate::FLOW_BLOCK_MAX`]). Written by the supervisor only.
pub const MAP_FLOW_BLOCK: &str = "pal_flow_block";
/// Array, one `u32`: entries in [`MAP_FLOW_BLOCK`] (0 lets the observer skip its lookup).
pub const MAP_FLOW_BLOCK_ACTIVE: &str = "pal_flow_block_active";
/// Hash [`crate::GuardKey`] -> `u32`: the DHCP guard's allow-list (source MACs and IPs of
/// the DHCP servers and routers allowed; capacity [`crate::GUARD_ALLOW_MAX`]).
pub const MAP_GUARD_ALLOW: &str = "pal_guard_allow";
/// Array, one [`crate::CaptureConfig`]: the captures switched off.
pub const MAP_CAPTURE_CONFIG: &str = "pal_capture_config";
/// Array, one [`crate::GuardConfig`]: the guard's mode.
pub const MAP_GUARD_CONFIG: &str = "pal_guard_config";
/// LRU hash [`crate::GuardSourceKey`] -> [`crate::GuardSource`]: rogue senders and what
/// they sent.
pub const MAP_GUARD_SOURCES: &str = "pal_guard_sources";
/// Per-CPU `u64` counters of the guard, key [`crate::GuardStat::index`].
pub const MAP_GUARD_STATS: &str = "pal_guard_stats";
/// Ring buffer of [`crate::TraceEvent`]s, read by the supervisor while a packet trace runs.
pub const MAP_RB_TRACE: &str = "rb_trace";
/// Array, one [`crate::TraceConfig`]: the packet trace's filter and deadline (0: off).
pub const MAP_TRACE_CONFIG: &str = "pal_trace_config";
/// Per-CPU `u64` counters of the packet trace, key [`crate::TraceStat::index`].
pub const MAP_TRACE_STATS: &str = "pal_trace_stats";
/// Capacity of `pal_ip_hits`; the least recently hit rule id is evicted beyond it.
pub const IP_HITS_ENTRIES: u32 = 65536;

/// Maps declared with `LIBBPF_PIN_BY_NAME`: aya pins them as `<pin dir>/<name>` and reuses
/// existing pins on the next load (so the rule set, learned blocks, config and counters survive
/// a supervisor restart along with the attached programs).
pub const PINNED_MAPS: [&str; 33] = [
    MAP_RB_DNS,
    MAP_RB_DHCP,
    MAP_RB_TLS,
    MAP_RB_FLOW,
    MAP_STATS,
    MAP_FLOWS,
    MAP_FLOW_CONFIG,
    MAP_FLOW_SWEEP,
    MAP_FLOW_STATS,
    MAP_FLOW_TIMER,
    MAP_DNS_POLICY,
    MAP_DNS_LEARNED,
    MAP_DNS_CONFIG,
    MAP_DNS_HITS,
    MAP_DNS_STATS,
    MAP_IP4_POLICY,
    MAP_IP6_POLICY,
    MAP_IP4_FILTER,
    MAP_IP_HITS,
    MAP_IP_CONFIG,
    MAP_IP_STATS,
    MAP_TLS_CONNS,
    MAP_TLS_STATS,
    MAP_FLOW_BLOCK,
    MAP_FLOW_BLOCK_ACTIVE,
    MAP_GUARD_ALLOW,
    MAP_GUARD_CONFIG,
    MAP_GUARD_SOURCES,
    MAP_GUARD_STATS,
    MAP_CAPTURE_CONFIG,
    MAP_RB_TRACE,
    MAP_TRACE_CONFIG,
    MAP_TRACE_STATS,
];

/// Size of `rb_trace` in bytes: about 11,000 trace events between two reads.
pub const TRACE_RING_BYTES: u32 = 1 << 20;
/// Size of each worker's ring buffer in bytes (`max_entries` of the other `rb_*` maps).
pub const RING_BYTES: u32 = 8 << 20;
/// Kernel memory a live flow costs at most, for sizing the flow table from its budget:
/// key (40) and value (112) in a hash element (~176 B from the kernel's 192-byte allocation
/// class), plus its share of the bucket array (8-16 B) and slack.
pub const FLOW_BYTES: u64 = 256;
/// Capacity of `pal_dns_learned`; inserts fail beyond it (prune expired entries).
pub const DNS_LEARNED_ENTRIES: u32 = 65536;
/// Capacity of `pal_dns_hits`; the least recently hit rule id is evicted beyond it.
pub const DNS_HITS_ENTRIES: u32 = 65536;

/// `volatile const __u32` global: a record wakes the ring's consumer only when at least this
/// many bytes are queued. Override with `EbpfLoader::override_global(GLOBAL_WAKEUP_BYTES, ..)`.
pub const GLOBAL_WAKEUP_BYTES: &str = "pal_wakeup_bytes";
/// Value of [`GLOBAL_WAKEUP_BYTES`] in the object.
pub const DEFAULT_WAKEUP_BYTES: u32 = 65536;
