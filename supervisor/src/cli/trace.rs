//! `palisade trace`.

use std::{
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use palisade_ipc::messages::{
    ControlRequest, ControlResponse, TRACE_DURATION_DEFAULT_S, TRACE_DURATION_MAX_S,
    TraceEventInfo, TraceFilter, TraceReport,
};
use serde::Serialize;

use super::{ControlArgs, Failure};

/// How often the trace's events are fetched.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Trace packets through Palisade's programs (root only).
///
/// For every packet that matches (all the filters given: --host at either end, --proto,
/// --port at either end), prints each program it went through: the hook (`xdp` and
/// `tc-block`: the IP policy; `observer`: capture, flows, DNS policy, TLS cuts, DHCP guard),
/// interface, direction, the verdict (pass, drop, redirect, rewrite), what decided it
/// (`ip-policy` with the rule's id and prefix, `dns-policy` with the rule's id and line,
/// `tls-cut`, `dhcp-guard`) and, for the
/// observer, which workers' rings got a record of the packet and which records were lost
/// (ring full) or not made (capture switched off). A packet the XDP program drops never
/// reaches the others, so its path ends there.
///
/// The trace ends after --duration (default 30 s, at most 1 h), on Ctrl-C, or with `palisade
/// trace --stop` from another shell; one trace runs at a time. While none runs the programs
/// pay one map lookup per packet for it; while one runs, only matching packets cost more
/// (docs/PERFORMANCE.md). Events the kernel could not queue and events not fetched in time
/// are counted and reported at the end. Packets that are not IP (ARP) and IP packets whose
/// headers are cut short are not traced. API: `POST`, `GET` (`?after=SEQ`) and `DELETE
/// /v1/trace`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only packets with this IPv4 or IPv6 address at either end.
    #[arg(long, value_name = "ADDR")]
    host: Option<std::net::IpAddr>,
    /// Only packets with this TCP or UDP port at either end.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,
    /// Only this protocol: tcp, udp, icmp, icmpv6, or a protocol number.
    #[arg(long, value_name = "PROTO")]
    proto: Option<String>,
    /// How long to trace: 90, 90s, 5m, 1h.
    #[arg(long, value_name = "D", value_parser = super::parse_duration)]
    duration: Option<Duration>,
    /// Stop the running trace (started from another shell or by the API) and exit.
    #[arg(long, conflicts_with_all = ["host", "port", "proto", "duration"])]
    stop: bool,
    #[command(flatten)]
    control: ControlArgs,
    /// Print one JSON object per line: each event ({"seq", "timestamp", "hook",
    /// "interface", "direction", "proto", "src_ip", "src_port", "dest_ip", "dest_port",
    /// "length", "verdict", "decided_by", "rule_id", "rule", "matched", "flow", "records",
    /// "lost"}), then {"trace_end": {"ended", "events", "kernel_lost", "buffer_lost"}}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct End<'a> {
    trace_end: EndInfo<'a>,
}

#[derive(Serialize)]
struct EndInfo<'a> {
    ended: &'a str,
    events: u64,
    kernel_lost: u64,
    buffer_lost: u64,
}

pub fn main(args: Args) -> ExitCode {
    let json = args.json;
    if args.stop {
        return match super::ask(&args.control, json, &ControlRequest::TraceStop) {
            Ok(ControlResponse::Trace(r)) => {
                end(&r, r.next, json);
                ExitCode::SUCCESS
            }
            Ok(other) => super::unexpected(json, &other),
            Err(code) => code,
        };
    }
    let duration_s = match args.duration {
        None => TRACE_DURATION_DEFAULT_S,
        Some(d) if d.as_secs() <= u64::from(TRACE_DURATION_MAX_S) => d.as_secs() as u32,
        Some(_) => {
            return Failure::failed(format!("--duration: at most {TRACE_DURATION_MAX_S} s"))
                .report(json);
        }
    };
    let filter = TraceFilter {
        host: args.host.map(|h| h.to_string()),
        proto: args.proto,
        port: args.port,
        duration_s,
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&interrupted)) {
            return Failure::failed(format!("installing a signal handler: {e}")).report(json);
        }
    }
    let mut report = match super::ask(&args.control, json, &ControlRequest::TraceStart(filter)) {
        Ok(ControlResponse::Trace(r)) => r,
        Ok(other) => return super::unexpected(json, &other),
        Err(code) => return code,
    };
    if !json {
        eprintln!(
            "tracing {} for {duration_s} s (Ctrl-C stops)",
            describe_filter(&report.filter)
        );
    }
    let mut seen = 0u64;
    let mut stop_sent = false;
    loop {
        for ev in &report.events {
            print_event(ev, json);
        }
        seen += report.events.len() as u64;
        let after = report.next;
        let more = report.events.len() as u32 >= palisade_ipc::messages::TRACE_EVENTS_PER_POLL;
        if !report.active && !more {
            end(&report, seen, json);
            return ExitCode::SUCCESS;
        }
        if !more {
            std::thread::sleep(POLL_EVERY);
        }
        if interrupted.load(Ordering::Relaxed) && report.active && !stop_sent {
            // Its answer carries no events: the rest are fetched below, as before.
            stop_sent = true;
            match super::ask(&args.control, json, &ControlRequest::TraceStop) {
                Ok(ControlResponse::Trace(_)) => {}
                Ok(other) => return super::unexpected(json, &other),
                Err(code) => return code,
            }
        }
        report = match super::ask(&args.control, json, &ControlRequest::TracePoll { after }) {
            Ok(ControlResponse::Trace(r)) => r,
            Ok(other) => return super::unexpected(json, &other),
            Err(code) => return code,
        };
    }
}

/// The filter in words.
fn describe_filter(f: &TraceFilter) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &f.proto {
        parts.push(p.clone());
    }
    if let Some(h) = &f.host {
        parts.push(format!("host {h}"));
    }
    if let Some(p) = f.port {
        parts.push(format!("port {p}"));
    }
    if parts.is_empty() {
        "every IP packet".into()
    } else {
        parts.join(" and ")
    }
}

fn print_event(ev: &TraceEventInfo, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(ev) {
            println!("{line}");
        }
        return;
    }
    let addr = |ip: &str, port: u16| {
        let ip = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_owned()
        };
        if port == 0 {
            ip
        } else {
            format!("{ip}:{port}")
        }
    };
    let mut line = format!(
        "{} {} {} {:<8} {} {} -> {} len {}{}: {}",
        ev.timestamp,
        ev.interface,
        ev.direction,
        ev.hook,
        ev.proto,
        addr(&ev.src_ip, ev.src_port),
        addr(&ev.dest_ip, ev.dest_port),
        ev.length,
        ev.vlan.map_or(String::new(), |v| format!(" vlan {v}")),
        ev.verdict,
    );
    if let Some(by) = &ev.decided_by {
        line.push_str(&format!(" by {by}"));
    }
    match (ev.rule_id, &ev.rule, &ev.matched) {
        (Some(id), Some(rule), Some(matched)) => {
            line.push_str(&format!(" rule {id} {rule} ({matched})"));
        }
        (Some(id), Some(rule), None) => line.push_str(&format!(" rule {id}: {rule}")),
        (None, Some(rule), _) => line.push_str(&format!(" ({rule})")),
        _ => {}
    }
    if let Some(flow) = &ev.flow {
        line.push_str(&format!("; flow {flow}"));
    }
    if ev.hook == "observer" {
        if ev.records.is_empty() {
            line.push_str("; no record");
        } else {
            line.push_str(&format!("; records {}", ev.records.join(", ")));
        }
    }
    if !ev.lost.is_empty() {
        line.push_str(&format!("; lost {}", ev.lost.join(", ")));
    }
    println!("{line}");
}

fn end(r: &TraceReport, events: u64, json: bool) {
    let ended = r.ended.as_deref().unwrap_or("stopped");
    if json {
        if let Ok(line) = serde_json::to_string(&End {
            trace_end: EndInfo {
                ended,
                events,
                kernel_lost: r.kernel_lost,
                buffer_lost: r.buffer_lost,
            },
        }) {
            println!("{line}");
        }
    } else {
        eprintln!(
            "trace ended ({ended}): {events} events, {} lost in the kernel (ring full), {} not fetched in time",
            r.kernel_lost, r.buffer_lost
        );
    }
}
