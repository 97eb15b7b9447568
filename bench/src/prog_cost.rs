//! `prog-cost`: the kernel-side cost of Palisade's TC program per packet, without a
//! device: `BPF_PROG_TEST_RUN` runs `pal_tc_ingress` (and, for reference, the no-op
//! program) a million times on one frame and the kernel reports the mean ns per run.
//! Frames: a UDP datagram to port 9 (the flow-table path only: lookup, counters), a DNS
//! query (the DNS policy's lookup, recorded), a TCP
//! segment with payload (flow path, TLS check), an IPv4 fragment (parsed, ignored), a DHCP
//! server message and a router advertisement (recorded; the guard's path with `--guard`),
//! an ICMPv6 echo (not neighbour discovery) and an ARP request (recorded).
//! Each is measured `--reps` times; the median is printed. The flow table, its maps and
//! the rings live under a scratch pin directory removed at the end.

use std::{os::fd::AsFd, path::PathBuf, process::Command};

use aya::{Ebpf, EbpfLoader, programs::SchedClassifier};
use serde::Serialize;

use crate::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The no-op program's object (bench/bpf/noop.bpf.c, compiled).
    #[arg(long)]
    noop: PathBuf,
    /// Runs per measurement.
    #[arg(long, default_value_t = 1_000_000)]
    repeat: u32,
    /// Measurements per frame (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Measure this compiled palisade.bpf.c instead of the embedded one (A/B comparisons
    /// of kernel-side changes; same ABI as this build).
    #[arg(long)]
    object: Option<PathBuf>,
    /// Put N connections (none of the frames') into the flow-block map first, as the TLS
    /// policy does: the cost of its lookup when blocks exist.
    #[arg(long, default_value_t = 0)]
    flow_blocks: u32,
    /// Turn the DHCP guard on (`alert` or `drop`) with one allow-list entry that none of the
    /// frames' senders match, as `[dhcp] allowed_servers` does: the guard's cost on the DHCP
    /// server and router advertisement frames.
    #[arg(long)]
    guard: Option<String>,
    /// Switch these captures off (comma-separated: dns, dhcp, tls, flow), as `palisade
    /// feature disable capture-NAME` does: the cost of a frame whose record is not made.
    #[arg(long, value_delimiter = ',')]
    capture_off: Vec<String>,
    /// Run a packet trace as `palisade trace` does: `other` (its filter matches none of the
    /// frames: the cost every other packet pays while a trace runs) or `all` (every frame
    /// matches and writes its event; the trace ring is drained between measurements, so
    /// --repeat must be at most 10000).
    #[arg(long)]
    trace: Option<String>,
}

/// Events `rb_trace` holds (1 MiB of 88-byte events and their 8-byte headers), rounded down.
const TRACE_RING_EVENTS: u32 = 10_000;

#[derive(Debug, Serialize)]
struct Cost {
    frame: &'static str,
    noop_ns: u32,
    palisade_ns: u32,
    /// Palisade minus the no-op program: its own work per packet.
    added_ns: i64,
}

fn frame(l4: &[u8], proto: u8, frag_off: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&frag_off.to_be_bytes());
    f.extend_from_slice(&[64, proto, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1]);
    f.extend_from_slice(l4);
    f
}

/// An IPv6 frame carrying `l4` (next header `next`), hop limit 255, fe80::2 -> ff02::1.
fn frame6(l4: &[u8], next: u8) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next, 255]);
    f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(l4);
    f
}

fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let mut udp = vec![0x9c, 0x40, 0, 9, 0, 26, 0, 0];
    udp.extend_from_slice(&[b'a'; 18]);
    let mut tcp = vec![
        0x9c, 0x41, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ];
    tcp.extend_from_slice(&[b'x'; 100]);
    // 1300-byte UDP payloads: big enough to be looked at as QUIC; one is not
    // a long header, the other is a v1 Initial (copied to the TLS ring).
    let big = |first: u8| {
        let mut u = vec![0x9c, 0x42, 0x01, 0xbb, 0x05, 0x1c, 0, 0];
        u.extend_from_slice(&[first, 0, 0, 0, 1]);
        u.resize(8 + 1300, 0);
        u
    };
    // A DHCPv4 server message (67 -> 68): a BOOTP reply with the magic cookie, 300 bytes.
    let mut offer = vec![0, 67, 0, 68, 0x01, 0x34, 0, 0];
    offer.extend_from_slice(&[2, 1, 6, 0]);
    offer.resize(8 + 236, 0);
    offer.extend_from_slice(&[99, 130, 83, 99, 53, 1, 2, 255]);
    offer.resize(8 + 300, 0);
    // A router advertisement with a source link-layer address option.
    let ra = [
        134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 2,
    ];
    // A DNS query (A example.com) to port 53: the DNS policy's lookup and a record.
    let mut dns = vec![0x9c, 0x43, 0, 53, 0, 37, 0, 0];
    dns.extend_from_slice(&[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    dns.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
    // An ICMPv6 echo request: ICMPv6 that is not neighbour discovery.
    let echo = [128, 0, 0, 0, 0, 1, 0, 1, b'p', b'i', b'n', b'g'];
    // An ARP request (Ethernet, IPv4), padded to the Ethernet minimum.
    let mut arp = vec![
        2, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x08, 0x06,
    ];
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 198, 18, 0, 2]);
    arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 198, 18, 0, 1]);
    arp.resize(60, 0);
    vec![
        ("udp-port-9", frame(&udp, 17, 0)),
        ("dns-query", frame(&dns, 17, 0)),
        ("udp-1300-not-quic", frame(&big(0x40), 17, 0)),
        ("quic-initial-1300", frame(&big(0xc3), 17, 0)),
        ("tcp-data", frame(&tcp, 6, 0)),
        ("ipv4-later-fragment", frame(&udp, 17, 185)),
        ("dhcp-server-message", frame(&offer, 17, 0)),
        ("icmp6-router-advert", frame6(&ra, 58)),
        ("icmp6-echo", frame6(&echo, 58)),
        ("arp-request", arp),
    ]
}

fn median(mut v: Vec<u32>) -> u32 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    let prog: &mut SchedClassifier = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} missing"))?
        .try_into()
        .map_err(|e| format!("{name}: {e}"))?;
    prog.load().map_err(|e| format!("loading {name}: {e}"))?;
    Ok(prog)
}

/// The median ns per run of program `name` on `data`; `trace`, the trace ring, is emptied
/// after each measurement.
fn cost(
    ebpf: &Ebpf,
    name: &str,
    data: &[u8],
    args: &Args,
    mut trace: Option<&mut palisade_ebpf::trace::Reader>,
) -> Result<u32> {
    let prog = ebpf
        .program(name)
        .ok_or_else(|| format!("program {name} missing"))?;
    let fd = prog.fd().map_err(|e| format!("{name}: {e}"))?;
    let runs = (0..args.reps)
        .map(|_| {
            let ns = palisade_ebpf::prog_test_run(fd.as_fd(), data, args.repeat)
                .map(|(_, ns)| ns)
                .map_err(|e| format!("{name}: {e}"));
            if let Some(reader) = trace.as_deref_mut() {
                while !reader.drain(4096).0.is_empty() {}
            }
            ns
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok(median(runs))
}

/// A trace running for an hour: on no frame (`other`: a host none of them has) or on all.
fn trace_on(
    palisade: &Ebpf,
    mode: &str,
    repeat: u32,
) -> Result<Option<palisade_ebpf::trace::Reader>> {
    let fd = |name| {
        palisade
            .map(name)
            .and_then(palisade_ebpf::maps::map_fd)
            .ok_or_else(|| format!("{name} missing (an object before packet tracing?)"))
    };
    let filter = match mode {
        "other" => palisade_ebpf::trace::Filter {
            host: Some("203.0.113.1".parse().map_err(|e| format!("{e}"))?),
            ..Default::default()
        },
        "all" if repeat <= TRACE_RING_EVENTS => palisade_ebpf::trace::Filter::default(),
        "all" => {
            return Err(format!(
                "--trace all needs --repeat {TRACE_RING_EVENTS} or less"
            ));
        }
        other => return Err(format!("--trace {other}: other or all")),
    };
    let boot_ns = {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid timespec for clock_gettime to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    };
    palisade_ebpf::trace::start(
        fd(palisade_abi::MAP_TRACE_CONFIG)?,
        &filter,
        boot_ns + 3_600_000_000_000,
    )
    .map_err(|e| format!("pal_trace_config: {e}"))?;
    let reader = palisade_ebpf::trace::Reader::open(fd(palisade_abi::MAP_RB_TRACE)?)
        .map_err(|e| format!("rb_trace: {e}"))?;
    Ok(Some(reader))
}

/// `n` blocked connections between 10.0.0.0/8 addresses, and a generation.
fn fill_flow_blocks(palisade: &Ebpf, n: u32) -> Result<()> {
    let fd = |name| {
        palisade
            .map(name)
            .and_then(palisade_ebpf::maps::map_fd)
            .ok_or_else(|| format!("{name} missing (an object before flow blocks?)"))
    };
    let blocks = fd(palisade_abi::MAP_FLOW_BLOCK)?;
    for i in 0..n {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&(0x0a00_0000 | i).to_be_bytes());
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[10, 255, 255, 254]);
        let (key, _) = palisade_abi::FlowKey::normalized(4, 6, (a, 40000), (b, 443));
        let block = palisade_abi::FlowBlock {
            expires_ns: u64::MAX,
            ..palisade_abi::FlowBlock::default()
        };
        palisade_ebpf::flow_block::insert(blocks, &key, &block)
            .map_err(|e| format!("pal_flow_block: {e}"))?;
    }
    palisade_ebpf::flow_block::set_generation(fd(palisade_abi::MAP_FLOW_BLOCK_ACTIVE)?, 1)
        .map_err(|e| format!("pal_flow_block_active: {e}"))
}

/// The captures of `names` switched off.
fn capture_off(palisade: &Ebpf, names: &[String]) -> Result<()> {
    let mut off = 0u32;
    for name in names {
        off |= 1
            << match name.as_str() {
                "dns" => palisade_abi::RING_DNS,
                "dhcp" => palisade_abi::RING_DHCP,
                "tls" => palisade_abi::RING_TLS,
                "flow" => palisade_abi::RING_FLOW,
                other => return Err(format!("--capture-off {other}: dns, dhcp, tls or flow")),
            };
    }
    let fd = palisade
        .map(palisade_abi::MAP_CAPTURE_CONFIG)
        .and_then(palisade_ebpf::maps::map_fd)
        .ok_or("pal_capture_config missing (an object before the capture switches?)")?;
    palisade_ebpf::capture::set(fd, off, palisade_abi::FLOW_STARTS_ALL)
        .map_err(|e| format!("pal_capture_config: {e}"))
}

/// The guard in `mode` with one allow-list entry (a MAC none of the frames has).
fn guard_on(palisade: &Ebpf, mode: &str) -> Result<()> {
    let fd = |name| {
        palisade
            .map(name)
            .and_then(palisade_ebpf::maps::map_fd)
            .ok_or_else(|| format!("{name} missing (an object before the DHCP guard?)"))
    };
    let mode = match mode {
        "alert" => palisade_abi::GUARD_ALERT,
        "drop" => palisade_abi::GUARD_DROP,
        other => return Err(format!("--guard {other}: alert or drop")),
    };
    palisade_ebpf::guard::set_allowed(
        fd(palisade_abi::MAP_GUARD_ALLOW)?,
        &[palisade_abi::GuardKey::mac([2, 0, 0, 0, 0, 0x99])],
    )
    .map_err(|e| format!("pal_guard_allow: {e}"))?;
    palisade_ebpf::guard::set_mode(fd(palisade_abi::MAP_GUARD_CONFIG)?, mode)
        .map_err(|e| format!("pal_guard_config: {e}"))?;
    Ok(())
}

pub fn main(args: &Args) -> Result<()> {
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/palisade-prog-cost-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&pins).map_err(|e| format!("mkdir {}: {e}", pins.display()))?;
    let result = (|| {
        let other = match &args.object {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?)
            }
            None => None,
        };
        let mut palisade = EbpfLoader::new()
            .default_map_pin_directory(&pins)
            .load(other.as_deref().unwrap_or(palisade_ebpf::PALISADE_BPF))
            .map_err(|e| format!("loading Palisade's object: {e}"))?;
        classifier(&mut palisade, palisade_abi::PROG_TC_INGRESS)?;
        // A sharded flow table (ABI 4) is empty until someone fills its slots, as the
        // supervisor does: without shards the program would skip the flow update. An
        // object with a single flow map (before) needs nothing.
        let _shards = palisade
            .map(palisade_abi::MAP_FLOWS)
            .and_then(palisade_ebpf::maps::map_fd)
            .filter(|fd| palisade_ebpf::maps::map_facts(*fd).is_ok_and(|f| f.key_size == 4))
            .map(|fd| palisade_ebpf::flow_table::install_shards(fd, 16_384))
            .transpose()
            .map_err(|e| format!("flow table shards: {e}"))?;
        if args.flow_blocks > 0 {
            fill_flow_blocks(&palisade, args.flow_blocks)?;
        }
        if let Some(mode) = &args.guard {
            guard_on(&palisade, mode)?;
        }
        if !args.capture_off.is_empty() {
            capture_off(&palisade, &args.capture_off)?;
        }
        let mut trace = match &args.trace {
            Some(mode) => trace_on(&palisade, mode, args.repeat)?,
            None => None,
        };
        let mut noop = Ebpf::load_file(&args.noop)
            .map_err(|e| format!("loading {}: {e}", args.noop.display()))?;
        classifier(&mut noop, "bench_noop")?;
        let mut out = Vec::new();
        for (name, data) in frames() {
            let noop_ns = cost(&noop, "bench_noop", &data, args, None)?;
            let palisade_ns = cost(
                &palisade,
                palisade_abi::PROG_TC_INGRESS,
                &data,
                args,
                trace.as_mut(),
            )?;
            out.push(Cost {
                frame: name,
                noop_ns,
                palisade_ns,
                added_ns: i64::from(palisade_ns) - i64::from(noop_ns),
            });
        }
        println!(
            "{}",
            serde_json::to_string(&out).map_err(|e| e.to_string())?
        );
        Ok(())
    })();
    let _ = Command::new("rm").arg("-rf").arg(&pins).status();
    result
}
