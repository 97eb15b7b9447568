//! Every message of the protocol, in one place.
//!
//! Requests and their answers are named alike (`Restart` / `Restarted`).
//! Strings and lists carried here are bounded by [`crate::validation`]
//! before the supervisor acts on them.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// The four per-protocol workers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum WorkerKind {
    /// DHCP (UDP 67/68).
    Dhcp = 0,
    /// DNS (UDP/TCP 53).
    Dns = 1,
    /// TLS handshakes.
    Tls = 2,
    /// Flow records.
    Flow = 3,
}

impl WorkerKind {
    /// Every kind, in the order the supervisor starts them.
    pub const ALL: [Self; 4] = [Self::Dhcp, Self::Dns, Self::Tls, Self::Flow];

    /// Lower-case name, used in config sections, file names and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dhcp => "dhcp",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Flow => "flow",
        }
    }

    /// Parses [`WorkerKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// What a file descriptor passed alongside [`SupervisorToWorker::Configure`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum FdRole {
    /// The worker's BPF ring buffer (read-write: consuming needs it).
    RingBuf,
    /// Where the worker writes its JSON lines (write-only, append).
    EventSink,
    /// DHCP worker: its state file (`<state_dir>/devices.jsonl`, read-write), opened by the
    /// supervisor: the device inventory, read at start and rewritten as it changes.
    State,
    /// DHCP worker: the IEEE MAC registries (MA-L, MA-M, MA-S) in compact form
    /// (`HEX<TAB>Organization` lines), a sealed memfd the supervisor filled from Debian's
    /// `ieee-data` files.
    Registry,
    /// AF_PACKET capture (no eBPF): a receive-only `AF_PACKET` socket the supervisor created,
    /// with this worker's classic BPF filter attached and locked (`SO_LOCK_FILTER`), in place
    /// of [`FdRole::RingBuf`]. The worker builds the kernel's records from its frames
    /// (`palisade-record-builder`) once [`SupervisorToWorker::PacketCapture`] arrives.
    PacketSocket,
}

/// An interface the programs are attached to, so workers can name `in_iface`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct InterfaceName {
    /// Kernel ifindex as found in ring-buffer records.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
}

/// Everything a worker needs after the handshake. The FDs travel in the same
/// frame as SCM_RIGHTS, in the order of `fds`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct WorkerConfig {
    /// Which worker this is (must match the worker's own hello).
    pub kind: WorkerKind,
    /// Heartbeat interval in milliseconds.
    pub heartbeat_ms: u32,
    /// Longest a record may wait in the ring buffer before the worker polls
    /// it without a kernel wake-up (wake-ups are batched), milliseconds.
    pub poll_backstop_ms: u32,
    /// Role of each FD in the frame, in order.
    pub fds: Vec<FdRole>,
    /// Names of the interfaces the programs are attached to.
    pub interfaces: Vec<InterfaceName>,
}

/// A regex rule the DNS worker matches query names against.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RegexRule {
    /// Rule id (the supervisor's numbering).
    pub id: u32,
    /// Pattern (already validated and size-limited by the supervisor).
    pub pattern: String,
}

/// Supervisor -> worker.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum SupervisorToWorker {
    /// Configuration and FDs; answered by [`WorkerToSupervisor::Ready`].
    Configure(WorkerConfig),
    /// Updated interface names (interfaces attached or renamed).
    Interfaces(Vec<InterfaceName>),
    /// Stop: drain the ring buffer, flush, send final stats, exit 0.
    Shutdown,
    /// The policy a worker applies in user space (replaces the previous
    /// one); answered by [`WorkerToSupervisor::RulesetApplied`].
    Policy(WorkerPolicy),
    /// DNS worker: a CNAME chain it reported reaches a blocked domain; the
    /// queried name is now blocked (learned). The worker logs an alert.
    CnameBlocked {
        /// The queried name, now blocked.
        name: String,
        /// The blocked CNAME target.
        target: String,
        /// The rule that blocks the target, as text.
        rule: String,
    },
    /// TLS worker: the TLS rules in force (at start and after every change); answered by
    /// `RulesetApplied`.
    TlsPolicy(TlsWorkerPolicy),
    /// FDs handed over after `Configure`, one per role in this order, carried by this
    /// frame (the only message besides `Configure` that carries FDs): the DHCP worker's
    /// IEEE registry re-read at a reload. The worker gives them to its protocol as it did
    /// the `Configure` extras; a count that does not match is a fatal error.
    Fds(Vec<FdRole>),
    /// `palisade log-level LEVEL --worker W`: from now on the worker sends only log lines
    /// at `level` or more severe (it starts at `Info`); it answers with a line naming the
    /// level it applies, sent whatever the level.
    SetLogLevel(LogLevel),
    /// AF_PACKET capture: what the kernel's flow sweeper would apply, for the worker's own
    /// record builder; sent right after `Ready` to a worker given a
    /// [`FdRole::PacketSocket`] (it reads no frame before).
    PacketCapture(PacketCaptureConfig),
}

/// [`SupervisorToWorker::PacketCapture`]: `[flow]` as the record builder needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct PacketCaptureConfig {
    /// UDP and ICMP flows end after this many ns without a packet.
    pub idle_ns: u64,
    /// TCP flows without FIN pair or RST: idem.
    pub tcp_idle_ns: u64,
    /// Update records of long flows every this many ns (`[flow] update_interval_s`); 0: none.
    pub update_ns: u64,
    /// Flows the builder holds at once (`[flow] memory_mib` over the kernel's bytes per flow).
    pub max_flows: u32,
}

/// What a worker matches in user space.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode)]
pub struct WorkerPolicy {
    /// SHA-256 of the supervisor's whole rule set this belongs to.
    pub ruleset: [u8; 32],
    /// DNS worker: regex block rules.
    pub regexes: Vec<RegexRule>,
    /// DNS worker: names of encrypted-DNS (DoH/DoT) resolvers; a query for
    /// one (or a subdomain) is an alert.
    pub encrypted_dns_names: Vec<String>,
    /// Flow worker: addresses of encrypted-DNS resolvers; a flow to one on
    /// port 443 or 853 is an alert.
    pub encrypted_dns_addresses: Vec<String>,
    /// Flow worker: write an event for a flow's start too (`flow.start_events`), not only
    /// its end and periodic updates. Not part of `ruleset`: it is output, not policy.
    pub flow_start_events: bool,
    /// DHCP worker: seconds a transaction may stay open (`dhcp.transaction_timeout_s`);
    /// 0 keeps the worker's default. Not part of `ruleset`: it is tracking, not policy.
    pub dhcp_transaction_timeout_s: u32,
}

/// [`WorkerToSupervisor::FlowBlockRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct FlowBlockRequest {
    /// The rule that matched.
    pub rule_id: u32,
    /// What matched it: the JA3 hash, JA4 or SNI of the hello (bounded by validation).
    pub observed: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub l4_proto: u8,
    /// Sender of the hello: address (16 bytes, IPv4 in the first 4) and port.
    pub src: ([u8; 16], u16),
    /// Its peer.
    pub dst: ([u8; 16], u16),
    /// Boot-clock time of the hello's record.
    pub hello_ns: u64,
}

/// A drop counter with its reason, e.g. `parse_error_truncated`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct DropCount {
    /// snake_case reason.
    pub reason: String,
    /// Events lost for this reason since the worker started.
    pub count: u64,
}

/// Counters a worker reports (totals since that worker process started).
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct WorkerStats {
    /// Ring-buffer records consumed.
    pub records: u64,
    /// Events written to the sink.
    pub events: u64,
    /// Bytes written to the sink.
    pub bytes: u64,
    /// Every record or event lost, by reason.
    pub drops: Vec<DropCount>,
    /// What was counted without losing an event, by reason: an event written without
    /// something it could have had (e.g. a query that will get no RTT because the
    /// correlation table was full). Never a loss: the events are in the log.
    pub notices: Vec<DropCount>,
    /// Levels now (not totals), by name: e.g. the DHCP worker's open transactions and
    /// devices. `DropCount.count` holds the level.
    pub gauges: Vec<DropCount>,
}

/// Severity of a worker's log line (and, in [`SupervisorToWorker::SetLogLevel`], the least
/// severe a worker sends). Ordered from the most severe.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Something is wrong.
    Error,
    /// Something is unusual.
    Warn,
    /// Normal operation.
    Info,
}

impl LogLevel {
    /// Lower-case name (`error`, `warn`, `info`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
        }
    }

    /// Parses [`LogLevel::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Error, Self::Warn, Self::Info]
            .into_iter()
            .find(|l| l.name() == name)
    }
}

/// Worker -> supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum WorkerToSupervisor {
    /// Configuration applied, ring buffer mapped, seccomp installed.
    Ready,
    /// Liveness, every `heartbeat_ms`.
    Heartbeat {
        /// Increments by one per heartbeat.
        seq: u64,
    },
    /// Counters, sent with heartbeats and once more before exiting.
    Stats(WorkerStats),
    /// A log line for the supervisor's log (workers have no stderr).
    Log {
        /// Severity.
        level: LogLevel,
        /// Text, bounded by validation.
        message: String,
    },
    /// DNS worker: a query name matched regex rule `rule_id`; asks the
    /// supervisor to block the name in the kernel. The supervisor checks the
    /// claim against its own rule set before writing anything.
    BlockRequest {
        /// The query name as seen (validated by the supervisor).
        name: String,
        /// The regex rule that matched.
        rule_id: u32,
    },
    /// The rule set a worker applies (answer to `Policy`).
    RulesetApplied {
        /// SHA-256 from the `Policy` it applied.
        ruleset: [u8; 32],
    },
    /// DNS worker: an answer's CNAME chain, for the supervisor to check
    /// against the block rules (the worker does not hold them).
    CnameCheck {
        /// The queried name (normalized).
        name: String,
        /// CNAME targets in the answer (normalized), in order.
        targets: Vec<String>,
    },
    /// TLS worker: a ClientHello matched TLS rule `rule_id`, which blocks; asks the
    /// supervisor to cut the connection in the kernel. The supervisor checks `observed`
    /// against its own copy of the rule and that the kernel tracks the flow.
    FlowBlockRequest(FlowBlockRequest),
}

/// Which workers `palisade restart` targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum RestartTarget {
    /// One worker.
    One(WorkerKind),
    /// All four.
    All,
}

/// CLI -> supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ControlRequest {
    /// Read-only: the full status report.
    Status,
    /// Read-only: versions of the running daemon.
    Version,
    /// Mutating (root only): restart workers.
    Restart(RestartTarget),
    /// Mutating (root only): re-read the configuration and lists, validate
    /// everything, apply what can change live.
    Reload,
    /// Read-only: which DNS rule decides a name, and why.
    DnsTest(String),
    /// Read-only: per-rule hit counters of the DNS policy.
    DnsBlockedHits,
    /// Mutating (root only): reopen the event log files (after rotation).
    ReopenLogs,
    /// Read-only: the biggest live flows.
    FlowsTop {
        /// Sort key.
        by: FlowOrder,
        /// Rows wanted (the daemon caps it at [`FLOW_ROWS_MAX`]).
        limit: u32,
    },
    /// Read-only: live flows with `host` (an IP address) at either end, biggest first.
    FlowsShow {
        /// IPv4 or IPv6 address, as text.
        host: String,
        /// Rows wanted (capped like `FlowsTop`).
        limit: u32,
    },
    /// Mutating (root only): block a CIDR (or address) at run time, or update the TTL and
    /// comment of a runtime rule that blocks it already. Persisted in the state directory.
    BlockAdd(BlockAddRequest),
    /// Mutating (root only): remove the runtime rule of a CIDR.
    BlockRemove(String),
    /// Read-only: IP policy rules (every runtime rule; list rules by hits, at most `limit`).
    BlockList {
        /// Most list-file rules to report (runtime rules are always all reported).
        limit: u32,
    },
    /// Mutating (root only): add a TLS rule at run time (persisted in the state directory).
    TlsRuleAdd(TlsRuleSpec),
    /// Mutating (root only): remove the runtime TLS rule of this kind and value.
    TlsRuleRemove(TlsRuleSpec),
    /// Read-only: the TLS rules and the connections they cut (at most `limit` of each).
    TlsRuleList {
        /// Most rules and blocks to report.
        limit: u32,
    },
    /// Read-only: a piece of the device inventory as the DHCP worker last wrote it
    /// (`<state_dir>/devices.jsonl`), from byte `offset`. The daemon hands the bytes over
    /// without parsing them (they come from an unprivileged worker); the CLI reads them.
    Devices {
        /// Where the piece starts.
        offset: u64,
    },
    /// Mutating (root only, since it repairs): compare the kernel state with what the daemon
    /// put there (links, pins, policy maps, the rule sets the workers apply) now, repair what
    /// drifted, and report.
    Check,
    /// Read-only: the DHCP guard's mode and allow-list, and the senders not on it that the
    /// kernel counted (`pal_guard_sources`), most recently seen first, at most `limit`.
    Guard {
        /// Most senders to report (the daemon caps it at [`GUARD_SENDERS_MAX`]).
        limit: u32,
    },
    /// Mutating (root only): change the log filter of the supervisor (`worker` absent: a
    /// tracing `EnvFilter` directive such as `debug` or `info,palisade::control=debug`) or of
    /// one worker (`error`, `warn` or `info`), until the daemon stops.
    LogLevel(LogLevelChange),
    /// Read-only: the runtime feature switches.
    Features,
    /// Mutating (root only): switch a feature (`dns-blocking`, `ip-blocking`, `tls-rules`,
    /// `dhcp-guard`, `capture-dns`, `capture-dhcp`, `capture-tls`, `capture-flow`) on or off;
    /// persisted in the state directory.
    FeatureSet {
        /// The feature.
        name: String,
        /// On or off.
        enabled: bool,
    },
    /// Mutating (root only): start a packet trace (one at a time: refused while one runs).
    TraceStart(TraceFilter),
    /// Read-only: the trace's events after sequence number `after` (at most
    /// [`TRACE_EVENTS_PER_POLL`]), whether it still runs, and its losses.
    TracePoll {
        /// The `next` of the previous answer (0 at first).
        after: u64,
    },
    /// Mutating (root only): stop the running trace (its events stay readable); with none
    /// running, only reports.
    TraceStop,
}

/// Longest trace (`duration_s`), in seconds.
pub const TRACE_DURATION_MAX_S: u32 = 3600;
/// A trace's duration when the request names none, in seconds.
pub const TRACE_DURATION_DEFAULT_S: u32 = 30;
/// Most events in one [`ControlResponse::Trace`] (well inside the answer size limit).
pub const TRACE_EVENTS_PER_POLL: u32 = 200;

/// [`ControlRequest::TraceStart`]: which packets to trace, and for how long. Every field that
/// is set must match. `Default` is no trace at all (`duration_s` 0), as reports before the
/// first trace show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceFilter {
    /// An IPv4 or IPv6 address at either end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, or an IP protocol number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// A TCP or UDP port at either end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Seconds until the trace ends by itself (1 to [`TRACE_DURATION_MAX_S`]).
    #[serde(default = "trace_duration_default")]
    pub duration_s: u32,
}

fn trace_duration_default() -> u32 {
    TRACE_DURATION_DEFAULT_S
}

/// [`ControlResponse::Trace`]: a trace's state and a batch of its events (`Default`: before
/// the first trace).
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct TraceReport {
    /// The kernel is tracing (false once it ended, and before the first trace: then
    /// `ended` is absent and `duration_s` 0).
    pub active: bool,
    /// What it traces.
    pub filter: TraceFilter,
    /// Milliseconds until it ends by itself (0 once ended).
    pub remaining_ms: u64,
    /// Why it ended: `duration`, `stopped`; absent while active (and before the first trace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// Events after the request's `after`, oldest first.
    pub events: Vec<TraceEventInfo>,
    /// The `after` of the next poll: the last event's `seq`, or the request's `after`.
    pub next: u64,
    /// Events the programs could not write (the trace ring was full), since the trace began.
    pub kernel_lost: u64,
    /// Events dropped from the daemon's buffer before anyone fetched them (oldest first).
    pub buffer_lost: u64,
}

/// One program run on a traced packet.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct TraceEventInfo {
    /// Sequence number within the trace, from 1.
    pub seq: u64,
    /// When the program ran (EVE timestamp format).
    pub timestamp: String,
    /// The program: `xdp` (IP policy, XDP), `tc-block` (IP policy, TC), `observer` (capture,
    /// flows, DNS policy, TLS cuts, DHCP guard).
    pub hook: String,
    /// Interface name (`ifindex N` if unknown).
    pub interface: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `TCP`, `UDP`, `ICMP`, `IPv6-ICMP`, or the protocol number.
    pub proto: String,
    /// Source address.
    pub src_ip: String,
    /// Source port (0 without ports).
    pub src_port: u16,
    /// Destination address.
    pub dest_ip: String,
    /// Destination port (0 without ports).
    pub dest_port: u16,
    /// VLAN id, when tagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Frame bytes.
    pub length: u32,
    /// `pass`, `drop`, `redirect` (the DNS policy's NXDOMAIN answer to a query) or `rewrite`
    /// (a DNS answer the policy rewrote in place into NXDOMAIN: it goes on).
    pub verdict: String,
    /// What made the verdict: `ip-policy`, `dns-policy`, `tls-cut`, `dhcp-guard`; absent when
    /// nothing acted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// `ip-policy`: the rule's id (as in `palisade block list`); `dns-policy`: the DNS
    /// rule's (as in `palisade dns blocked-hits`); `tls-cut`: the TLS rule's (`palisade tls
    /// rules list`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<u32>,
    /// `ip-policy`: the rule's prefix, e.g. `10.9.0.0/16`; `dns-policy`: the rule, e.g.
    /// `block suffix ads.example (/etc/palisade/block.txt:3)` (an allow rule lets the
    /// message pass); `tls-cut`: the TLS rule, e.g. `ja4 t13d... (cli)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `ip-policy`: which address matched it, `src` or `dest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// `observer`: the packet's flow, `tracked`, `none` (not a flow protocol, or a packet that
    /// cannot start one) or `table-full`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// `observer`: the workers whose ring got a record of the packet (`dns`, `dhcp`, `tls`,
    /// `flow`).
    pub records: Vec<String>,
    /// `observer`: records lost or not made, as `RING: ring-full` or `RING: capture-off`.
    pub lost: Vec<String>,
}

/// One runtime feature switch, in [`StatusReport`] and [`ControlResponse::Features`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct FeatureState {
    /// A feature's name (`dns-blocking`, ..., `capture-flow`).
    pub name: String,
    /// On (the default) or switched off.
    pub enabled: bool,
}

/// [`ControlRequest::LogLevel`], and its answer [`ControlResponse::LogLevelSet`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLevelChange {
    /// The filter (at most [`LOG_FILTER_MAX`] bytes).
    pub level: String,
    /// A worker, or the supervisor when absent.
    #[serde(default)]
    pub worker: Option<WorkerKind>,
}

/// Bytes of a [`LogLevelChange::level`], at most.
pub const LOG_FILTER_MAX: usize = 1024;

/// Senders per [`ControlResponse::Guard`] answer, at most (a frame holds about 500).
pub const GUARD_SENDERS_MAX: u32 = 400;

/// The DHCP guard as the daemon and the kernel see it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct GuardReport {
    /// `off` (no allow-list), `alert` or `drop`, as in the kernel's `pal_guard_config`.
    pub mode: String,
    /// `[dhcp] allowed_servers` in force.
    pub allowed_servers: Vec<String>,
    /// Senders the kernel counted (it keeps at most 1,024).
    pub senders_total: u32,
    /// The most recently seen of them, at most the limit asked for.
    pub senders: Vec<GuardSender>,
}

/// One sender the DHCP guard found on no allow-list entry, from `pal_guard_sources`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct GuardSender {
    /// Ethernet source.
    pub mac: String,
    /// IP source.
    pub ip: String,
    /// DHCPv4 server messages.
    pub dhcp4: u64,
    /// DHCPv6 server messages.
    pub dhcp6: u64,
    /// Router advertisements.
    pub ra: u64,
    /// Of those, dropped (`guard = true`).
    pub dropped: u64,
    /// First and latest message, seconds since the epoch.
    pub first_seen: u64,
    pub last_seen: u64,
}

/// Bytes of the inventory per [`ControlResponse::Devices`] answer, at most.
pub const DEVICES_CHUNK: usize = 48 * 1024;

/// A piece of the device inventory file.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct DevicesChunk {
    /// Size of the whole file when this piece was read.
    pub total: u64,
    /// Where this piece starts.
    pub offset: u64,
    /// At most [`DEVICES_CHUNK`] bytes (JSON lines, unparsed).
    pub bytes: Vec<u8>,
}

/// Most rows a flow listing returns (keeps the answer well inside one frame).
pub const FLOW_ROWS_MAX: u32 = 200;

/// Sort key of [`ControlRequest::FlowsTop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowOrder {
    /// Bytes both ways.
    Bytes,
    /// Packets both ways.
    Packets,
}

/// One live flow (from the kernel flow table).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct FlowSummary {
    /// `tcp`, `udp`, `icmp` or `ipv6-icmp`.
    pub proto: String,
    /// Client address (the first packet's sender, or conntrack's originator).
    pub src_ip: String,
    /// Client port (0 for ICMP).
    pub src_port: u16,
    /// Server address.
    pub dest_ip: String,
    /// Server port.
    pub dest_port: u16,
    /// Packets client -> server.
    pub pkts_toserver: u64,
    /// Packets server -> client.
    pub pkts_toclient: u64,
    /// Frame bytes client -> server.
    pub bytes_toserver: u64,
    /// Frame bytes server -> client.
    pub bytes_toclient: u64,
    /// Milliseconds since the first packet.
    pub age_ms: u64,
    /// Milliseconds since the latest packet.
    pub idle_ms: u64,
    /// Interface of the first packet (empty while a seeded flow has not been seen).
    pub interface: String,
    /// OR of TCP flags client -> server.
    pub tcp_flags_ts: u8,
    /// OR of TCP flags server -> client.
    pub tcp_flags_tc: u8,
    /// Seeded from conntrack at start.
    pub seeded: bool,
}

/// Answer to [`ControlRequest::FlowsTop`] and [`ControlRequest::FlowsShow`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct FlowList {
    /// Flows in the kernel table.
    pub live: u64,
    /// Flows that matched the request (before the row limit).
    pub matched: u64,
    /// The rows, biggest first.
    pub flows: Vec<FlowSummary>,
}

/// The flow table in [`StatusReport`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct FlowTableStatus {
    /// Flows in the table at the sweeper's latest walk.
    pub live: u64,
    /// Flows the table holds at most (what its shards were created with).
    pub capacity: u64,
    /// Capacity the configuration asks for (`[flow] memory_mib`); differs from `capacity`
    /// until a table pinned by a previous run is recreated (`palisade cleanup`, reboot).
    pub configured_capacity: u64,
    /// Flows ended early, with their end record, by emergency walks of nearly full shards.
    pub evicted: u64,
    /// Walks of the whole table since the maps were created.
    pub sweeps: u64,
    /// Milliseconds since the latest shard walk (`None` before the first).
    pub last_sweep_ms_ago: Option<u64>,
    /// Duration of the longest latest shard walk, microseconds: one sweeper tick at most.
    pub sweep_walk_us: u64,
    /// `[flow]` timeouts in force, seconds.
    pub idle_timeout_s: u32,
    /// TCP idle timeout in force, seconds.
    pub tcp_idle_timeout_s: u32,
    /// Update interval in force, seconds (0: none).
    pub update_interval_s: u32,
    /// What filled the table at start: the open flows an upgrade carried over from another
    /// ABI version's table, then conntrack seeding (what happened, or why it could not).
    pub conntrack: String,
}

/// [`ControlRequest::BlockAdd`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockAddRequest {
    /// `a.b.c.d/n`, `x::y/n` or a bare address.
    pub cidr: String,
    /// Seconds until the rule expires; `None` = never.
    pub ttl_secs: Option<u64>,
    /// Free text shown by `block list` and in alerts.
    pub comment: Option<String>,
}

/// One IP policy rule, in [`IpBlockList`] and the answers to block requests.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct IpRuleInfo {
    /// Rule id (in alerts and the kernel hit counters).
    pub id: u32,
    /// The prefix, host bits cleared.
    pub cidr: String,
    /// `cli`, or `FILE:LINE` of the list entry.
    pub source: String,
    /// Comment (`block add --comment`, or the list line's trailing comment).
    pub comment: Option<String>,
    /// Unix time (s) when a runtime rule expires; `None` = never.
    pub expires_unix: Option<u64>,
    /// Packets dropped by this rule (kernel counters, summed over CPUs).
    pub hits: u64,
    /// False when another rule for the same prefix is the one in the kernel (a list rule
    /// shadows a runtime rule of the same CIDR).
    pub in_kernel: bool,
}

/// Answer to [`ControlRequest::BlockList`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct IpBlockList {
    /// Rules from list files.
    pub list_rules: u32,
    /// Rules added at run time.
    pub runtime_rules: u32,
    /// IPv4 prefixes in the kernel trie.
    pub kernel_v4: u32,
    /// IPv6 prefixes in the kernel trie.
    pub kernel_v6: u32,
    /// The reported rules: runtime rules first, then list rules by hits.
    pub rules: Vec<IpRuleInfo>,
}

/// State of a worker slot as the supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Spawned, handshake or configuration in progress.
    Starting,
    /// Ready and heartbeating.
    Running,
    /// Exited or killed; restart scheduled after backoff.
    Backoff,
    /// Crash-loop limit reached; not restarted until `palisade restart`.
    Failed,
    /// Shutting down.
    Stopping,
}

/// One worker in [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct WorkerStatus {
    /// Which worker.
    pub kind: WorkerKind,
    /// Current state.
    pub state: WorkerState,
    /// Process id while a process exists.
    pub pid: Option<u32>,
    /// uid the worker runs as.
    pub uid: u32,
    /// gid the worker runs as.
    pub gid: u32,
    /// Milliseconds since the current process became ready.
    pub uptime_ms: Option<u64>,
    /// Restarts since the daemon started.
    pub restarts: u32,
    /// Protocol violations (each killed the worker).
    pub violations: u32,
    /// Milliseconds since the last heartbeat.
    pub last_heartbeat_ms_ago: Option<u64>,
    /// Why the previous process ended, if one did.
    pub last_exit: Option<String>,
    /// Counters accumulated over every process of this worker.
    pub stats: WorkerStats,
}

/// One attachment of a program to an interface hook.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Attachment {
    /// `ingress` or `egress`.
    pub direction: String,
    /// Program name.
    pub program: String,
    /// Kernel program id.
    pub program_id: u32,
    /// Kernel link id (0 for a netlink clsact attachment).
    pub link_id: u32,
    /// `tcx` or `clsact`.
    pub mode: String,
    /// True when this daemon adopted a link pinned by a previous run.
    pub adopted: bool,
}

/// One interface in [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct InterfaceStatus {
    /// Name.
    pub name: String,
    /// Kernel ifindex.
    pub ifindex: u32,
    /// Attached programs.
    pub attachments: Vec<Attachment>,
    /// Why attaching failed, if it did.
    pub error: Option<String>,
    /// `attached`, `waiting` (configured, not there yet: a missing name, or a pattern
    /// nothing matches), `error` (there, but nothing or not everything could be attached:
    /// see `error`), `gone` (was attached; deleted or renamed away).
    pub state: String,
    /// Unix time (seconds) since which the interface is in `state`.
    pub since: u64,
}

/// Network reconciliation in [`StatusReport`]: what the link monitor saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct NetworkStatus {
    /// Link messages read (`RTM_NEWLINK` / `RTM_DELLINK`).
    pub link_events: u64,
    /// Full re-reads of every link (at start, after lost events, after an error).
    pub resyncs: u64,
    /// Interfaces attached after start (appeared, came back, renamed into the selection).
    pub attached: u64,
    /// Interfaces whose links were released (deleted, renamed away).
    pub released: u64,
    /// Renames followed (links re-pinned under the new name).
    pub renamed: u64,
}

/// A kernel counter summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct KernelCounter {
    /// `dns`, `dhcp`, `tls`, `flow` or `global`.
    pub group: String,
    /// `records`, `ring_full`, `truncated`, `not_parsed`, `map_full`
    /// (`records` in `global` counts packets seen).
    pub counter: String,
    /// Value.
    pub value: u64,
}

/// Versions of a binary.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct VersionInfo {
    /// Package version.
    pub version: String,
    /// IPC protocol version.
    pub protocol: u16,
    /// Ring-buffer record / map layout ABI version.
    pub abi: u16,
}

/// `palisade status`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct StatusReport {
    /// Daemon versions.
    pub version: VersionInfo,
    /// Daemon pid.
    pub pid: u32,
    /// Milliseconds since the daemon started.
    pub uptime_ms: u64,
    /// Versioned pin directory in use.
    pub pin_dir: String,
    /// Workers, in [`WorkerKind::ALL`] order.
    pub workers: Vec<WorkerStatus>,
    /// Interfaces.
    pub interfaces: Vec<InterfaceStatus>,
    /// Kernel counters.
    pub kernel: Vec<KernelCounter>,
    /// DNS policy.
    pub dns: DnsPolicyStatus,
    /// Flow table.
    pub flows: FlowTableStatus,
    /// Drift checks.
    pub drift: DriftStatus,
    /// Network reconciliation.
    pub network: NetworkStatus,
    /// How packets are captured, and which enforcement features that leaves.
    pub capture: CaptureStatus,
    /// Runtime feature switches.
    pub features: Vec<FeatureState>,
}

/// The capture mode in [`StatusReport`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct CaptureStatus {
    /// `ebpf` or `af_packet`.
    pub mode: String,
    /// Why eBPF is not in use when `capture = "auto"` fell back to AF_PACKET.
    pub fallback_reason: Option<String>,
    /// Every enforcement feature: `active` (the kernel programs enforce it, with whatever
    /// rules are configured), `unavailable` (it needs the eBPF programs, which are not
    /// loaded).
    pub enforcement: Vec<EnforcementState>,
    /// AF_PACKET: per worker socket, the kernel's counters (`PACKET_STATISTICS`).
    pub sockets: Vec<PacketSocketStatus>,
}

/// One enforcement feature in [`CaptureStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct EnforcementState {
    /// `ip_blocklist`, `dns_blocking`, `tls_flow_blocks`, `dhcp_guard`.
    pub feature: String,
    /// `active` or `unavailable`.
    pub state: String,
}

/// One AF_PACKET socket in [`CaptureStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct PacketSocketStatus {
    /// The worker reading it.
    pub worker: WorkerKind,
    /// Frames that passed its filter since the daemon started.
    pub packets: u64,
    /// Of those, frames the kernel dropped because the socket's buffer was full.
    pub drops: u64,
}

/// DNS policy in [`StatusReport`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct DnsPolicyStatus {
    /// Name rules in the kernel map.
    pub kernel_rules: u32,
    /// Regex rules given to the DNS worker.
    pub regex_rules: u32,
    /// Names learned from regex verdicts or CNAME inspection, unexpired.
    pub learned: u32,
    /// `nxdomain` or `drop`.
    pub block_action: String,
    /// SHA-256 (hex) of the rule set in force.
    pub ruleset_sha256: String,
    /// SHA-256 (hex) the DNS worker reports applying (drift when different).
    pub worker_ruleset_sha256: Option<String>,
    /// Block requests from the worker that were refused.
    pub refused_requests: u64,
}

/// Answer to [`ControlRequest::Reload`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct ReloadReport {
    /// SHA-256 (hex) of the DNS rule set now in force.
    pub dns_ruleset_sha256: String,
    /// Name rules now in the kernel.
    pub dns_kernel_rules: u32,
    /// Settings that changed but take effect only after a restart.
    pub restart_needed: Vec<String>,
}

/// Answer to [`ControlRequest::DnsTest`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct DnsTestReport {
    /// The name as normalized (absent when it is not a valid name).
    pub name: Option<String>,
    /// `blocked`, `blocked-after-first-query` (regex), `allowed`, `learned`
    /// (blocked by a learned rule), or `no-match`.
    pub verdict: String,
    /// The deciding rule, e.g. `block suffix tracker.example (/etc/l.txt:3)`.
    pub rule: Option<String>,
}

/// One line of [`ControlRequest::DnsBlockedHits`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct RuleHits {
    /// Rule id.
    pub id: u32,
    /// The rule, as in [`DnsTestReport::rule`].
    pub rule: String,
    /// Packets it decided (queries blocked or answers rewritten).
    pub hits: u64,
}

/// Why the daemon refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum ControlErrorKind {
    /// The caller's credentials do not allow this request.
    PermissionDenied,
    /// The request was well-formed but cannot be carried out.
    Failed,
}

/// Supervisor -> CLI.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ControlResponse {
    /// Answer to [`ControlRequest::Status`].
    Status(Box<StatusReport>),
    /// Answer to [`ControlRequest::Version`].
    Version(VersionInfo),
    /// Answer to [`ControlRequest::Restart`]: workers restarted.
    Restarted(Vec<WorkerKind>),
    /// Answer to [`ControlRequest::Reload`].
    Reloaded(ReloadReport),
    /// Answer to [`ControlRequest::DnsTest`].
    DnsTest(DnsTestReport),
    /// Answer to [`ControlRequest::DnsBlockedHits`], most hits first.
    DnsBlockedHits(Vec<RuleHits>),
    /// The request was refused.
    Error {
        /// Category, for the CLI's exit code.
        kind: ControlErrorKind,
        /// Human-readable reason.
        message: String,
    },
    /// Answer to [`ControlRequest::ReopenLogs`]: the workers now writing to
    /// freshly opened files.
    LogsReopened(Vec<WorkerKind>),
    /// Answer to [`ControlRequest::FlowsTop`] and [`ControlRequest::FlowsShow`].
    Flows(FlowList),
    /// Answer to [`ControlRequest::BlockAdd`]: the rule as now in force.
    BlockAdded(IpRuleInfo),
    /// Answer to [`ControlRequest::BlockRemove`]: the rule removed.
    BlockRemoved(IpRuleInfo),
    /// Answer to [`ControlRequest::BlockList`].
    BlockList(IpBlockList),
    /// Answer to [`ControlRequest::Devices`].
    Devices(DevicesChunk),
    /// Answer to [`ControlRequest::TlsRuleAdd`]: the rule as now in force.
    TlsRuleAdded(TlsRuleInfo),
    /// Answer to [`ControlRequest::TlsRuleRemove`]: the rule removed.
    TlsRuleRemoved(TlsRuleInfo),
    /// Answer to [`ControlRequest::TlsRuleList`].
    TlsRuleList(TlsRuleList),
    /// Answer to [`ControlRequest::Check`].
    Checked(DriftStatus),
    /// Answer to [`ControlRequest::Guard`].
    Guard(GuardReport),
    /// Answer to [`ControlRequest::LogLevel`]: the filter now in force.
    LogLevelSet(LogLevelChange),
    /// Answer to [`ControlRequest::Features`] and [`ControlRequest::FeatureSet`]: every
    /// switch as it is now.
    Features(Vec<FeatureState>),
    /// Answer to [`ControlRequest::TraceStart`], [`ControlRequest::TracePoll`] and
    /// [`ControlRequest::TraceStop`].
    Trace(Box<TraceReport>),
}

/// One difference between the kernel (or a worker) and what the daemon put there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct DriftFinding {
    /// What drifted: `link pal0/ingress`, `pin maps/pal_ip_config`, `map pal_ip4_policy`,
    /// `worker dns`, or (never touched) `foreign program 42 on pal0/ingress`.
    pub object: String,
    /// How it differs from the desired state.
    pub problem: String,
    /// What the daemon did: `reattached`, `re-pinned`, `rewritten`, `resynced`,
    /// `restarted`, `reported` (objects Palisade did not create), or why it could not.
    pub action: String,
    /// Whether the desired state holds again.
    pub repaired: bool,
}

/// Drift checks in [`StatusReport`] and the answer to [`ControlRequest::Check`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct DriftStatus {
    /// Seconds between periodic checks (0: periodic checks are off).
    pub interval_s: u32,
    /// Checks run since start.
    pub checks: u64,
    /// Unix time (s) of the latest check, 0 before the first.
    pub last_check_unix: u64,
    /// Findings since start (each counted once per check that saw it).
    pub found_total: u64,
    /// Of them, repaired.
    pub repaired_total: u64,
    /// What the latest check found (empty: the kernel is as the daemon says).
    pub findings: Vec<DriftFinding>,
}

/// What a TLS rule matches in a ClientHello (TCP or QUIC).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TlsRuleKind {
    /// The JA3 hash (32 lower-case hex digits).
    Ja3,
    /// The JA4 fingerprint.
    Ja4,
    /// The SNI, exactly (lower case, no trailing dot).
    Sni,
    /// The SNI is this name or ends with `.` and this name.
    SniSuffix,
    /// The SNI (lower case) matches this regular expression.
    SniRegex,
}

impl TlsRuleKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Ja3,
        Self::Ja4,
        Self::Sni,
        Self::SniSuffix,
        Self::SniRegex,
    ];

    /// The kind's name in rule files, the CLI and events.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ja3 => "ja3",
            Self::Ja4 => "ja4",
            Self::Sni => "sni",
            Self::SniSuffix => "sni-suffix",
            Self::SniRegex => "sni-regex",
        }
    }

    /// The kind of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A TLS rule as the operator states it (`palisade tls rules add|remove`, a rule file line).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsRuleSpec {
    /// What it matches.
    pub kind: TlsRuleKind,
    /// The value (hash, fingerprint, name, suffix or pattern).
    pub value: String,
    /// A match cuts the connection (else: an alert only).
    #[serde(default)]
    pub block: bool,
    /// Free text shown by `tls rules list` and in alerts.
    pub comment: Option<String>,
}

/// One TLS rule as the TLS worker applies it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct TlsRule {
    /// Rule id (in alerts and block requests).
    pub id: u32,
    /// What it matches.
    pub kind: TlsRuleKind,
    /// The value.
    pub value: String,
    /// A match asks the supervisor to cut the connection.
    pub block: bool,
}

/// The TLS worker's rule set ([`SupervisorToWorker::TlsPolicy`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode)]
pub struct TlsWorkerPolicy {
    /// SHA-256 of the rule set (the worker answers `RulesetApplied` with it).
    pub ruleset: [u8; 32],
    /// The rules, by id.
    pub rules: Vec<TlsRule>,
}

/// One TLS rule in [`TlsRuleList`] and the answers to rule requests.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct TlsRuleInfo {
    /// Rule id.
    pub id: u32,
    /// The rule.
    #[serde(flatten)]
    pub spec: TlsRuleSpec,
    /// `cli`, or `FILE:LINE`.
    pub source: String,
    /// Connections it cut since the daemon started.
    pub blocks: u64,
}

/// A connection in the kernel's flow-block map.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct FlowBlockInfo {
    /// The rule that cut it.
    pub rule_id: u32,
    /// `TCP` or `UDP`.
    pub proto: String,
    /// One endpoint, `ADDR:PORT` (`[ADDR]:PORT` for IPv6).
    pub a: String,
    /// The other endpoint.
    pub b: String,
    /// From the hello's packet to the block in the kernel, microseconds.
    pub latency_us: u64,
    /// Seconds until the block lapses.
    pub expires_in_secs: u64,
}

/// Answer to [`ControlRequest::TlsRuleList`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct TlsRuleList {
    /// The rules (list files first, then runtime rules), at most the limit.
    pub rules: Vec<TlsRuleInfo>,
    /// Rules in force in all.
    pub total_rules: u32,
    /// Connections cut now, at most the limit.
    pub blocks: Vec<FlowBlockInfo>,
    /// Connections cut now, in all.
    pub total_blocks: u32,
}
