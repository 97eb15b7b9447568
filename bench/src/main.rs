//! `palisade-bench`: the helpers `bench/run` drives.
//!
//! - `gen`: a one-core packet generator (AF_PACKET + `sendmmsg`, qdisc
//!   bypass) for small UDP datagrams with a fixed 5-tuple or valid DNS
//!   queries with varying ids and names;
//! - `noop`: attaches a no-op TC program (TCX, ingress + egress) until
//!   SIGTERM, to measure the cost of the hook itself;
//! - `ip-hooks`: Palisade's observer plus an IP policy hook (XDP native or
//!   generic, or TCX) with no rules, a million prefixes, or a no-op at that
//!   hook, until SIGTERM (`bench/ip-policy`);
//! - `tcx-query`: the programs attached at an interface's TCX hooks (with
//!   their run time and count);
//! - `bpf-stats`: keeps BPF run-time statistics on until SIGTERM;
//! - `count`: counts JSON lines (by `event_type`) read from stdin;
//! - `names`: writes a DNS block list of generated names (1,000,000 by default);
//! - `report`: turns the raw samples into the results table (markdown);
//! - `prog-cost`: the TC program's own ns per packet (BPF_PROG_TEST_RUN), against a no-op;
//! - `worker-cost`: a worker's events per second on one core, its protocol fed records
//!   in-process (`palisade_worker_runtime::offline`), events written to /dev/null.
//!
//! Every subcommand that touches an interface works in the network namespace
//! it was started in: `bench/run` starts them with `nsenter --net=...`.

mod count;
mod generator;
mod ip_hooks;
mod names;
mod noop;
mod prog_cost;
mod report;
mod worker_cost;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "palisade-bench",
    about = "Palisade benchmark helpers (see bench/run)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Send packets as fast as one core can, for a fixed time.
    Gen(generator::Args),
    /// Attach a no-op TC program (TCX ingress + egress) until SIGTERM/SIGINT.
    Noop(noop::Args),
    /// Attach Palisade's observer and an IP policy hook (bench/ip-policy) until SIGTERM.
    IpHooks(ip_hooks::Args),
    /// Print the programs attached at an interface's TCX hooks (JSON).
    TcxQuery(noop::QueryArgs),
    /// Keep BPF run-time statistics on (BPF_ENABLE_STATS) until SIGTERM/SIGINT.
    BpfStats(noop::StatsArgs),
    /// Count JSON lines from stdin by event_type; write the counts at EOF.
    Count(count::Args),
    /// Write a DNS block list of generated names (none matches the generator's queries).
    Names(names::Args),
    /// Summarize raw samples (JSON lines) into tables.
    Report(report::Args),
    /// Per-packet cost of Palisade's TC program (BPF_PROG_TEST_RUN), against a no-op.
    ProgCost(prog_cost::Args),
    /// Events per second of a worker's protocol on one core, records fed in-process.
    WorkerCost(worker_cost::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Gen(a) => generator::main(&a),
        Cmd::Noop(a) => noop::main(&a),
        Cmd::IpHooks(a) => ip_hooks::main(&a),
        Cmd::TcxQuery(a) => noop::query(&a),
        Cmd::BpfStats(a) => noop::stats(&a),
        Cmd::Count(a) => count::main(&a),
        Cmd::Names(a) => names::main(&a),
        Cmd::Report(a) => report::main(&a),
        Cmd::ProgCost(a) => prog_cost::main(&a),
        Cmd::WorkerCost(a) => worker_cost::main(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("palisade-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Errors are reported as text: this is a test tool.
pub type Result<T> = std::result::Result<T, String>;

/// Formats an OS error with context.
pub fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}
