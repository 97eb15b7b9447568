//! `palisade status`.

use std::{fmt::Write as _, process::ExitCode};

use palisade_ipc::messages::{ControlRequest, ControlResponse, StatusReport, WorkerState};

use super::ControlArgs;

/// Show the daemon's workers, interfaces and kernel counters.
///
/// Per worker: state, pid, uid, uptime, restarts, events, drops by reason,
/// last heartbeat. Per interface: attached programs and mode (the IP
/// policy's hook shows the mode in use: xdp-native, xdp-generic or tcx).
/// IP policy counters (drops, alerts, suppressed alerts). Kernel drop
/// counters per ring. Exit status 0 when every worker runs, 1 otherwise.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    control: ControlArgs,
    /// Print the daemon's status report as JSON (the same data, every counter).
    #[arg(long)]
    json: bool,
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, (s / 60) % 60),
        _ => format!("{}d{}h", s / 86400, (s / 3600) % 24),
    }
}

fn state_name(s: WorkerState) -> &'static str {
    match s {
        WorkerState::Starting => "starting",
        WorkerState::Running => "running",
        WorkerState::Backoff => "backoff",
        WorkerState::Failed => "FAILED",
        WorkerState::Stopping => "stopping",
    }
}

/// Renders the report as text.
pub fn render(r: &StatusReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "palisade {} (protocol {}, abi {}) pid {} up {}  pins {}",
        r.version.version,
        r.version.protocol,
        r.version.abi,
        r.pid,
        duration(r.uptime_ms),
        r.pin_dir
    );
    let c = &r.capture;
    let _ = writeln!(o, "capture: {}", c.mode);
    if let Some(why) = &c.fallback_reason {
        let _ = writeln!(o, "  fell back to AF_PACKET (capture = \"auto\"): {why}");
    }
    let enforcement: Vec<String> = c
        .enforcement
        .iter()
        .map(|e| format!("{}={}", e.feature, e.state))
        .collect();
    let _ = writeln!(o, "enforcement: {}", enforcement.join(" "));
    for s in &c.sockets {
        let _ = writeln!(
            o,
            "  af_packet {}: frames {} dropped {}",
            s.worker.name(),
            s.packets,
            s.drops
        );
    }
    let _ = writeln!(
        o,
        "\nWORKER  STATE     PID      UID    UPTIME   RESTARTS  EVENTS      DROPS     HEARTBEAT"
    );
    for w in &r.workers {
        let drops: u64 = w.stats.drops.iter().map(|d| d.count).sum();
        let _ = writeln!(
            o,
            "{:<7} {:<9} {:<8} {:<6} {:<8} {:<9} {:<11} {:<9} {}",
            w.kind.name(),
            state_name(w.state),
            w.pid.map_or("-".into(), |p| p.to_string()),
            w.uid,
            w.uptime_ms.map_or("-".into(), duration),
            w.restarts,
            w.stats.events,
            drops,
            w.last_heartbeat_ms_ago
                .map_or("-".into(), |ms| format!("{ms}ms ago")),
        );
    }
    for w in &r.workers {
        if !w.stats.drops.is_empty() {
            let reasons: Vec<String> = w
                .stats
                .drops
                .iter()
                .map(|d| format!("{}={}", d.reason, d.count))
                .collect();
            let _ = writeln!(o, "  {} drops: {}", w.kind.name(), reasons.join(" "));
        }
        if !w.stats.notices.is_empty() {
            let reasons: Vec<String> = w
                .stats
                .notices
                .iter()
                .map(|d| format!("{}={}", d.reason, d.count))
                .collect();
            let _ = writeln!(
                o,
                "  {} notices (nothing lost): {}",
                w.kind.name(),
                reasons.join(" ")
            );
        }
        if !w.stats.gauges.is_empty() {
            let levels: Vec<String> = w
                .stats
                .gauges
                .iter()
                .map(|d| format!("{}={}", d.reason, d.count))
                .collect();
            let _ = writeln!(o, "  {} now: {}", w.kind.name(), levels.join(" "));
        }
        if w.violations > 0 {
            let _ = writeln!(
                o,
                "  {} protocol violations: {}",
                w.kind.name(),
                w.violations
            );
        }
        if let Some(exit) = &w.last_exit {
            let _ = writeln!(o, "  {} last exit: {exit}", w.kind.name());
        }
    }
    let _ = writeln!(o, "\nINTERFACE        STATE     SINCE");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for i in &r.interfaces {
        let name = if i.ifindex == 0 {
            i.name.clone()
        } else {
            format!("{} ({})", i.name, i.ifindex)
        };
        let _ = writeln!(
            o,
            "{name:<16} {:<9} {} ({} ago)",
            i.state,
            i.since,
            ago(now.saturating_sub(i.since))
        );
    }
    let n = &r.network;
    let _ = writeln!(
        o,
        "  link events {}, re-reads {}, attached since start {}, released {}, renames followed {}",
        n.link_events, n.resyncs, n.attached, n.released, n.renamed
    );
    let _ = writeln!(
        o,
        "\nINTERFACE        HOOK     PROGRAM              PROG ID  LINK ID  MODE"
    );
    for i in &r.interfaces {
        for a in &i.attachments {
            let _ = writeln!(
                o,
                "{:<16} {:<8} {:<20} {:<8} {:<8} {}{}",
                format!("{} ({})", i.name, i.ifindex),
                a.direction,
                a.program,
                a.program_id,
                a.link_id,
                a.mode,
                if a.adopted { " (adopted)" } else { "" }
            );
        }
        if let Some(e) = &i.error {
            let _ = writeln!(o, "{:<16} ERROR: {e}", i.name);
        }
    }
    let off: Vec<&str> = r
        .features
        .iter()
        .filter(|f| !f.enabled)
        .map(|f| f.name.as_str())
        .collect();
    if !off.is_empty() {
        let _ = writeln!(
            o,
            "\nSWITCHED OFF  {} (palisade feature enable NAME)",
            off.join(", ")
        );
    }
    let d = &r.dns;
    let _ = writeln!(
        o,
        "\nDNS POLICY  {} name rules in the kernel, {} regex rules, {} learned, action {}, rule set {}",
        d.kernel_rules,
        d.regex_rules,
        d.learned,
        d.block_action,
        d.ruleset_sha256.get(..16).unwrap_or_default()
    );
    match &d.worker_ruleset_sha256 {
        Some(w) if *w != d.ruleset_sha256 => {
            let _ = writeln!(
                o,
                "  DRIFT: the dns worker applies rule set {}",
                w.get(..16).unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(o, "  the dns worker has not confirmed the rule set yet");
        }
        Some(_) => {}
    }
    if d.refused_requests > 0 {
        let _ = writeln!(
            o,
            "  refused block requests from the dns worker: {}",
            d.refused_requests
        );
    }
    let policy: Vec<String> = r
        .kernel
        .iter()
        .filter(|k| k.group == "dns_policy" && k.value > 0)
        .map(|k| format!("{}={}", k.counter, k.value))
        .collect();
    if !policy.is_empty() {
        let _ = writeln!(o, "  kernel: {}", policy.join(" "));
    }
    let f = &r.flows;
    let _ = writeln!(
        o,
        "\nFLOW TABLE  {} of {} live, {} evicted early (with their end event), timeouts {}s (tcp {}s), updates {}",
        f.live,
        f.capacity,
        f.evicted,
        f.idle_timeout_s,
        f.tcp_idle_timeout_s,
        if f.update_interval_s == 0 {
            "off".to_owned()
        } else {
            format!("every {}s", f.update_interval_s)
        }
    );
    match f.last_sweep_ms_ago {
        Some(ago) => {
            let _ = writeln!(
                o,
                "  kernel sweeper: {} walks, last {} ms ago, {} us per walk",
                f.sweeps, ago, f.sweep_walk_us
            );
        }
        None => {
            let _ = writeln!(o, "  kernel sweeper: NOT RUNNING (no walk yet)");
        }
    }
    let _ = writeln!(o, "  conntrack: {}", f.conntrack);
    let flow_counters: Vec<String> = r
        .kernel
        .iter()
        .filter(|k| k.group == "flow_table")
        .map(|k| format!("{}={}", k.counter, k.value))
        .collect();
    let _ = writeln!(o, "  kernel: {}", flow_counters.join(" "));
    // IP policy: every counter of its kernel group (hooks and modes are in the table above;
    // rules: `palisade block list`).
    let ip: Vec<String> = r
        .kernel
        .iter()
        .filter(|k| k.group == palisade_abi::IP_POLICY_GROUP)
        .map(|k| format!("{}={}", k.counter, k.value))
        .collect();
    let _ = writeln!(o, "\nIP POLICY  kernel: {}", ip.join(" "));
    // DHCP guard: its kernel counters (the allow-list and mode are in the configuration;
    // per-sender counts in the pinned map pal_guard_sources).
    let guard: Vec<String> = r
        .kernel
        .iter()
        .filter(|k| k.group == palisade_abi::DHCP_GUARD_GROUP)
        .map(|k| format!("{}={}", k.counter, k.value))
        .collect();
    let _ = writeln!(o, "DHCP GUARD kernel: {}", guard.join(" "));
    let dr = &r.drift;
    let period = if dr.interval_s == 0 {
        "periodic check off".to_owned()
    } else {
        format!("every {} s", dr.interval_s)
    };
    let _ = writeln!(
        o,
        "\nDRIFT  {period}, {} checks, {} found, {} repaired; latest: {}",
        dr.checks,
        dr.found_total,
        dr.repaired_total,
        if dr.findings.is_empty() {
            "clean".to_owned()
        } else {
            format!(
                "{} finding(s), `palisade check` lists them",
                dr.findings.len()
            )
        }
    );
    let _ = writeln!(
        o,
        "\nKERNEL   RECORDS      RING_FULL  TRUNCATED  NOT_PARSED  MAP_FULL"
    );
    for group in ["dns", "dhcp", "tls", "flow", "global"] {
        let get = |c: &str| {
            r.kernel
                .iter()
                .find(|k| k.group == group && k.counter == c)
                .map_or(0, |k| k.value)
        };
        let _ = writeln!(
            o,
            "{:<8} {:<12} {:<10} {:<10} {:<11} {}",
            if group == "global" { "packets" } else { group },
            get("records"),
            get("ring_full"),
            get("truncated"),
            get("not_parsed"),
            get("map_full")
        );
    }
    o
}

pub fn main(args: Args) -> ExitCode {
    match super::ask(&args.control, args.json, &ControlRequest::Status) {
        Ok(ControlResponse::Status(report)) => {
            let all_running = report
                .workers
                .iter()
                .all(|w| w.state == WorkerState::Running);
            let code = if args.json {
                super::print_json(&report)
            } else {
                print!("{}", render(&report));
                ExitCode::SUCCESS
            };
            if code == ExitCode::SUCCESS && !all_running {
                ExitCode::FAILURE
            } else {
                code
            }
        }
        Ok(other) => super::unexpected(args.json, &other),
        Err(code) => code,
    }
}

/// `90s`, `5m`, `3h`, `2d`.
fn ago(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        7200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}
