//! `ip-hooks`: Palisade's own programs, attached the way the supervisor
//! attaches them, for `bench/ip-policy`: the flow observer (TCX ingress +
//! egress) and, per IP policy mode, the block program at its hook with an
//! empty rule set or N generated prefixes, or a no-op program at that hook
//! (the reference for the hook's own cost). Maps are not pinned; everything
//! detaches when the process exits (SIGTERM).

use std::{net::Ipv4Addr, path::PathBuf, time::Instant};

use aya::{
    EbpfLoader,
    programs::{LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode, tc::TcAttachOptions},
};
use palisade_abi::IpRule;
use palisade_ebpf::ip_policy::{self, Family, Prefix};

use crate::{Result, noop::wait_for_signal};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Interface (in the current network namespace).
    #[arg(long)]
    iface: String,
    /// `flow` (observer only), or `<hook>-<what>` with hook `native`, `generic` or `tc`
    /// and what `noop` (no-op program), `empty` (block program, no rules), `rules`
    /// (block program, --prefixes generated IPv4 prefixes, none in the traffic's /16) or
    /// `hot` (the same with one of them in the traffic's /16: every lookup goes to the trie).
    #[arg(long)]
    config: String,
    /// Prefixes for `-rules` configurations.
    #[arg(long, default_value_t = 1_000_000)]
    prefixes: u32,
    /// The compiled no-op object (bench/bpf/noop.bpf.c), for `-noop` configurations.
    #[arg(long)]
    noop_obj: Option<PathBuf>,
}

/// `n` distinct IPv4 prefixes of mixed lengths (70% /24, 20% /32, 10% /16-/23), none
/// covering the benchmark's 198.18.0.0/15, deterministic.
pub fn prefixes(n: u32) -> Vec<Prefix> {
    let mut seen = std::collections::HashSet::with_capacity(n as usize);
    let mut out = Vec::with_capacity(n as usize);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < n as usize {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let addr = (r >> 32) as u32;
        let len = match r % 10 {
            0..=6 => 24,
            7 | 8 => 32,
            _ => 16 + (r >> 8) as u8 % 8,
        };
        let Some(p) = Prefix::new(Ipv4Addr::from(addr).into(), len) else {
            continue;
        };
        let bench_net = Prefix::new(Ipv4Addr::new(198, 18, 0, 0).into(), 15);
        if bench_net.is_some_and(|b| {
            b.contains(p.addr()) || p.contains(Ipv4Addr::new(198, 18, 0, 1).into())
        }) {
            continue;
        }
        if seen.insert(p) {
            out.push(p);
        }
    }
    out
}

/// Removes the private pin directory on every exit path.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn main(args: &Args) -> Result<()> {
    // The object's maps are pinned by name: give them a private directory (aya's default
    // would be the bpffs root), removed when this process ends.
    let pins = PinDir(PathBuf::from(format!(
        "/sys/fs/bpf/palisade-bench-ip-{}",
        std::process::id()
    )));
    std::fs::create_dir_all(&pins.0).map_err(|e| format!("mkdir {}: {e}", pins.0.display()))?;
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(&pins.0)
        .load(palisade_ebpf::PALISADE_BPF)
        .map_err(|e| format!("loading palisade's object: {e}"))?;
    for name in [
        palisade_abi::PROG_TC_INGRESS,
        palisade_abi::PROG_TC_EGRESS,
        palisade_abi::PROG_TC_BLOCK_INGRESS,
        palisade_abi::PROG_TC_BLOCK_EGRESS,
    ] {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or_else(|| format!("no program {name}"))?
            .try_into()
            .map_err(|e| format!("{name}: {e}"))?;
        prog.load()
            .map_err(|e| format!("BPF_PROG_LOAD {name}: {e}"))?;
    }
    let xdp: &mut Xdp = ebpf
        .program_mut(palisade_abi::PROG_XDP_BLOCK)
        .ok_or("no XDP program")?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    xdp.load().map_err(|e| format!("BPF_PROG_LOAD xdp: {e}"))?;

    // The observer: TCX ingress + egress, like the supervisor.
    for (name, hook) in [
        (palisade_abi::PROG_TC_INGRESS, TcAttachType::Ingress),
        (palisade_abi::PROG_TC_EGRESS, TcAttachType::Egress),
    ] {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or("observer missing")?
            .try_into()
            .map_err(|e| format!("{e}"))?;
        prog.attach(&args.iface, hook)
            .map_err(|e| format!("attaching {name}: {e}"))?;
    }
    let mut noop = None;
    let mut loaded_prefixes = 0;
    let mut load_ms = 0;
    if args.config != "flow" {
        let (hook, what) = args
            .config
            .split_once('-')
            .ok_or_else(|| format!("unknown configuration {}", args.config))?;
        if what == "noop" {
            let obj = args.noop_obj.as_ref().ok_or("--noop-obj needed")?;
            let mut n = aya::Ebpf::load_file(obj).map_err(|e| format!("{}: {e}", obj.display()))?;
            match hook {
                "native" | "generic" => {
                    let p: &mut Xdp = n
                        .program_mut("bench_xdp_noop")
                        .ok_or("bench_xdp_noop missing")?
                        .try_into()
                        .map_err(|e| format!("{e}"))?;
                    p.load().map_err(|e| format!("{e}"))?;
                    let mode = if hook == "native" {
                        XdpMode::Driver
                    } else {
                        XdpMode::Skb
                    };
                    p.attach(&args.iface, mode)
                        .map_err(|e| format!("attaching XDP no-op: {e}"))?;
                }
                "tc" => {
                    let p: &mut SchedClassifier = n
                        .program_mut("bench_noop")
                        .ok_or("bench_noop missing")?
                        .try_into()
                        .map_err(|e| format!("{e}"))?;
                    p.load().map_err(|e| format!("{e}"))?;
                    p.attach_with_options(
                        &args.iface,
                        TcAttachType::Ingress,
                        TcAttachOptions::TcxOrder(LinkOrder::first()),
                    )
                    .map_err(|e| format!("attaching TC no-op: {e}"))?;
                }
                _ => return Err(format!("unknown hook {hook}")),
            }
            noop = Some(n);
        } else {
            if what == "rules" || what == "hot" {
                let mut list = prefixes(args.prefixes);
                if what == "hot" {
                    // One prefix in the traffic's /16 (not matching it): the pre-filter
                    // passes every packet to the trie, the worst case.
                    if let (Some(last), Some(hot)) = (
                        list.last_mut(),
                        Prefix::new(Ipv4Addr::new(198, 18, 200, 0).into(), 24),
                    ) {
                        *last = hot;
                    }
                }
                let start = Instant::now();
                let rules: Vec<(Prefix, IpRule)> = list
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (*p, IpRule::new(i as u32 + 1, p.len(), 0)))
                    .collect();
                let trie = ip_policy::build(Family::V4, &rules, 0)
                    .map_err(|e| format!("building the trie: {e}"))?;
                let outer = ebpf
                    .map(palisade_abi::MAP_IP4_POLICY)
                    .and_then(palisade_ebpf::maps::map_fd)
                    .ok_or("pal_ip4_policy missing")?;
                let filter = ebpf
                    .map(palisade_abi::MAP_IP4_FILTER)
                    .and_then(palisade_ebpf::maps::map_fd)
                    .ok_or("pal_ip4_filter missing")?;
                let zero = vec![0_u64; ip_policy::IP4_FILTER_WORDS];
                ip_policy::write_filter(filter, &zero, &ip_policy::filter_bits(&list))
                    .map_err(|e| format!("pre-filter: {e}"))?;
                ip_policy::swap_in(outer, &trie).map_err(|e| format!("swap: {e}"))?;
                load_ms = start.elapsed().as_millis();
                loaded_prefixes = rules.len();
            } else if what == "empty" {
                // As the supervisor leaves a family without rules: an empty slot.
                for name in [palisade_abi::MAP_IP4_POLICY, palisade_abi::MAP_IP6_POLICY] {
                    let outer = ebpf
                        .map(name)
                        .and_then(palisade_ebpf::maps::map_fd)
                        .ok_or("outer map missing")?;
                    ip_policy::clear(outer).map_err(|e| format!("clearing {name}: {e}"))?;
                }
            } else {
                return Err(format!("unknown configuration {}", args.config));
            }
            match hook {
                "native" | "generic" => {
                    let p: &mut Xdp = ebpf
                        .program_mut(palisade_abi::PROG_XDP_BLOCK)
                        .ok_or("xdp missing")?
                        .try_into()
                        .map_err(|e| format!("{e}"))?;
                    let mode = if hook == "native" {
                        XdpMode::Driver
                    } else {
                        XdpMode::Skb
                    };
                    p.attach(&args.iface, mode)
                        .map_err(|e| format!("attaching pal_xdp_block: {e}"))?;
                }
                "tc" => {
                    let p: &mut SchedClassifier = ebpf
                        .program_mut(palisade_abi::PROG_TC_BLOCK_INGRESS)
                        .ok_or("tc block missing")?
                        .try_into()
                        .map_err(|e| format!("{e}"))?;
                    p.attach_with_options(
                        &args.iface,
                        TcAttachType::Ingress,
                        TcAttachOptions::TcxOrder(LinkOrder::first()),
                    )
                    .map_err(|e| format!("attaching pal_tc_block_ingress: {e}"))?;
                }
                _ => return Err(format!("unknown hook {hook}")),
            }
        }
    }
    println!("attached prefixes={loaded_prefixes} load_ms={load_ms}");
    wait_for_signal()?;
    // Run time of the program at the IP policy's ingress hook (grows only while BPF
    // statistics are on, e.g. `palisade-bench bpf-stats`).
    let measured = match (args.config.split_once('-'), noop.as_ref()) {
        (Some(("native" | "generic", "noop")), Some(n)) => n.program("bench_xdp_noop"),
        (Some(("tc", "noop")), Some(n)) => n.program("bench_noop"),
        (Some(("native" | "generic", _)), _) => ebpf.program(palisade_abi::PROG_XDP_BLOCK),
        (Some(("tc", _)), _) => ebpf.program(palisade_abi::PROG_TC_BLOCK_INGRESS),
        _ => ebpf.program(palisade_abi::PROG_TC_INGRESS),
    };
    if let Some(info) = measured.and_then(|p| p.info().ok()) {
        println!(
            "stats run_time_ns={} run_cnt={}",
            info.run_time().as_nanos(),
            info.run_count()
        );
    }
    drop(noop);
    drop(ebpf);
    drop(pins);
    Ok(())
}
