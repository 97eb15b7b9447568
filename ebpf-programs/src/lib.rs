//! Palisade's eBPF side, as seen from user space.
//!
//! - [`PALISADE_BPF`]: the compiled object (`bpf/palisade.bpf.c`, built by `build.rs` with
//!   clang-19), ready for `aya::EbpfLoader::load`.
//! - The names of its programs, maps and load-time globals, so no other crate spells them.
//! - [`abi`]: the constants of `bpf/include/records.h` (taken from the C header at build time)
//!   and typed views of them: [`Ring`], [`StatGroup`], [`StatSlot`], [`Kind`].
//! - [`records`]: `#[repr(C)]` mirrors of the shared structs, checked against the C layout at
//!   compile time, and readers that validate ring-buffer records.
//! - [`dns_name`]: DNS names exactly as the kernel's domain policy sees them (normalization,
//!   FNV-1a 64 hash, parent suffixes).
//! - [`dns_policy`]: building rule-set maps and swapping them into `pal_dns_policy`, learned
//!   blocks, the block action (raw bpf(2) calls, made by the supervisor only).
//!
//! - [`ip_policy`]: IPv4/IPv6 prefixes, building LPM tries and swapping them into
//!   `pal_ip4_policy` / `pal_ip6_policy`, single-prefix updates, the alert rate limit.
//!
//! Nothing here needs privileges except [`dns_policy`]'s map operations, which only the
//! supervisor performs: loading and attaching is the supervisor's job.

pub mod abi;
pub mod dns_name;
pub mod dns_policy;
pub mod flow_table;
pub mod ip_policy;
pub mod records;
mod sys;

pub use abi::*;
pub use records::{
    DnsConfig, DnsLearned, DnsRule, FlowConfig, FlowKey, FlowRecord, FlowSweep, FlowValue, Ip4Key,
    Ip6Key, IpBlockRecord, IpConfig, IpRule, RecordError, RecordHeader,
};

/// The C-side layout facts and constants of records.h, printed by the host probe of `build.rs`.
mod c {
    include!(concat!(env!("OUT_DIR"), "/records_c.rs"));
}

/// The eBPF object file (ELF, BTF included), 8-byte aligned as aya requires.
pub const PALISADE_BPF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/palisade.bpf.o"));

/// TC classifier for packets entering the interface (`TcAttachType::Ingress`).
pub const PROG_TC_INGRESS: &str = "pal_tc_ingress";
/// TC classifier for packets leaving the interface (`TcAttachType::Egress`).
pub const PROG_TC_EGRESS: &str = "pal_tc_egress";

/// Program the supervisor runs once with `BPF_PROG_TEST_RUN` to (re)arm the flow sweeper
/// timer ([`sys::prog_test_run`]); never attached.
pub const PROG_FLOW_TIMER_ARM: &str = "pal_flow_timer_arm";
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
/// Per-CPU `u64` counters; key from [`stats_key`].
pub const MAP_STATS: &str = "pal_stats";
/// LRU hash of live flows: [`FlowKey`] -> [`FlowValue`].
pub const MAP_FLOWS: &str = "pal_flows";
/// Array, one [`FlowConfig`]: idle timeouts, update interval, sweeper period.
pub const MAP_FLOW_CONFIG: &str = "pal_flow_config";
/// Array, one [`FlowSweep`]: what the kernel sweeper saw on its latest walk.
pub const MAP_FLOW_SWEEP: &str = "pal_flow_sweep";
/// Per-CPU `u64` flow counters, key `FLOW_STAT_*` (sum the CPUs).
pub const MAP_FLOW_STATS: &str = "pal_flow_stats";
/// Array, one `struct bpf_timer`: the sweeper's timer (kernel-only value).
pub const MAP_FLOW_TIMER: &str = "pal_flow_timer";
/// Per-CPU scratch buffer where records are assembled. Internal, never pinned.
pub const MAP_SCRATCH: &str = "pal_scratch";
/// `BPF_MAP_TYPE_ARRAY_OF_MAPS`, one slot: the current DNS rule set, a hash map
/// `u64 name hash -> DnsRule` ([`dns_policy`] builds and swaps it). Empty slot: no rule set.
pub const MAP_DNS_POLICY: &str = "pal_dns_policy";
/// Hash `u64 name hash -> DnsLearned`: exact-name blocks learned at run time, with expiry.
pub const MAP_DNS_LEARNED: &str = "pal_dns_learned";
/// Array, one [`DnsConfig`]: the block action. All zero (the default) means enforcement off.
pub const MAP_DNS_CONFIG: &str = "pal_dns_config";
/// LRU per-CPU hash `u32 rule id -> u64`: packets each rule decided (sum the CPUs).
pub const MAP_DNS_HITS: &str = "pal_dns_hits";
/// Per-CPU `u64` counters of the DNS policy, key [`DnsStat::index`].
pub const MAP_DNS_STATS: &str = "pal_dns_stats";

/// `BPF_MAP_TYPE_ARRAY_OF_MAPS`, one slot: the IPv4 LPM trie `Ip4Key -> IpRule` in force
/// ([`ip_policy`] builds and swaps it). Empty slot: no IPv4 rules.
pub const MAP_IP4_POLICY: &str = "pal_ip4_policy";
/// As [`MAP_IP4_POLICY`], for IPv6 (`Ip6Key -> IpRule`).
pub const MAP_IP6_POLICY: &str = "pal_ip6_policy";
/// Array of `u64` words: the IPv4 pre-filter, one bit per /16 that some IPv4 rule covers or
/// lies in ([`ip_policy::filter_bits`]). A clear bit skips the trie lookup.
pub const MAP_IP4_FILTER: &str = "pal_ip4_filter";
/// LRU per-CPU hash `u32 rule id -> u64`: packets each IP rule dropped (sum the CPUs).
pub const MAP_IP_HITS: &str = "pal_ip_hits";
/// Array, one [`IpConfig`]: the alert rate limit. All zero means no alerts.
pub const MAP_IP_CONFIG: &str = "pal_ip_config";
/// Per-CPU `u64` counters of the IP policy, key [`IpStat::index`].
pub const MAP_IP_STATS: &str = "pal_ip_stats";
/// Capacity of `pal_ip_hits`; the least recently hit rule id is evicted beyond it.
pub const IP_HITS_ENTRIES: u32 = 65536;

/// Maps declared with `LIBBPF_PIN_BY_NAME`: aya pins them as `<pin dir>/<name>` and reuses
/// existing pins on the next load (so the rule set, learned blocks, config and counters survive
/// a supervisor restart along with the attached programs).
pub const PINNED_MAPS: [&str; 21] = [
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
];

/// Size of each ring buffer in bytes (`max_entries` of the `rb_*` maps).
pub const RING_BYTES: u32 = 8 << 20;
/// Capacity of `pal_flows`; the least recently used flow is evicted beyond it.
pub const FLOW_ENTRIES: u32 = 65536;
/// Capacity of `pal_dns_learned`; inserts fail beyond it (prune expired entries).
pub const DNS_LEARNED_ENTRIES: u32 = 65536;
/// Capacity of `pal_dns_hits`; the least recently hit rule id is evicted beyond it.
pub const DNS_HITS_ENTRIES: u32 = 65536;

/// `volatile const __u32` global: a record wakes the ring's consumer only when at least this
/// many bytes are queued. Override with `EbpfLoader::override_global(GLOBAL_WAKEUP_BYTES, ..)`.
pub const GLOBAL_WAKEUP_BYTES: &str = "pal_wakeup_bytes";
/// Value of [`GLOBAL_WAKEUP_BYTES`] in the object.
pub const DEFAULT_WAKEUP_BYTES: u32 = 65536;

/// Runs a loaded program `repeat` times on the frame `data` (`BPF_PROG_TEST_RUN`, no
/// device involved); returns its return value and the kernel's mean ns per run. For
/// measuring the programs' own per-packet cost (`palisade-bench prog-cost`).
pub fn prog_test_run(
    prog: std::os::fd::BorrowedFd<'_>,
    data: &[u8],
    repeat: u32,
) -> std::io::Result<(u32, u32)> {
    sys::prog_test_run(prog, data, repeat, None).map(|(ret, ns, _)| (ret, ns))
}

/// [`prog_test_run`], also returning the frame as the program left it (rewrites and trims
/// included; redirects are not carried out), up to `data.len() + 512` bytes.
pub fn prog_test_run_frame(
    prog: std::os::fd::BorrowedFd<'_>,
    data: &[u8],
    repeat: u32,
) -> std::io::Result<(u32, Vec<u8>, u32)> {
    let mut out = vec![0_u8; data.len() + 512];
    let (ret, ns, len) = sys::prog_test_run(prog, data, repeat, Some(&mut out))?;
    out.truncate(len);
    Ok((ret, out, ns))
}
