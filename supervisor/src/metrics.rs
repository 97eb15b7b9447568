//! Prometheus text exposition of the daemon's status: every metric name,
//! type and label lives here; the `prometheus` crate encodes it (labels sorted by
//! name). `palisade metrics` prints it, for node exporter's textfile collector;
//! `GET /metrics` on the control socket serves it. Names pass `promtool check metrics`
//! (tests/tests/api.rs runs it on the live endpoint).

use palisade_ipc::messages::{StatusReport, WorkerState};
use prometheus::{Gauge, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder, core::Collector};

/// The families of one exposition, registered as they are made. Each rendering builds a
/// fresh registry from one status report: counters are set to the daemon's totals
/// (`inc_by` from zero), so the exposition is a snapshot, like the status it renders.
struct Families {
    registry: Registry,
}

impl Families {
    fn add<C: Collector + Clone + 'static>(&self, c: C) -> C {
        // Names and labels are constants of this file: a registration error is a bug here,
        // reported (the family is left out) rather than taking the daemon down.
        if let Err(e) = self.registry.register(Box::new(c.clone())) {
            tracing::warn!(error = %e, "metrics: a family could not be registered");
        }
        c
    }

    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> Option<IntCounterVec> {
        IntCounterVec::new(Opts::new(name, help), labels)
            .map(|c| self.add(c))
            .inspect_err(|e| tracing::warn!(error = %e, name, "metrics: bad family"))
            .ok()
    }

    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> Option<IntGaugeVec> {
        IntGaugeVec::new(Opts::new(name, help), labels)
            .map(|g| self.add(g))
            .inspect_err(|e| tracing::warn!(error = %e, name, "metrics: bad family"))
            .ok()
    }
}

/// A gauge value from a count (saturating: gauges are signed).
fn level(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn state(s: WorkerState) -> &'static str {
    match s {
        WorkerState::Starting => "starting",
        WorkerState::Running => "running",
        WorkerState::Backoff => "backoff",
        WorkerState::Failed => "failed",
        WorkerState::Stopping => "stopping",
    }
}

/// Media type of the exposition (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the status as Prometheus text format (through the `prometheus` crate's
/// encoder, so names, escaping and ordering follow the format).
pub fn render(r: &StatusReport) -> String {
    let f = Families {
        registry: Registry::new(),
    };
    if let Some(up) = f.gauges(
        "palisade_up",
        "1 while the daemon answers; with its versions.",
        &["version", "protocol", "abi"],
    ) {
        up.with_label_values(&[
            r.version.version.as_str(),
            &r.version.protocol.to_string(),
            &r.version.abi.to_string(),
        ])
        .set(1);
    }
    if let Ok(g) = Gauge::with_opts(Opts::new(
        "palisade_uptime_seconds",
        "Seconds since the daemon started.",
    )) {
        f.add(g).set(r.uptime_ms as f64 / 1000.0);
    }
    if let Some(up) = f.gauges(
        "palisade_worker_up",
        "1 when the worker is running, by state.",
        &["worker", "state"],
    ) {
        for w in &r.workers {
            up.with_label_values(&[w.kind.name(), state(w.state)])
                .set(i64::from(w.state == WorkerState::Running));
        }
    }
    for (name, help, get) in [
        (
            "palisade_worker_restarts_total",
            "Worker restarts.",
            (|w| u64::from(w.restarts)) as fn(&palisade_ipc::messages::WorkerStatus) -> u64,
        ),
        (
            "palisade_worker_violations_total",
            "IPC protocol violations (each killed the worker).",
            |w| u64::from(w.violations),
        ),
        (
            "palisade_worker_records_total",
            "Ring-buffer records consumed.",
            |w| w.stats.records,
        ),
        ("palisade_worker_events_total", "Events written.", |w| {
            w.stats.events
        }),
        (
            "palisade_worker_event_bytes_total",
            "Bytes of events written.",
            |w| w.stats.bytes,
        ),
    ] {
        if let Some(c) = f.counters(name, help, &["worker"]) {
            for w in &r.workers {
                c.with_label_values(&[w.kind.name()]).inc_by(get(w));
            }
        }
    }
    for (name, help, list) in [
        (
            "palisade_worker_drops_total",
            "Records or events lost by a worker, by reason.",
            (|w| &w.stats.drops)
                as fn(
                    &palisade_ipc::messages::WorkerStatus,
                ) -> &Vec<palisade_ipc::messages::DropCount>,
        ),
        (
            "palisade_worker_notices_total",
            "Events written without something they could have had (no event lost), by reason.",
            |w| &w.stats.notices,
        ),
    ] {
        if let Some(c) = f.counters(name, help, &["worker", "reason"]) {
            for w in &r.workers {
                for d in list(w) {
                    c.with_label_values(&[w.kind.name(), d.reason.as_str()])
                        .inc_by(d.count);
                }
            }
        }
    }
    if let Some(g) = f.gauges(
        "palisade_worker_level",
        "Levels a worker reports (e.g. dhcp_open_transactions, dhcp_devices), by name.",
        &["worker", "name"],
    ) {
        for w in &r.workers {
            for d in &w.stats.gauges {
                g.with_label_values(&[w.kind.name(), d.reason.as_str()])
                    .set(level(d.count));
            }
        }
    }
    if let Some(c) = f.counters(
        "palisade_kernel_events_total",
        "eBPF per-CPU counters summed, by group and counter.",
        &["group", "counter"],
    ) {
        for k in &r.kernel {
            c.with_label_values(&[k.group.as_str(), k.counter.as_str()])
                .inc_by(k.value);
        }
    }
    if let Some(g) = f.gauges(
        "palisade_interface_attached",
        "1 per program attached to an interface hook.",
        &["interface", "direction", "mode", "program"],
    ) {
        for i in &r.interfaces {
            for a in &i.attachments {
                g.with_label_values(&[
                    i.name.as_str(),
                    a.direction.as_str(),
                    a.mode.as_str(),
                    a.program.as_str(),
                ])
                .set(1);
            }
        }
    }
    if let Some(g) = f.gauges(
        "palisade_interface_state",
        "1 for each interface's state: attached, waiting (configured, not there yet), error, gone (deleted or renamed away).",
        &["interface", "state"],
    ) {
        for i in &r.interfaces {
            g.with_label_values(&[i.name.as_str(), i.state.as_str()]).set(1);
        }
    }
    if let Some(g) = f.gauges(
        "palisade_interface_state_since_seconds",
        "Unix time the interface entered its state.",
        &["interface", "state"],
    ) {
        for i in &r.interfaces {
            g.with_label_values(&[i.name.as_str(), i.state.as_str()])
                .set(level(i.since));
        }
    }
    let n = &r.network;
    for (name, help, value) in [
        (
            "palisade_netlink_link_events_total",
            "rtnetlink link messages read.",
            n.link_events,
        ),
        (
            "palisade_netlink_resyncs_total",
            "Full re-reads of every link (start, lost events).",
            n.resyncs,
        ),
        (
            "palisade_interfaces_attached_total",
            "Interfaces attached after start (appeared, came back, renamed into the selection).",
            n.attached,
        ),
        (
            "palisade_interfaces_released_total",
            "Interfaces whose links were released (deleted, renamed away).",
            n.released,
        ),
        (
            "palisade_interface_renames_total",
            "Interface renames followed (links pinned again under the new name).",
            n.renamed,
        ),
    ] {
        if let Some(c) = f.counters(name, help, &[]) {
            c.with_label_values::<&str>(&[]).inc_by(value);
        }
    }
    let d = &r.dns;
    for (name, help, value) in [
        (
            "palisade_dns_kernel_rules",
            "DNS name rules in the kernel map.",
            u64::from(d.kernel_rules),
        ),
        (
            "palisade_dns_regex_rules",
            "DNS regex rules given to the worker.",
            u64::from(d.regex_rules),
        ),
        (
            "palisade_dns_learned",
            "Names blocked by learned (regex/CNAME) rules.",
            u64::from(d.learned),
        ),
        (
            "palisade_dns_refused_requests_total",
            "Worker block requests the supervisor refused.",
            d.refused_requests,
        ),
        (
            "palisade_flows_live",
            "Flows in the kernel flow table (latest sweep).",
            r.flows.live,
        ),
        (
            "palisade_flows_evicted_total",
            "Flows ended early, with their end event, to make room in a nearly full table.",
            r.flows.evicted,
        ),
        (
            "palisade_flow_sweeps_total",
            "Walks of the kernel flow sweeper.",
            r.flows.sweeps,
        ),
        (
            "palisade_drift_checks_total",
            "Drift checks run (kernel links, pins, policy maps, worker rule sets).",
            r.drift.checks,
        ),
        (
            "palisade_drift_found_total",
            "Differences drift checks found between the kernel (or a worker) and the daemon.",
            r.drift.found_total,
        ),
        (
            "palisade_drift_repaired_total",
            "Differences drift checks repaired.",
            r.drift.repaired_total,
        ),
        (
            "palisade_drift_findings",
            "Differences the latest drift check found.",
            r.drift.findings.len() as u64,
        ),
    ] {
        if name.ends_with("_total") {
            if let Some(c) = f.counters(name, help, &[]) {
                c.with_label_values::<&str>(&[]).inc_by(value);
            }
        } else if let Some(g) = f.gauges(name, help, &[]) {
            g.with_label_values::<&str>(&[]).set(level(value));
        }
    }
    let drift = d
        .worker_ruleset_sha256
        .as_ref()
        .is_some_and(|w| *w != d.ruleset_sha256);
    if let Some(g) = f.gauges(
        "palisade_dns_ruleset_drift",
        "1 when the DNS worker applies another rule set than the supervisor's.",
        &["ruleset"],
    ) {
        g.with_label_values(&[d.ruleset_sha256.as_str()])
            .set(i64::from(drift));
    }
    if let Some(g) = f.gauges(
        "palisade_feature_enabled",
        "1 while a runtime feature switch is on (palisade feature).",
        &["feature"],
    ) {
        for s in &r.features {
            g.with_label_values(&[s.name.as_str()])
                .set(i64::from(s.enabled));
        }
    }
    let c = &r.capture;
    if let Some(g) = f.gauges(
        "palisade_capture_mode",
        "1 for the capture in use: ebpf, or af_packet (no eBPF, no enforcement).",
        &["mode"],
    ) {
        g.with_label_values(&[c.mode.as_str()]).set(1);
    }
    if let Some(g) = f.gauges(
        "palisade_enforcement_available",
        "1 when the enforcement feature works (state active), 0 when unavailable.",
        &["feature", "state"],
    ) {
        for e in &c.enforcement {
            g.with_label_values(&[e.feature.as_str(), e.state.as_str()])
                .set(i64::from(e.state == "active"));
        }
    }
    if !c.sockets.is_empty() {
        for (name, help, value) in [
            (
                "palisade_af_packet_frames_total",
                "Frames that passed a worker's AF_PACKET filter (PACKET_STATISTICS).",
                (|s: &palisade_ipc::messages::PacketSocketStatus| s.packets)
                    as fn(&palisade_ipc::messages::PacketSocketStatus) -> u64,
            ),
            (
                "palisade_af_packet_drops_total",
                "Frames the kernel dropped because a worker's AF_PACKET socket buffer was full.",
                |s: &palisade_ipc::messages::PacketSocketStatus| s.drops,
            ),
        ] {
            if let Some(ctr) = f.counters(name, help, &["worker"]) {
                for sock in &c.sockets {
                    ctr.with_label_values(&[sock.worker.name()])
                        .inc_by(value(sock));
                }
            }
        }
    }
    TextEncoder::new()
        .encode_to_string(&f.registry.gather())
        .unwrap_or_else(|e| format!("# palisade: encoding the metrics failed: {e}\n"))
}
