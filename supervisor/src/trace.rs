//! Packet tracing (`palisade trace`, `POST /v1/trace`): the daemon's side of
//! `ebpf-programs/bpf/trace.bpf.h`.
//!
//! One trace at a time (the kernel has one filter). Starting writes the filter and a deadline
//! into `pal_trace_config`; every program run on a matching packet then writes an event to
//! `rb_trace`, which the event loop drains into a bounded buffer ([`BUFFER_MAX`] events, the
//! oldest dropped first and counted) on every turn. Clients poll the buffer by sequence number,
//! so several may follow one trace and a slow one loses only what it did not fetch in time.
//! The trace ends at its deadline (the kernel stops matching by itself too, so a trace never
//! outlives a daemon that died by more than its duration) or when stopped; its events stay
//! readable until the next trace starts.

use std::{
    collections::VecDeque,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use aya::maps::{MapData, PerCpuArray};
use palisade_abi::TraceEvent;
use palisade_ebpf::trace::{Filter, Reader};
use palisade_ipc::messages::{
    InterfaceStatus, TRACE_DURATION_MAX_S, TRACE_EVENTS_PER_POLL, TraceEventInfo, TraceFilter,
    TraceReport,
};

use crate::{
    ebpf::{
        loader::Loaded,
        maps::{KernelError, Maps},
    },
    flows::{boot_now_ns, wall_now_ns},
};

/// Events the daemon keeps for clients to fetch.
pub const BUFFER_MAX: usize = 10_000;
/// Events taken from the ring per event loop turn (the rest wait for the next turn).
const DRAIN_MAX: usize = 4_096;

/// The running or last trace.
#[derive(Debug, Default)]
pub struct Tracer {
    /// `rb_trace`, mapped at the first trace.
    reader: Option<Reader>,
    session: Option<Session>,
}

#[derive(Debug)]
struct Session {
    filter: TraceFilter,
    until: Instant,
    ended: Option<&'static str>,
    events: VecDeque<TraceEventInfo>,
    /// Sequence number of the newest event (the first is 1).
    last_seq: u64,
    buffer_lost: u64,
    /// `pal_trace_stats` ring-full count when the trace began.
    kernel_lost_base: u64,
    kernel_lost: u64,
}

/// Parses a request's filter into the kernel's.
pub fn parse_filter(f: &TraceFilter) -> Result<Filter, String> {
    if f.duration_s == 0 || f.duration_s > TRACE_DURATION_MAX_S {
        return Err(format!(
            "duration_s must be 1 to {TRACE_DURATION_MAX_S}, not {}",
            f.duration_s
        ));
    }
    let host = f
        .host
        .as_deref()
        .map(|h| {
            h.parse::<IpAddr>()
                .map_err(|_| format!("host {h:?} is not an IPv4 or IPv6 address"))
        })
        .transpose()?;
    let proto = f.proto.as_deref().map(parse_proto).transpose()?;
    if f.port == Some(0) {
        return Err("port must be 1 to 65535".into());
    }
    if f.port.is_some() && proto.is_some_and(|p| p != 6 && p != 17) {
        return Err("a port filter needs proto tcp or udp (or no proto)".into());
    }
    Ok(Filter {
        host,
        proto,
        port: f.port,
    })
}

/// `tcp`, `udp`, `icmp`, `icmpv6` or a protocol number 1-255.
fn parse_proto(p: &str) -> Result<u8, String> {
    match p.to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmpv6" | "ipv6-icmp" => Ok(58),
        n => n
            .parse::<u8>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("proto {p:?}: tcp, udp, icmp, icmpv6 or a number 1-255")),
    }
}

impl Tracer {
    /// Starts a trace; refused while one runs.
    pub fn start(
        &mut self,
        loaded: Option<&Loaded>,
        filter: TraceFilter,
    ) -> Result<TraceReport, String> {
        let kernel = parse_filter(&filter)?;
        if let Some(s) = &self.session
            && s.ended.is_none()
        {
            return Err(format!(
                "a trace is running ({} s left); stop it first (`palisade trace --stop`, DELETE /v1/trace)",
                s.until.saturating_duration_since(Instant::now()).as_secs()
            ));
        }
        let loaded = loaded.ok_or_else(|| KernelError::Unavailable.to_string())?;
        let config = loaded
            .fd(palisade_abi::MAP_TRACE_CONFIG)
            .map_err(|e| e.to_string())?;
        if self.reader.is_none() {
            let ring = loaded
                .fd(palisade_abi::MAP_RB_TRACE)
                .map_err(|e| e.to_string())?;
            self.reader = Some(Reader::open(ring).map_err(|e| format!("mapping rb_trace: {e}"))?);
        }
        // What an earlier trace (or a daemon that died during one) left in the ring.
        if let Some(reader) = &mut self.reader {
            while !reader.drain(DRAIN_MAX).0.is_empty() {}
        }
        let duration = Duration::from_secs(u64::from(filter.duration_s));
        let until_ns = boot_now_ns().saturating_add(duration.as_nanos() as u64);
        palisade_ebpf::trace::start(config, &kernel, until_ns)
            .map_err(|e| format!("writing pal_trace_config: {e}"))?;
        let base = kernel_lost(loaded);
        tracing::info!(filter = ?filter, "packet trace started");
        self.session = Some(Session {
            filter,
            until: Instant::now() + duration,
            ended: None,
            events: VecDeque::new(),
            last_seq: 0,
            buffer_lost: 0,
            kernel_lost_base: base,
            kernel_lost: 0,
        });
        Ok(self.report(0))
    }

    /// Stops the running trace; with none running, only reports (stopping is idempotent).
    /// The answer holds no events (`next` is the last one's sequence number): clients fetch
    /// what they have not seen with [`Tracer::poll`].
    pub fn stop(
        &mut self,
        loaded: Option<&Loaded>,
        names: &Names<'_>,
    ) -> Result<TraceReport, String> {
        if self.session.as_ref().is_some_and(|s| s.ended.is_none()) {
            self.end(loaded, names, "stopped")?;
        }
        Ok(self.report(u64::MAX))
    }

    /// The trace's events after `after` (an empty, inactive report before the first trace).
    pub fn poll(&self, after: u64) -> TraceReport {
        self.report(after)
    }

    /// Every event loop turn: takes the ring's events while a trace runs, ends it at its
    /// deadline. Returns whether it wrote `pal_trace_config` (the trace ended).
    pub fn tick(&mut self, loaded: Option<&Loaded>, names: &Names<'_>, now: Instant) -> bool {
        let Some(s) = &self.session else {
            return false;
        };
        if s.ended.is_some() {
            return false;
        }
        if now < s.until {
            self.collect(loaded, names);
            return false;
        }
        if let Err(e) = self.end(loaded, names, "duration") {
            tracing::warn!(error = %e, "ending the packet trace");
        }
        true
    }

    /// Ends the trace: the kernel stops matching, what it wrote is collected.
    fn end(
        &mut self,
        loaded: Option<&Loaded>,
        names: &Names<'_>,
        why: &'static str,
    ) -> Result<(), String> {
        let written = loaded
            .ok_or_else(|| KernelError::Unavailable.to_string())
            .and_then(|l| {
                l.fd(palisade_abi::MAP_TRACE_CONFIG)
                    .map_err(|e| e.to_string())
            })
            .and_then(|fd| {
                palisade_ebpf::trace::stop(fd).map_err(|e| format!("writing pal_trace_config: {e}"))
            });
        self.collect(loaded, names);
        if let Some(s) = &mut self.session {
            s.ended = Some(why);
            tracing::info!(
                reason = why,
                events = s.last_seq,
                kernel_lost = s.kernel_lost,
                buffer_lost = s.buffer_lost,
                "packet trace ended"
            );
        }
        written
    }

    fn collect(&mut self, loaded: Option<&Loaded>, names: &Names<'_>) {
        let (Some(reader), Some(s), Some(loaded)) = (&mut self.reader, &mut self.session, loaded)
        else {
            return;
        };
        let (events, malformed) = reader.drain(DRAIN_MAX);
        if malformed > 0 {
            tracing::warn!(
                malformed,
                "rb_trace held items that are not trace events (skipped)"
            );
        }
        if events.is_empty() {
            return;
        }
        let (boot_now, wall_now) = (boot_now_ns(), wall_now_ns());
        for ev in &events {
            s.last_seq += 1;
            s.events
                .push_back(describe(ev, s.last_seq, names, boot_now, wall_now));
        }
        while s.events.len() > BUFFER_MAX {
            s.events.pop_front();
            s.buffer_lost += 1;
        }
        s.kernel_lost = kernel_lost(loaded).saturating_sub(s.kernel_lost_base);
    }

    fn report(&self, after: u64) -> TraceReport {
        let Some(s) = &self.session else {
            return TraceReport::default();
        };
        let events: Vec<TraceEventInfo> = s
            .events
            .iter()
            .filter(|e| e.seq > after)
            .take(TRACE_EVENTS_PER_POLL as usize)
            .cloned()
            .collect();
        TraceReport {
            active: s.ended.is_none(),
            filter: s.filter.clone(),
            remaining_ms: if s.ended.is_none() {
                s.until
                    .saturating_duration_since(Instant::now())
                    .as_millis() as u64
            } else {
                0
            },
            ended: s.ended.map(str::to_owned),
            next: events.last().map_or(after.min(s.last_seq), |e| e.seq),
            events,
            kernel_lost: s.kernel_lost,
            buffer_lost: s.buffer_lost,
        }
    }
}

/// `pal_trace_stats`' ring-full count, summed over the CPUs (0 if unreadable).
fn kernel_lost(loaded: &Loaded) -> u64 {
    let Some(map) = loaded.ebpf.map(palisade_abi::MAP_TRACE_STATS) else {
        return 0;
    };
    PerCpuArray::<&MapData, u64>::try_from(map)
        .and_then(|a| a.get(&palisade_abi::TraceStat::Lost.index(), 0))
        .map_or(0, |v| v.iter().sum())
}

const RINGS: [(u32, &str); 4] = [
    (palisade_abi::RING_DNS, "dns"),
    (palisade_abi::RING_DHCP, "dhcp"),
    (palisade_abi::RING_TLS, "tls"),
    (palisade_abi::RING_FLOW, "flow"),
];

/// What names the numbers of an event: interfaces by ifindex, DNS rules by id.
#[derive(Debug)]
pub struct Names<'a> {
    /// The monitored interfaces.
    pub interfaces: &'a [InterfaceStatus],
    /// The DNS policy in force.
    pub dns: &'a crate::policy::dns_state::DnsState,
    /// The TLS rules in force.
    pub tls: &'a crate::policy::tls::TlsRules,
}

/// An event as the API shows it.
fn describe(
    ev: &TraceEvent,
    seq: u64,
    names: &Names<'_>,
    boot_now: u64,
    wall_now: u64,
) -> TraceEventInfo {
    let observer = ev.hook == palisade_abi::TRACE_HOOK_OBSERVER;
    let xdp = ev.hook == palisade_abi::TRACE_HOOK_XDP;
    let ip = |a: &[u8; 16]| -> IpAddr {
        if ev.ip_version == 4 {
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(*a))
        }
    };
    let by_rule = ev.decided_by == palisade_abi::TRACE_BY_IP_RULE;
    let by_dns = ev.decided_by == palisade_abi::TRACE_BY_DNS_POLICY;
    let by_tls = ev.decided_by == palisade_abi::TRACE_BY_TLS_CUT;
    let matched_src = ev.matched == palisade_abi::IP_MATCH_SRC;
    let rings = |bits: u8| {
        RINGS
            .iter()
            .filter(move |(r, _)| bits & (1 << r) != 0)
            .map(|(_, n)| *n)
    };
    let mut lost: Vec<String> = rings(ev.rings_full)
        .map(|n| format!("{n}: ring-full"))
        .collect();
    lost.extend(rings(ev.rings_off).map(|n| format!("{n}: capture-off")));
    TraceEventInfo {
        seq,
        timestamp: palisade_abi::time::eve_timestamp(
            wall_now.saturating_sub(boot_now.saturating_sub(ev.ts_boot_ns)),
        ),
        hook: match ev.hook {
            palisade_abi::TRACE_HOOK_XDP => "xdp",
            palisade_abi::TRACE_HOOK_TC_BLOCK => "tc-block",
            _ => "observer",
        }
        .into(),
        interface: names
            .interfaces
            .iter()
            .find(|i| i.ifindex == ev.ifindex)
            .map_or_else(|| format!("ifindex {}", ev.ifindex), |i| i.name.clone()),
        direction: if ev.direction == palisade_abi::DIR_EGRESS {
            "egress"
        } else {
            "ingress"
        }
        .into(),
        proto: match ev.l4_proto {
            6 => "TCP".into(),
            17 => "UDP".into(),
            1 => "ICMP".into(),
            58 => "IPv6-ICMP".into(),
            n => n.to_string(),
        },
        src_ip: ip(&ev.src_addr).to_string(),
        src_port: ev.src_port,
        dest_ip: ip(&ev.dst_addr).to_string(),
        dest_port: ev.dst_port,
        vlan: (ev.flags & palisade_abi::TRACE_F_VLAN != 0).then_some(ev.vlan_id),
        length: ev.pkt_len,
        verdict: if ev.flags & palisade_abi::TRACE_F_REWRITTEN != 0 {
            "rewrite"
        } else {
            verdict(xdp, ev.verdict)
        }
        .into(),
        decided_by: match ev.decided_by {
            palisade_abi::TRACE_BY_IP_RULE => Some("ip-policy"),
            palisade_abi::TRACE_BY_DNS_POLICY => Some("dns-policy"),
            palisade_abi::TRACE_BY_TLS_CUT => Some("tls-cut"),
            palisade_abi::TRACE_BY_DHCP_GUARD => Some("dhcp-guard"),
            _ => None,
        }
        .map(str::to_owned),
        rule_id: (by_rule || ((by_dns || by_tls) && ev.rule_id != 0)).then_some(ev.rule_id),
        rule: if by_rule {
            let addr = ip(if matched_src {
                &ev.src_addr
            } else {
                &ev.dst_addr
            });
            Some(rule_prefix(addr, ev.prefixlen))
        } else if by_dns {
            // Rule 0: the policy's own rule, a fragmented query is never let through.
            Some(names.dns.rule_text(ev.rule_id).unwrap_or_else(|| {
                if ev.rule_id == 0 {
                    "fragmented query".into()
                } else {
                    format!("rule {} (no longer loaded)", ev.rule_id)
                }
            }))
        } else if by_tls && ev.rule_id != 0 {
            Some(names.tls.get(ev.rule_id).map_or_else(
                || format!("rule {} (no longer loaded)", ev.rule_id),
                |r| format!("{} {} ({})", r.spec.kind.name(), r.spec.value, r.source),
            ))
        } else {
            None
        },
        matched: by_rule.then(|| if matched_src { "src" } else { "dest" }.into()),
        flow: observer.then(|| {
            if ev.flags & palisade_abi::TRACE_F_FLOW_FULL != 0 {
                "table-full"
            } else if ev.flow_start_ns != 0 {
                "tracked"
            } else {
                "none"
            }
            .into()
        }),
        records: rings(ev.rings_sent).map(str::to_owned).collect(),
        lost,
    }
}

/// A program's return value in words: XDP's `XDP_DROP` (1) / `XDP_PASS` (2), TC's
/// `TC_ACT_SHOT` (2) / `TC_ACT_REDIRECT` (7) / anything else (go on).
fn verdict(xdp: bool, ret: i32) -> &'static str {
    match (xdp, ret) {
        (true, 1) | (false, 2) => "drop",
        (false, 7) => "redirect",
        _ => "pass",
    }
}

/// The prefix of length `len` holding `addr`: the rule that matched it.
fn rule_prefix(addr: IpAddr, len: u8) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let len = len.min(32);
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            format!("{}/{len}", Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let len = len.min(128);
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            format!("{}/{len}", Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests: a panic is a test failure")]
mod tests {
    use super::*;

    fn filter(host: Option<&str>, proto: Option<&str>, port: Option<u16>, d: u32) -> TraceFilter {
        TraceFilter {
            host: host.map(str::to_owned),
            proto: proto.map(str::to_owned),
            port,
            duration_s: d,
        }
    }

    #[test]
    fn filters_are_checked() {
        let f = parse_filter(&filter(Some("10.0.0.1"), Some("UDP"), Some(53), 10)).unwrap();
        assert_eq!(f.host, Some("10.0.0.1".parse().unwrap()));
        assert_eq!((f.proto, f.port), (Some(17), Some(53)));
        assert_eq!(
            parse_filter(&filter(None, Some("icmpv6"), None, 1))
                .unwrap()
                .proto,
            Some(58)
        );
        assert_eq!(
            parse_filter(&filter(None, Some("47"), None, 1))
                .unwrap()
                .proto,
            Some(47)
        );
        for bad in [
            filter(Some("example.org"), None, None, 10),
            filter(None, Some("sctp"), None, 10),
            filter(None, Some("0"), None, 10),
            filter(None, Some("icmp"), Some(80), 10),
            filter(None, None, Some(0), 10),
            filter(None, None, None, 0),
            filter(None, None, None, TRACE_DURATION_MAX_S + 1),
        ] {
            assert!(parse_filter(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rule_prefixes_and_verdicts() {
        assert_eq!(
            rule_prefix("10.9.200.7".parse().unwrap(), 16),
            "10.9.0.0/16"
        );
        assert_eq!(rule_prefix("10.9.200.7".parse().unwrap(), 0), "0.0.0.0/0");
        assert_eq!(
            rule_prefix("10.9.200.7".parse().unwrap(), 32),
            "10.9.200.7/32"
        );
        assert_eq!(
            rule_prefix("2001:db8::1".parse().unwrap(), 32),
            "2001:db8::/32"
        );
        assert_eq!(verdict(true, 1), "drop");
        assert_eq!(verdict(true, 2), "pass");
        assert_eq!(verdict(false, 2), "drop");
        assert_eq!(verdict(false, -1), "pass");
        assert_eq!(verdict(false, 7), "redirect");
    }
}
