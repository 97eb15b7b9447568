//! Prometheus text exposition of the daemon's status: every metric name,
//! type and label lives here. `palisade metrics` prints it, for node
//! exporter's textfile collector or any scraper wrapper.

use std::fmt::Write as _;

use palisade_ipc::messages::{StatusReport, WorkerState};

/// One metric family being written.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Self { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "{name}");
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.out, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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

/// Renders the status as Prometheus text format.
pub fn render(r: &StatusReport) -> String {
    let mut o = String::new();
    let mut f = Family::new(
        &mut o,
        "palisade_up",
        "gauge",
        "1 while the daemon answers; with its versions.",
    );
    f.sample(
        "palisade_up",
        &[
            ("version", &r.version.version),
            ("protocol", &r.version.protocol.to_string()),
            ("abi", &r.version.abi.to_string()),
        ],
        1,
    );
    let mut f = Family::new(
        &mut o,
        "palisade_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    f.sample("palisade_uptime_seconds", &[], r.uptime_ms as f64 / 1000.0);

    let mut f = Family::new(
        &mut o,
        "palisade_worker_up",
        "gauge",
        "1 when the worker is running, by state.",
    );
    for w in &r.workers {
        f.sample(
            "palisade_worker_up",
            &[("worker", w.kind.name()), ("state", state(w.state))],
            u8::from(w.state == WorkerState::Running),
        );
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
        let mut f = Family::new(&mut o, name, "counter", help);
        for w in &r.workers {
            f.sample(name, &[("worker", w.kind.name())], get(w));
        }
    }
    let mut f = Family::new(
        &mut o,
        "palisade_worker_drops_total",
        "counter",
        "Records or events lost by a worker, by reason.",
    );
    for w in &r.workers {
        for d in &w.stats.drops {
            f.sample(
                "palisade_worker_drops_total",
                &[("worker", w.kind.name()), ("reason", &d.reason)],
                d.count,
            );
        }
    }
    let mut f = Family::new(
        &mut o,
        "palisade_worker_notices_total",
        "counter",
        "Events written without something they could have had (no event lost), by reason.",
    );
    for w in &r.workers {
        for d in &w.stats.notices {
            f.sample(
                "palisade_worker_notices_total",
                &[("worker", w.kind.name()), ("reason", &d.reason)],
                d.count,
            );
        }
    }
    let mut f = Family::new(
        &mut o,
        "palisade_worker_gauge",
        "gauge",
        "Levels a worker reports (e.g. dhcp_open_transactions, dhcp_devices), by name.",
    );
    for w in &r.workers {
        for d in &w.stats.gauges {
            f.sample(
                "palisade_worker_gauge",
                &[("worker", w.kind.name()), ("name", &d.reason)],
                d.count,
            );
        }
    }
    let mut f = Family::new(
        &mut o,
        "palisade_kernel_counter_total",
        "counter",
        "eBPF per-CPU counters summed, by group and counter.",
    );
    for k in &r.kernel {
        f.sample(
            "palisade_kernel_counter_total",
            &[("group", &k.group), ("counter", &k.counter)],
            k.value,
        );
    }
    let mut f = Family::new(
        &mut o,
        "palisade_interface_attached",
        "gauge",
        "1 per attached program hook.",
    );
    for i in &r.interfaces {
        for a in &i.attachments {
            f.sample(
                "palisade_interface_attached",
                &[
                    ("interface", &i.name),
                    ("direction", &a.direction),
                    ("mode", &a.mode),
                ],
                1,
            );
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
        let mut f = Family::new(
            &mut o,
            name,
            if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            },
            help,
        );
        f.sample(name, &[], value);
    }
    let drift = d
        .worker_ruleset_sha256
        .as_ref()
        .is_some_and(|w| *w != d.ruleset_sha256);
    let mut f = Family::new(
        &mut o,
        "palisade_dns_ruleset_drift",
        "gauge",
        "1 when the DNS worker applies another rule set than the supervisor's.",
    );
    f.sample(
        "palisade_dns_ruleset_drift",
        &[("ruleset", &d.ruleset_sha256)],
        u8::from(drift),
    );
    o
}
