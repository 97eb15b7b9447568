//! The no-op TC program (reference for the cost of the hook), a query of
//! what is attached at an interface's TCX hooks (with each program's run
//! time and count, which the kernel keeps while statistics are on), and a
//! holder that turns those statistics on (`BPF_ENABLE_STATS`) until SIGTERM.

use std::path::PathBuf;

use aya::{
    Ebpf,
    programs::{SchedClassifier, TcAttachType},
};

use crate::{Result, os_err};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Interface (in the current network namespace).
    #[arg(long)]
    iface: String,
    /// The compiled no-op object (bench/bpf/noop.bpf.c).
    #[arg(long)]
    obj: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// Interface (in the current network namespace).
    #[arg(long)]
    iface: String,
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {}

const PROGRAM: &str = "bench_noop";

/// Blocks until SIGTERM or SIGINT arrives.
pub fn wait_for_signal() -> Result<()> {
    // SAFETY: plain sigset manipulation on a local set; sigwait on it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(os_err("pthread_sigmask"));
        }
        let mut sig = 0;
        if libc::sigwait(&set, &mut sig) != 0 {
            return Err(os_err("sigwait"));
        }
    }
    Ok(())
}

pub fn main(args: &Args) -> Result<()> {
    let mut ebpf =
        Ebpf::load_file(&args.obj).map_err(|e| format!("loading {}: {e}", args.obj.display()))?;
    let prog: &mut SchedClassifier = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| format!("no program {PROGRAM} in {}", args.obj.display()))?
        .try_into()
        .map_err(|e| format!("{PROGRAM}: {e}"))?;
    prog.load()
        .map_err(|e| format!("BPF_PROG_LOAD {PROGRAM}: {e}"))?;
    for hook in [TcAttachType::Ingress, TcAttachType::Egress] {
        prog.attach(&args.iface, hook)
            .map_err(|e| format!("attaching to {} {hook:?}: {e}", args.iface))?;
    }
    println!("attached");
    wait_for_signal()?;
    // Dropping `ebpf` closes the link FDs: the kernel detaches them.
    drop(ebpf);
    Ok(())
}

/// Prints `{"ingress": [names], "egress": [names], "stats": {"ingress": [{name, id,
/// run_time_ns, run_cnt}], "egress": [...]}}` (one program attached at both hooks, like the
/// no-op, shows the same counts at both). Run time and count only grow while BPF statistics are on
/// (`bpf-stats`, or the `kernel.bpf_stats_enabled` sysctl).
pub fn query(args: &QueryArgs) -> Result<()> {
    let mut out = serde_json::Map::new();
    let mut stats = serde_json::Map::new();
    for (name, hook) in [
        ("ingress", TcAttachType::Ingress),
        ("egress", TcAttachType::Egress),
    ] {
        let (_, progs) = SchedClassifier::query_tcx(&args.iface, hook)
            .map_err(|e| format!("BPF_PROG_QUERY {} {name}: {e}", args.iface))?;
        let names: Vec<serde_json::Value> = progs
            .iter()
            .map(|p| serde_json::Value::from(p.name_as_str().unwrap_or_default()))
            .collect();
        let runs: Vec<serde_json::Value> = progs
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name_as_str().unwrap_or_default(),
                    "id": p.id(),
                    "run_time_ns": u64::try_from(p.run_time().as_nanos()).unwrap_or(u64::MAX),
                    "run_cnt": p.run_count(),
                })
            })
            .collect();
        out.insert(name.to_owned(), serde_json::Value::Array(names));
        stats.insert(name.to_owned(), serde_json::Value::Array(runs));
    }
    out.insert("stats".to_owned(), serde_json::Value::Object(stats));
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

/// Turns BPF run-time statistics on (`BPF_ENABLE_STATS`) until SIGTERM/SIGINT. The kernel
/// counts holders, so this neither needs nor changes the `kernel.bpf_stats_enabled` sysctl,
/// and the statistics go off by themselves if this process dies.
pub fn stats(_args: &StatsArgs) -> Result<()> {
    let fd = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| format!("BPF_ENABLE_STATS: {e}"))?;
    println!("enabled");
    wait_for_signal()?;
    drop(fd);
    Ok(())
}
