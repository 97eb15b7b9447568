//! Turns the raw samples `bench/run` collected (one JSON object per line)
//! into the results tables: medians with min-max spread, throughput ratios
//! paired by repetition (each repetition runs every configuration back to
//! back, so a ratio compares runs made under the same machine load).

use std::{collections::BTreeMap, fmt::Write as _, path::PathBuf};

use serde_json::Value;

use crate::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Raw samples (JSON lines).
    #[arg(long)]
    samples: PathBuf,
    /// Markdown output.
    #[arg(long)]
    markdown: PathBuf,
}

/// Median, min, max of a sample set.
#[derive(Debug, Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v.get(n / 2).copied().unwrap_or(0.0)
    } else {
        (v.get(n / 2 - 1).copied().unwrap_or(0.0) + v.get(n / 2).copied().unwrap_or(0.0)) / 2.0
    };
    Some(Spread {
        median,
        min: v.first().copied().unwrap_or(0.0),
        max: v.last().copied().unwrap_or(0.0),
        n,
    })
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_f64()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The configuration of a sample (`palisade` for runs recorded before configurations
/// other than the plain product existed).
fn config_of(v: &Value) -> &str {
    match text(v, "config") {
        "" => "palisade",
        c => c,
    }
}

/// Configurations present in the samples: the known ones in their order, then any other.
fn configs(samples: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in samples.iter().filter(|s| text(s, "kind") == "pps") {
        let c = config_of(s);
        if !out.iter().any(|o| o == c) {
            out.push(c.to_owned());
        }
    }
    let rank = |c: &str| {
        KNOWN_CONFIGS
            .iter()
            .position(|k| *k == c)
            .unwrap_or(usize::MAX)
    };
    out.sort_by_key(|c| rank(c));
    out
}

fn fmt_spread(s: Option<Spread>, digits: usize, scale: f64) -> String {
    match s {
        Some(s) => format!(
            "{:.d$} [{:.d$}-{:.d$}]",
            s.median / scale,
            s.min / scale,
            s.max / scale,
            d = digits
        ),
        None => "n/a".into(),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "n/a",
    }
}

/// Table rows are built as strings; printed to stdout and written as markdown.
struct Doc {
    md: String,
}

impl Doc {
    fn line(&mut self, s: &str) {
        self.md.push_str(s);
        self.md.push('\n');
    }

    fn table(&mut self, head: &[&str], rows: &[Vec<String>]) {
        self.line(&format!("| {} |", head.join(" | ")));
        self.line(&format!(
            "|{}|",
            head.iter().map(|_| "---").collect::<Vec<_>>().join("|")
        ));
        for r in rows {
            self.line(&format!("| {} |", r.join(" | ")));
        }
        self.line("");
    }
}

const TRAFFIC: [(&str, &str, Option<f64>); 3] = [
    ("udp", "(a) UDP, fixed 5-tuple, no record", Some(0.95)),
    ("dns", "(b) DNS queries, one source port", Some(0.90)),
    (
        "dns-ports",
        "(b') DNS queries, 28232 source ports (one flow each)",
        None,
    ),
];
const KNOWN_CONFIGS: [&str; 5] = [
    "none",
    "noop",
    "palisade",
    "palisade-1m",
    "palisade-1m-blocked",
];
const PROCS: [&str; 5] = ["supervisor", "dns", "dhcp", "tls", "flow"];

fn throughput(doc: &mut Doc, samples: &[Value]) {
    doc.line("## Throughput (receive pps at the far end of the veth, one generator core)");
    doc.line("");
    doc.line("Median [min-max] over repetitions. Ratios are paired: each repetition ran every configuration back to back; the ratio is taken within a repetition, then summarized.");
    doc.line("");
    let all_configs = configs(samples);
    let with_variants = all_configs.iter().any(|c| c.starts_with("palisade-"));
    let mut rows = Vec::new();
    for (traffic, label, target) in TRAFFIC {
        let pps: BTreeMap<&str, BTreeMap<i64, f64>> = all_configs
            .iter()
            .map(|c| {
                let m = samples
                    .iter()
                    .filter(|s| {
                        text(s, "kind") == "pps"
                            && text(s, "traffic") == traffic
                            && config_of(s) == c
                    })
                    .filter_map(|s| Some((s.get("rep")?.as_i64()?, num(s, &["pps"])?)))
                    .collect();
                (c.as_str(), m)
            })
            .collect();
        let Some(none) = pps.get("none") else {
            continue;
        };
        if none.is_empty() {
            continue;
        }
        // Ratios within each repetition, then summarized.
        let paired = |m: &BTreeMap<i64, f64>, base: Option<&BTreeMap<i64, f64>>| -> Vec<f64> {
            base.map_or_else(Vec::new, |base| {
                m.iter()
                    .filter_map(|(rep, v)| base.get(rep).filter(|b| **b > 0.0).map(|b| v / b))
                    .collect()
            })
        };
        for c in all_configs.iter().map(String::as_str) {
            let Some(m) = pps.get(c) else { continue };
            if m.is_empty() {
                continue;
            }
            let values: Vec<f64> = m.values().copied().collect();
            let r = spread(&paired(m, Some(none)));
            let vs_noop = if c.starts_with("palisade") {
                paired(m, pps.get("noop"))
            } else {
                Vec::new()
            };
            let vs_palisade = if c.starts_with("palisade-") {
                paired(m, pps.get("palisade"))
            } else {
                Vec::new()
            };
            let (target_s, met) = match (c, target) {
                ("palisade", Some(t)) => (format!(">= {t:.2}x"), r.map(|r| r.median >= t)),
                _ => (String::new(), None),
            };
            rows.push(vec![
                label.to_owned(),
                c.to_owned(),
                fmt_spread(spread(&values), 1, 1000.0),
                if c == "none" {
                    "1".into()
                } else {
                    fmt_spread(r, 3, 1.0)
                },
                if vs_noop.is_empty() {
                    String::new()
                } else {
                    fmt_spread(spread(&vs_noop), 3, 1.0)
                },
                if vs_palisade.is_empty() {
                    String::new()
                } else {
                    fmt_spread(spread(&vs_palisade), 3, 1.0)
                },
                target_s,
                if met.is_some() {
                    verdict(met).to_owned()
                } else {
                    String::new()
                },
            ]);
        }
    }
    if !with_variants {
        // The column of the DNS policy variants only when one was measured.
        for r in &mut rows {
            r.remove(5);
        }
    }
    let mut head = vec![
        "traffic",
        "programs",
        "kpps",
        "ratio vs none",
        "ratio vs noop",
        "ratio vs palisade",
        "target",
        "",
    ];
    if !with_variants {
        head.remove(5);
    }
    doc.table(&head, &rows);
}

fn get_u(v: &Value, path: &[&str]) -> f64 {
    num(v, path).unwrap_or(0.0)
}

/// Runs of the plain product (`palisade`, no list) with this traffic.
fn runs<'a>(samples: &'a [Value], traffic: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    samples.iter().filter(move |s| {
        text(s, "kind") == "run" && text(s, "traffic") == traffic && config_of(s) == "palisade"
    })
}

/// The DNS policy configurations: kernel policy counters per run, list load and memory.
fn dns_policy(doc: &mut Doc, samples: &[Value]) {
    let rs: Vec<&Value> = samples
        .iter()
        .filter(|s| {
            text(s, "kind") == "run"
                && text(s, "traffic").starts_with("dns")
                && !text(s, "traffic").starts_with("dns@")
        })
        .collect();
    if !rs.iter().any(|r| config_of(r) != "palisade") {
        return;
    }
    doc.line("## DNS policy (kernel counters per Palisade run)");
    doc.line("");
    doc.line("`names`: entries of the kernel rule map (the daemon's \"DNS policy loaded\" log line; 0 for the plain configuration, whose queries still go through the lookup). `checked` / `allowed` / `NXDOMAIN` / `not matchable`: deltas of the `dns_policy` kernel counters queries_checked, queries_allowed, blocked_nxdomain, not_matchable over the flood; `failed`: nxdomain_unsupported + rewrite_failed + redirect_failed. `answer lines`: dns events of type answer on stdout (a kernel NXDOMAIN is seen again by the egress hook and logged as an answer). `lost` = rx - query lines.");
    doc.line("");
    let mut order: Vec<&Value> = rs.clone();
    let rank = |c: &str| {
        KNOWN_CONFIGS
            .iter()
            .position(|k| *k == c)
            .unwrap_or(usize::MAX)
    };
    order.sort_by_key(|r| {
        (
            rank(config_of(r)),
            text(r, "traffic").to_owned(),
            r.get("rep").and_then(Value::as_i64).unwrap_or(0),
        )
    });
    let k = |r: &Value, c: &str| get_u(r, &["k", &format!("dns_policy.{c}")]);
    let mut rows = Vec::new();
    for r in &order {
        let rx = get_u(r, &["rx"]);
        rows.push(vec![
            config_of(r).to_owned(),
            text(r, "traffic").to_owned(),
            format!("{}", r.get("rep").and_then(Value::as_i64).unwrap_or(0)),
            format!("{:.0}", get_u(r, &["policy_names"])),
            format!("{:.0}", rx / get_u(r, &["elapsed_s"]).max(1e-9) / 1000.0),
            format!("{rx:.0}"),
            format!("{:.0}", k(r, "queries_checked")),
            format!("{:.0}", k(r, "queries_allowed")),
            format!("{:.0}", k(r, "blocked_nxdomain")),
            format!("{:.0}", k(r, "not_matchable")),
            format!(
                "{:.0}",
                k(r, "nxdomain_unsupported") + k(r, "rewrite_failed") + k(r, "redirect_failed")
            ),
            format!("{:.0}", get_u(r, &["k", "dns.records"])),
            format!("{:.0}", get_u(r, &["k", "dns.ring_full"])),
            format!("{:.0}", get_u(r, &["stdout_dns", "query"])),
            format!("{:.0}", get_u(r, &["stdout_dns", "answer"])),
            format!("{:.0}", rx - get_u(r, &["stdout_dns", "query"])),
            format!("{:.0}", get_u(r, &["workers_killed"])),
        ]);
    }
    doc.table(
        &[
            "config",
            "traffic",
            "rep",
            "names",
            "kpps",
            "rx",
            "checked",
            "allowed",
            "NXDOMAIN",
            "not matchable",
            "failed",
            "dns records",
            "ring_full",
            "query lines",
            "answer lines",
            "lost",
            "killed",
        ],
        &rows,
    );

    doc.line("### Time per packet on the generator core");
    doc.line("");
    doc.line("1 / pps: the generator core sends and receives every frame, so this is what one packet costs that core; `over none` / `over palisade`: the difference to the `none` / `palisade` run of the same repetition (the programs' cost per packet, as the throughput ratios show it), median [min-max] over repetitions.");
    doc.line("");
    let mut rows = Vec::new();
    for (traffic, label, _) in TRAFFIC {
        let ns: BTreeMap<String, BTreeMap<i64, f64>> = configs(samples)
            .into_iter()
            .map(|c| {
                let m = samples
                    .iter()
                    .filter(|s| {
                        text(s, "kind") == "pps"
                            && text(s, "traffic") == traffic
                            && config_of(s) == c
                    })
                    .filter_map(|s| {
                        let pps = num(s, &["pps"]).filter(|p| *p > 0.0)?;
                        Some((s.get("rep")?.as_i64()?, 1e9 / pps))
                    })
                    .collect();
                (c, m)
            })
            .collect();
        let diff = |m: &BTreeMap<i64, f64>, base: &str| -> Vec<f64> {
            ns.get(base).map_or_else(Vec::new, |b| {
                m.iter()
                    .filter_map(|(rep, v)| b.get(rep).map(|x| v - x))
                    .collect()
            })
        };
        for (c, m) in &ns {
            if m.is_empty() || !c.starts_with("palisade") {
                continue;
            }
            let values: Vec<f64> = m.values().copied().collect();
            let over_palisade = if c == "palisade" {
                String::new()
            } else {
                fmt_spread(spread(&diff(m, "palisade")), 0, 1.0)
            };
            rows.push(vec![
                label.to_owned(),
                c.clone(),
                fmt_spread(spread(&values), 0, 1.0),
                fmt_spread(spread(&diff(m, "none")), 0, 1.0),
                over_palisade,
            ]);
        }
    }
    rows.sort_by_key(|r| {
        (
            r.first().cloned(),
            KNOWN_CONFIGS
                .iter()
                .position(|k| Some(*k) == r.get(1).map(String::as_str)),
        )
    });
    doc.table(
        &[
            "traffic",
            "config",
            "ns per packet",
            "over none",
            "over palisade",
        ],
        &rows,
    );

    doc.line("### Loading the list (every Palisade run of the configuration)");
    doc.line("");
    let all: Vec<&Value> = samples
        .iter()
        .filter(|s| text(s, "kind") == "run" && !text(s, "traffic").starts_with("dns@"))
        .collect();
    let mut rows = Vec::new();
    for c in configs(samples) {
        let rc: Vec<&Value> = all.iter().copied().filter(|r| config_of(r) == c).collect();
        if rc.is_empty() {
            continue;
        }
        let vals = |path: &[&str], scale: f64| -> Vec<f64> {
            rc.iter()
                .filter_map(|r| num(r, path))
                .map(|v| v / scale)
                .collect()
        };
        rows.push(vec![
            c.clone(),
            fmt_spread(spread(&vals(&["policy_names"], 1.0)), 0, 1.0),
            fmt_spread(spread(&vals(&["attached_ms"], 1.0)), 0, 1.0),
            fmt_spread(spread(&vals(&["healthy_ms"], 1.0)), 0, 1.0),
            fmt_spread(
                spread(&vals(&["rss_rest_kib", "supervisor"], 1024.0)),
                1,
                1.0,
            ),
            fmt_spread(spread(&vals(&["hwm_kib", "supervisor"], 1024.0)), 1, 1.0),
            rc.len().to_string(),
        ]);
    }
    doc.table(
        &[
            "config",
            "names",
            "programs attached (ms)",
            "4 workers running (ms)",
            "supervisor VmRSS at rest (MiB)",
            "supervisor VmHWM (MiB)",
            "runs",
        ],
        &rows,
    );
}

fn cpu_total(r: &Value) -> f64 {
    PROCS.iter().map(|p| get_u(r, &["cpu_s", p])).sum()
}

fn dns_logging(doc: &mut Doc, samples: &[Value]) {
    doc.line("## DNS events at the highest rate one generator core sends");
    doc.line("");
    doc.line("Per run of the plain configuration `palisade` (no list). `sent`: generator; `rx`: sensor veth rx_packets; `kernel` / `ring_full`: `status` counters dns.records / dns.ring_full; `worker`: dns worker stats records (`*` = the worker was restarted during the run, so its stats cover only the successor); `query lines`: dns events of type query the log reader counted on stdout (the worker also writes `unanswered` events for queries it tracked and that timed out: `unanswered lines`); `lost` = rx - query lines; `killed`: workers the supervisor killed (missed heartbeats). CPU: utime+stime of supervisor + 4 workers from just before the flood until every record was consumed (or 10 s).");
    doc.line("");
    let mut rows = Vec::new();
    for traffic in ["dns", "dns-ports"] {
        for r in runs(samples, traffic) {
            let rx = get_u(r, &["rx"]);
            let cpu = cpu_total(r);
            let drops = r
                .pointer("/w/dns/drops")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_u64().unwrap_or(0)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let restarted = r
                .pointer("/w/dns/restarted")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            rows.push(vec![
                traffic.to_owned(),
                format!("{}", r.get("rep").and_then(Value::as_i64).unwrap_or(0)),
                format!("{:.0}", rx / get_u(r, &["elapsed_s"]).max(1e-9) / 1000.0),
                format!("{:.0}", get_u(r, &["sent"])),
                format!("{rx:.0}"),
                format!("{:.0}", get_u(r, &["k", "dns.records"])),
                format!("{:.0}", get_u(r, &["k", "dns.ring_full"])),
                format!(
                    "{:.0}{}",
                    get_u(r, &["w", "dns", "records"]),
                    if restarted { "*" } else { "" }
                ),
                format!("{:.0}", get_u(r, &["stdout_dns", "query"])),
                format!("{:.0}", get_u(r, &["stdout_dns", "unanswered"])),
                format!("{:.0}", rx - get_u(r, &["stdout_dns", "query"])),
                format!("{:.0}", get_u(r, &["workers_killed"])),
                format!("{:.3}", cpu / (rx / 1e6).max(1e-9)),
                if drops.is_empty() { "-".into() } else { drops },
            ]);
        }
    }
    doc.table(
        &[
            "traffic",
            "rep",
            "kpps",
            "sent",
            "rx",
            "kernel",
            "ring_full",
            "worker",
            "query lines",
            "unanswered lines",
            "lost",
            "killed",
            "CPU s / M pkts",
            "worker drop counters",
        ],
        &rows,
    );

    doc.line("### Summary per traffic (Palisade runs)");
    doc.line("");
    let mut rows = Vec::new();
    for (traffic, label, _) in TRAFFIC {
        let rs: Vec<&Value> = runs(samples, traffic).collect();
        if rs.is_empty() {
            continue;
        }
        let per_m: Vec<f64> = rs
            .iter()
            .map(|r| cpu_total(r) / (get_u(r, &["rx"]) / 1e6).max(1e-9))
            .collect();
        let by_proc: Vec<String> = PROCS
            .iter()
            .map(|p| {
                let v: Vec<f64> = rs
                    .iter()
                    .map(|r| get_u(r, &["cpu_s", p]) / (get_u(r, &["rx"]) / 1e6).max(1e-9))
                    .collect();
                format!(
                    "{p} {}",
                    spread(&v).map_or("n/a".into(), |s| format!("{:.3}", s.median))
                )
            })
            .collect();
        let loss = if traffic == "udp" {
            "-".to_owned()
        } else {
            let lost: Vec<f64> = rs
                .iter()
                .map(|r| get_u(r, &["rx"]) - get_u(r, &["stdout_dns", "query"]))
                .collect();
            let ring_full: f64 = rs.iter().map(|r| get_u(r, &["k", "dns.ring_full"])).sum();
            let killed: f64 = rs.iter().map(|r| get_u(r, &["workers_killed"])).sum();
            let lost_runs = lost.iter().filter(|l| **l != 0.0).count();
            let zero = lost_runs == 0 && ring_full == 0.0 && killed == 0.0;
            format!(
                "{}: {} of {} runs lost events (max {:.0}); ring_full {:.0}; workers killed {:.0}",
                verdict(Some(zero)),
                lost_runs,
                rs.len(),
                lost.iter().copied().fold(0.0, f64::max),
                ring_full,
                killed
            )
        };
        rows.push(vec![
            label.to_owned(),
            fmt_spread(spread(&per_m), 3, 1.0),
            by_proc.join(", "),
            loss,
        ]);
    }
    doc.table(
        &[
            "traffic",
            "CPU s per M packets, process tree",
            "per process (median)",
            "DNS events, zero loss",
        ],
        &rows,
    );

    let all: Vec<&Value> = samples
        .iter()
        .filter(|s| text(s, "kind") == "run" && config_of(s) == "palisade")
        .collect();
    if !all.is_empty() {
        let idle: Vec<String> = PROCS
            .iter()
            .map(|p| {
                let v: Vec<f64> = all
                    .iter()
                    .filter_map(|r| num(r, &["idle_cpu_pct", p]))
                    .collect();
                format!("{p} {}", fmt_spread(spread(&v), 2, 1.0))
            })
            .collect();
        let total: Vec<f64> = all
            .iter()
            .map(|r| {
                PROCS
                    .iter()
                    .filter_map(|p| num(r, &["idle_cpu_pct", p]))
                    .sum()
            })
            .collect();
        doc.line(&format!(
            "Idle CPU (no traffic, % of one CPU, from /proc/PID/task/*/schedstat): total {}; {}.",
            fmt_spread(spread(&total), 2, 1.0),
            idle.join(", ")
        ));
        doc.line("");
    }
}

/// Program run time from BPF statistics (runs with `BENCH_BPF_STATS=1`).
fn bpf_run_time(doc: &mut Doc, samples: &[Value]) {
    let ps: Vec<&Value> = samples
        .iter()
        .filter(|s| text(s, "kind") == "pps" && s.get("bpf").is_some_and(Value::is_object))
        .collect();
    if ps.is_empty() {
        return;
    }
    doc.line("## Program run time (BPF statistics, during the flood)");
    doc.line("");
    doc.line("`run_time_ns` / `run_cnt` of the program at each TCX hook of the sensor veth, deltas over the flood, median [min-max] over repetitions. Statistics were on for the whole run (`BENCH_BPF_STATS=1`): they add their own cost (two clock reads per run, most of what the no-op shows), so this run's pps ratios are not comparable with a run without them. Counts are per program: the no-op, one program at both hooks, shows under ingress only.");
    doc.line("");
    let mut rows = Vec::new();
    for (traffic, label, _) in TRAFFIC {
        for c in configs(samples) {
            let rs: Vec<&&Value> = ps
                .iter()
                .filter(|s| text(s, "traffic") == traffic && config_of(s) == c)
                .collect();
            if rs.is_empty() {
                continue;
            }
            let per = |hook: &str| -> (Vec<f64>, Vec<f64>) {
                let mut ns = Vec::new();
                let mut cnt = Vec::new();
                for r in &rs {
                    if !r
                        .get("bpf")
                        .and_then(|b| b.get(hook))
                        .is_some_and(Value::is_object)
                    {
                        continue; // no program, or the ingress one again (the no-op)
                    }
                    let t = num(r, &["bpf", hook, "run_time_ns"]).unwrap_or(0.0);
                    let n = num(r, &["bpf", hook, "run_cnt"]).unwrap_or(0.0);
                    let rx = get_u(r, &["rx"]).max(1.0);
                    if n > 0.0 {
                        ns.push(t / n);
                    }
                    cnt.push(n / rx);
                }
                (ns, cnt)
            };
            let (ins, icnt) = per("ingress");
            let (ens, ecnt) = per("egress");
            let name = |hook: &str| {
                rs.iter()
                    .find_map(|r| {
                        r.pointer(&format!("/bpf/{hook}/name"))
                            .and_then(Value::as_str)
                    })
                    .unwrap_or("-")
                    .to_owned()
            };
            rows.push(vec![
                label.to_owned(),
                c.clone(),
                name("ingress"),
                fmt_spread(spread(&ins), 0, 1.0),
                fmt_spread(spread(&icnt), 3, 1.0),
                fmt_spread(spread(&ens), 0, 1.0),
                fmt_spread(spread(&ecnt), 3, 1.0),
            ]);
        }
    }
    doc.table(
        &[
            "traffic",
            "config",
            "ingress program",
            "ingress ns per run",
            "ingress runs per rx packet",
            "egress ns per run",
            "egress runs per rx packet",
        ],
        &rows,
    );
}

fn ladder(doc: &mut Doc, samples: &[Value]) {
    let mut rs: Vec<&Value> = samples
        .iter()
        .filter(|s| text(s, "kind") == "run" && text(s, "traffic").starts_with("dns@"))
        .collect();
    if rs.is_empty() {
        return;
    }
    rs.sort_by(|a, b| get_u(a, &["rate"]).total_cmp(&get_u(b, &["rate"])));
    doc.line("## DNS rate ladder (Palisade, paced DNS floods, one source port)");
    doc.line("");
    doc.line("Each rate once, after the main repetitions. `lost` = rx - query lines on stdout. `dns CPU` = dns worker CPU time / flood duration.");
    doc.line("");
    let mut rows = Vec::new();
    let mut best: Option<f64> = None;
    for r in &rs {
        let rx = get_u(r, &["rx"]);
        let lost = rx - get_u(r, &["stdout_dns", "query"]);
        let ok = lost == 0.0
            && get_u(r, &["k", "dns.ring_full"]) == 0.0
            && get_u(r, &["workers_killed"]) == 0.0;
        if ok {
            best = Some(best.map_or(get_u(r, &["rate"]), |b: f64| b.max(get_u(r, &["rate"]))));
        }
        rows.push(vec![
            format!("{:.0}", get_u(r, &["rate"]) / 1000.0),
            format!("{:.1}", rx / get_u(r, &["elapsed_s"]).max(1e-9) / 1000.0),
            format!("{rx:.0}"),
            format!("{:.0}", get_u(r, &["stdout_dns", "query"])),
            format!("{lost:.0}"),
            format!("{:.0}", get_u(r, &["k", "dns.ring_full"])),
            format!("{:.0}", get_u(r, &["workers_killed"])),
            format!(
                "{:.0}%",
                100.0 * get_u(r, &["cpu_s", "dns"]) / get_u(r, &["elapsed_s"]).max(1e-9)
            ),
            format!("{:.3}", cpu_total(r) / (rx / 1e6).max(1e-9)),
            format!("{:.2}", get_u(r, &["loadavg1"])),
            if ok { "yes".into() } else { "**no**".into() },
        ]);
    }
    doc.table(
        &[
            "target kpps",
            "kpps",
            "rx",
            "query lines",
            "lost",
            "ring_full",
            "killed",
            "dns CPU",
            "CPU s / M pkts",
            "loadavg",
            "zero loss",
        ],
        &rows,
    );
    if let Some(b) = best {
        doc.line(&format!(
            "Highest paced rate with zero loss in this run: {:.0} kpps.",
            b / 1000.0
        ));
        doc.line("");
    }
}

fn memory(doc: &mut Doc, samples: &[Value]) {
    doc.line("## Resident memory (MiB)");
    doc.line("");
    doc.line("VmRSS at rest (workers healthy, no traffic) and under load (highest VmRSS sampled every 200 ms during the DNS flood (b)); VmHWM = lifetime peak, read after that flood (it includes start-up). `ring` = resident pages of the process's BPF map mappings (/proc/PID/smaps): the worker's ring buffer, mmapped from the kernel (its data pages are mapped twice), counted in VmRSS although the memory is the kernel's map, not the worker's heap. Median [min-max] over runs. The verdict is on VmRSS (at rest, under load and VmHWM), as the target is stated.");
    doc.line("");
    let mut rows = Vec::new();
    let dns_runs: Vec<&Value> = runs(samples, "dns").collect();
    let all_runs: Vec<&Value> = samples
        .iter()
        .filter(|s| text(s, "kind") == "run" && config_of(s) == "palisade")
        .collect();
    let mib = |rs: &[&Value], key: &str, p: &str| -> Vec<f64> {
        rs.iter()
            .filter_map(|r| num(r, &[key, p]))
            .filter(|k| *k > 0.0)
            .map(|k| k / 1024.0)
            .collect()
    };
    for p in PROCS {
        let rest = mib(&all_runs, "rss_rest_kib", p);
        let ring = mib(&all_runs, "ring_rest_kib", p);
        let load = mib(&dns_runs, "rss_load_kib", p);
        let hwm = mib(&dns_runs, "hwm_kib", p);
        let rest_ex: Vec<f64> = all_runs
            .iter()
            .filter(|r| get_u(r, &["rss_rest_kib", p]) > 0.0)
            .filter_map(|r| {
                Some((num(r, &["rss_rest_kib", p])? - num(r, &["ring_rest_kib", p])?) / 1024.0)
            })
            .filter(|v| *v > 0.0)
            .collect();
        let load_ex: Vec<f64> = dns_runs
            .iter()
            .filter_map(|r| {
                Some((num(r, &["rss_load_kib", p])? - num(r, &["ring_load_kib", p])?) / 1024.0)
            })
            .filter(|v| *v > 0.0)
            .collect();
        let limit = if p == "supervisor" { 20.0 } else { 12.0 };
        let worst = rest
            .iter()
            .chain(load.iter())
            .chain(hwm.iter())
            .copied()
            .fold(f64::NAN, f64::max);
        rows.push(vec![
            if p == "supervisor" {
                p.to_owned()
            } else {
                format!("worker {p}")
            },
            fmt_spread(spread(&rest), 1, 1.0),
            fmt_spread(spread(&load), 1, 1.0),
            fmt_spread(spread(&hwm), 1, 1.0),
            fmt_spread(spread(&ring), 1, 1.0),
            format!(
                "{} / {}",
                fmt_spread(spread(&rest_ex), 1, 1.0),
                fmt_spread(spread(&load_ex), 1, 1.0)
            ),
            format!("<= {limit:.0}"),
            verdict(worst.is_finite().then_some(worst <= limit)).to_owned(),
        ]);
    }
    doc.table(
        &[
            "process",
            "VmRSS at rest",
            "VmRSS under load",
            "VmHWM",
            "of which ring",
            "VmRSS - ring (rest / load)",
            "target",
            "",
        ],
        &rows,
    );
}

fn startup(doc: &mut Doc, samples: &[Value]) {
    doc.line("## Start-up time (ms)");
    doc.line("");
    doc.line("From spawning `palisade run` to: programs attached (the daemon's own `elapsed_ms` in its \"programs attached\" log line, measured from its start) and healthy (first `palisade status --json` showing 4 workers running, polled every 10 ms, measured by the benchmark from the spawn).");
    doc.line("");
    let rs: Vec<&Value> = samples
        .iter()
        .filter(|s| text(s, "kind") == "run" && config_of(s) == "palisade")
        .collect();
    let attached: Vec<f64> = rs.iter().filter_map(|r| num(r, &["attached_ms"])).collect();
    let healthy: Vec<f64> = rs.iter().filter_map(|r| num(r, &["healthy_ms"])).collect();
    let n = spread(&healthy).map_or(0, |s| s.n);
    doc.table(
        &["milestone", "median [min-max]", "runs"],
        &[
            vec![
                "programs attached (daemon log)".into(),
                fmt_spread(spread(&attached), 0, 1.0),
                n.to_string(),
            ],
            vec![
                "4 workers running (status)".into(),
                fmt_spread(spread(&healthy), 0, 1.0),
                n.to_string(),
            ],
        ],
    );
}

fn meta(doc: &mut Doc, samples: &[Value]) {
    let Some(m) = samples.iter().find(|s| text(s, "kind") == "meta") else {
        return;
    };
    let mut s = String::new();
    for key in [
        "date",
        "mode",
        "reps",
        "seconds",
        "product",
        "kernel",
        "cpu",
        "nproc",
        "mem",
        "generator",
        "traffic",
        "configs",
        "bpf_stats",
        "loadavg_start",
    ] {
        if let Some(v) = m.get(key) {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            let _ = writeln!(s, "- {key}: {v}");
        }
    }
    if let Some(end) = samples.iter().rev().find(|s| text(s, "kind") == "end") {
        if let Some(v) = end.get("loadavg_end").and_then(Value::as_str) {
            let _ = writeln!(s, "- loadavg_end: {v}");
        }
        if let Some(v) = end.get("wall_s") {
            let _ = writeln!(s, "- wall time: {v} s");
        }
    }
    doc.line("## Run");
    doc.line("");
    doc.md.push_str(&s);
    doc.line("");
}

pub fn main(args: &Args) -> Result<()> {
    let raw = std::fs::read_to_string(&args.samples)
        .map_err(|e| format!("{}: {e}", args.samples.display()))?;
    let samples: Vec<Value> = raw
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut doc = Doc {
        md: String::from("# Palisade benchmark results\n\n"),
    };
    meta(&mut doc, &samples);
    throughput(&mut doc, &samples);
    dns_logging(&mut doc, &samples);
    dns_policy(&mut doc, &samples);
    bpf_run_time(&mut doc, &samples);
    ladder(&mut doc, &samples);
    memory(&mut doc, &samples);
    startup(&mut doc, &samples);
    std::fs::write(&args.markdown, &doc.md)
        .map_err(|e| format!("{}: {e}", args.markdown.display()))?;
    print!("{}", doc.md);
    Ok(())
}
