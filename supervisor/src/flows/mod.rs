//! The kernel flow table, supervisor side: creating (or reopening) its
//! shards, configuring and arming the kernel sweeper, seeding from conntrack
//! at start, the `status` view and the `flows top` / `flows show` listings
//! (read straight from the shards). The supervisor is the table's only
//! writer besides the kernel.

pub mod conntrack;

use std::{
    collections::BTreeMap,
    net::IpAddr,
    os::fd::{AsFd, OwnedFd},
    path::Path,
};

use palisade_abi::{
    FLOW_F_ANNOUNCE, FLOW_F_SEEDED, FLOW_SHARDS, FlowKey, FlowStat, FlowValue, MAP_FLOW_CONFIG,
    MAP_FLOW_STATS, MAP_FLOW_SWEEP, MAP_FLOWS, PROG_FLOW_END_ALL, PROG_FLOW_TIMER_ARM,
};
use palisade_ebpf::flow_table;
use palisade_ipc::messages::{FlowList, FlowOrder, FlowSummary, FlowTableStatus};

use crate::{
    config::FlowConfig,
    ebpf::{
        loader::Loaded,
        maps::{KernelError, Maps, on},
    },
};

/// Pin name of shard `index` (in the maps directory, beside `pal_flows`).
fn shard_pin(maps_dir: &Path, index: u32) -> std::path::PathBuf {
    maps_dir.join(format!("pal_flow_shard_{index}"))
}

/// Fills `loaded.flow_shards`: every slot of `pal_flows` gets a shard. A table pinned by a
/// previous run keeps its shards (and its flows; its capacity too, until `palisade cleanup`
/// or a reboot: a shard cannot be resized in place); empty slots get new shards of
/// `cfg.shard_capacity()` flows, pinned so that the next run can open them. Called before
/// anything is attached.
pub fn open_table(
    loaded: &mut Loaded,
    maps_dir: &Path,
    cfg: &FlowConfig,
) -> Result<(), KernelError> {
    let mut shards = Vec::with_capacity(FLOW_SHARDS as usize);
    for index in 0..FLOW_SHARDS {
        let pin = shard_pin(maps_dir, index);
        let outer = loaded.fd(MAP_FLOWS)?;
        let filled = flow_table::has_shard(outer, index).map_err(on(MAP_FLOWS))?;
        let shard: OwnedFd = if filled && pin.exists() {
            flow_table::open_shard(&pin).map_err(on("pinned flow table shard"))?
        } else {
            // An empty slot (a new table), or a slot whose pin is gone: a new shard, pinned.
            let _ = std::fs::remove_file(&pin);
            let shard = flow_table::create_shard(cfg.shard_capacity())
                .map_err(on("new flow table shard"))?;
            let outer = loaded.fd(MAP_FLOWS)?;
            if filled {
                // Replace the unpinned one: its flows could not be listed or seeded.
                flow_table::replace_shard(outer, index, shard.as_fd()).map_err(on(MAP_FLOWS))?;
            } else {
                flow_table::install_shard(outer, index, shard.as_fd()).map_err(on(MAP_FLOWS))?;
            }
            flow_table::pin_shard(shard.as_fd(), &pin).map_err(on("new flow table shard"))?;
            shard
        };
        shards.push(shard);
    }
    loaded.flow_shards = shards;
    Ok(())
}

/// Flows the table holds at most: what its shards were created with.
pub fn capacity(loaded: &Loaded) -> u64 {
    loaded
        .flow_shards
        .iter()
        .filter_map(|s| flow_table::shard_capacity(s).ok())
        .map(u64::from)
        .sum()
}

/// Writes the timeouts and (re)arms the kernel sweeper.
pub fn configure(loaded: &Loaded, cfg: &FlowConfig) -> Result<(), KernelError> {
    let prog = loaded
        .ebpf
        .program(PROG_FLOW_TIMER_ARM)
        .and_then(|p| p.fd().ok())
        .ok_or(KernelError::MissingProgram(PROG_FLOW_TIMER_ARM))?;
    let shard_capacity = loaded
        .flow_shards
        .first()
        .and_then(|s| flow_table::shard_capacity(s).ok())
        .unwrap_or_else(|| cfg.shard_capacity());
    flow_table::configure(
        loaded.fd(MAP_FLOW_CONFIG)?,
        prog.as_fd(),
        cfg.timeouts(),
        shard_capacity,
    )
    .map_err(on(MAP_FLOW_CONFIG))
}

/// Flows the table holds now (counted key by key; the sweeper's `live` is as old as its
/// latest walk).
pub fn live(loaded: &Loaded) -> u64 {
    loaded
        .flow_shards
        .iter()
        .filter_map(|s| flow_table::count(s).ok())
        .sum()
}

/// What [`end_all`] did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ended {
    /// Flows ended with a record (reason shutdown).
    pub flows: u64,
    /// Of them, records the flow ring had no room for (counted by the kernel as ring drops).
    pub records_lost: u64,
}

/// Ends every open flow with its end record (reason shutdown), in batches that the flow
/// ring holds, pausing between batches so the flow worker drains them: for a table that is
/// about to go away (the daemon detaches on exit). Call with the observer detached, so that
/// no packet starts a flow meanwhile, and with the flow worker still running. Stops at
/// `deadline`; flows left then are in the returned count's complement (logged by the caller).
pub fn end_all(loaded: &Loaded, deadline: std::time::Instant) -> Result<Ended, KernelError> {
    /// Time for the worker to drain one batch (4,096 records take it about 10 ms).
    const DRAIN_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
    let prog = loaded
        .ebpf
        .program(PROG_FLOW_END_ALL)
        .and_then(|p| p.fd().ok())
        .ok_or(KernelError::MissingProgram(PROG_FLOW_END_ALL))?;
    let ring_drops = || {
        crate::ebpf::counters::read(&loaded.ebpf)
            .ok()
            .and_then(|c| {
                c.iter()
                    .find(|k| k.group == "flow" && k.counter == "ring_full")
                    .map(|k| k.value)
            })
            .unwrap_or(0)
    };
    let drops_before = ring_drops();
    let mut out = Ended::default();
    // Batches of FLOW_END_BATCH, whatever shards they span: the pause comes once the ring
    // received a batch, so the worker drains 4,096 records at most between pauses.
    let mut since_pause = 0u32;
    'shards: for shard in 0..FLOW_SHARDS {
        loop {
            let budget = palisade_abi::FLOW_END_BATCH - since_pause;
            let n = flow_table::end_batch(prog.as_fd(), shard, budget)
                .map_err(on(PROG_FLOW_END_ALL))?;
            out.flows += u64::from(n);
            since_pause += n;
            if since_pause >= palisade_abi::FLOW_END_BATCH {
                if std::time::Instant::now() >= deadline {
                    break 'shards;
                }
                std::thread::sleep(DRAIN_PAUSE);
                since_pause = 0;
            }
            if n < budget {
                break; // this shard is empty
            }
        }
    }
    out.records_lost = ring_drops().saturating_sub(drops_before);
    Ok(out)
}

/// The boot clock (the kernel programs' `bpf_ktime_get_boot_ns`), ns.
pub fn boot_now_ns() -> u64 {
    clocks().0
}

/// The wall clock (CLOCK_REALTIME), ns since the epoch.
pub fn wall_now_ns() -> u64 {
    clocks().1
}

/// Whether the flow table tracks the flow of `key`.
pub fn tracks(loaded: &Loaded, key: &FlowKey) -> Result<bool, KernelError> {
    let shard = loaded
        .flow_shards
        .get(palisade_abi::flow_shard(key) as usize)
        .ok_or(KernelError::MissingMap(MAP_FLOWS))?;
    flow_table::lookup(shard.as_fd(), key)
        .map(|v| v.is_some())
        .map_err(on(MAP_FLOWS))
}

/// CLOCK_BOOTTIME and CLOCK_REALTIME now, in ns.
fn clocks() -> (u64, u64) {
    use nix::time::{ClockId, clock_gettime};
    let ns = |id| {
        clock_gettime(id).map_or(0, |t| {
            (t.tv_sec() as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(t.tv_nsec() as u64)
        })
    };
    (ns(ClockId::CLOCK_BOOTTIME), ns(ClockId::CLOCK_REALTIME))
}

/// Address bytes as the kernel stores them: network order, IPv4 in the first 4 bytes.
fn addr_bytes(addr: IpAddr) -> [u8; 16] {
    let mut out = [0; 16];
    match addr {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out = a.octets(),
    }
    out
}

fn addr_of(bytes: &[u8; 16], ip_version: u8) -> IpAddr {
    if ip_version == 4 {
        IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])
    } else {
        IpAddr::from(*bytes)
    }
}

/// The table entry for a connection from `client` to `server`, as the kernel program
/// would have made it (normalized key, `client_is_lo`), marked seeded.
fn seeded_entry(t: &conntrack::Tuple, first_seen_ns: u64, now_ns: u64) -> (FlowKey, FlowValue) {
    let icmp = matches!(t.proto, 1 | 58);
    let (sport, dport) = if icmp { (0, 0) } else { (t.sport, t.dport) };
    let (key, client_is_lo) = FlowKey::normalized(
        if t.src.is_ipv4() { 4 } else { 6 },
        t.proto,
        (addr_bytes(t.src), sport),
        (addr_bytes(t.dst), dport),
    );
    let value = FlowValue {
        first_seen_ns,
        last_seen_ns: now_ns,
        last_report_ns: now_ns,
        client_is_lo: u8::from(client_is_lo),
        flags: FLOW_F_SEEDED | FLOW_F_ANNOUNCE,
        ..FlowValue::default()
    };
    (key, value)
}

/// The open flows of the flow table pinned below `version_dir` (`<root>/v<N>`): one list
/// per shard whose layout this build shares, and what could not be read (shards of another
/// layout among them).
pub fn pinned_flows(
    version_dir: &std::path::Path,
) -> (Vec<Vec<(FlowKey, FlowValue)>>, Vec<String>) {
    let (mut tables, mut errors) = (Vec::new(), Vec::new());
    for path in crate::ebpf::pin::flow_shard_pins(version_dir) {
        let old = match flow_table::open_shard(&path) {
            Ok(fd) => fd,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let same_layout = palisade_ebpf::maps::map_facts(&old).is_ok_and(|f| {
            f.key_size as usize == FlowKey::SIZE && f.value_size as usize == FlowValue::SIZE
        });
        if !same_layout {
            errors.push(format!("{}: another key or value size", path.display()));
            continue;
        }
        match flow_table::dump(old.as_fd()) {
            Ok(e) => tables.push(e),
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    (tables, errors)
}

/// What [`end_records_pinned`] found.
#[derive(Debug, Default)]
pub struct PinnedEnds {
    /// The end records, each framed as a little-endian `u32` length and the record (what
    /// `palisade-replay --flow-ends-fd` reads).
    pub framed: Vec<u8>,
    /// Flows with a record in `framed`.
    pub flows: u64,
    /// Open flows that have none: tables of an older layout, shards that could not be read.
    pub left: u64,
    /// Why shards could not be read.
    pub errors: Vec<String>,
}

/// End records (reason `shutdown`, stamped now) for every open flow of the tables pinned
/// below `pin_root` whose layout this build reads (`FLOW_LAYOUT_SINCE` on), as the kernel's
/// `flow_end_all` writes them: for `palisade cleanup`, which removes the tables while no
/// daemon (and no flow worker) runs.
pub fn end_records_pinned(pin_root: &std::path::Path) -> PinnedEnds {
    let now = boot_now_ns();
    let versions = crate::ebpf::pin::versions(pin_root);
    let open: u64 = versions
        .iter()
        .map(|(_, dir)| crate::ebpf::pin::open_flows(dir))
        .sum();
    let mut out = PinnedEnds::default();
    for (_, dir) in versions
        .iter()
        .filter(|(v, _)| (palisade_abi::FLOW_LAYOUT_SINCE..=palisade_abi::ABI_VERSION).contains(v))
    {
        let (tables, errors) = pinned_flows(dir);
        out.errors.extend(errors);
        for (key, value) in tables.iter().flatten() {
            let rec = palisade_abi::flow_record(
                key,
                value,
                palisade_abi::KIND_FLOW_END,
                palisade_abi::FLOW_REASON_SHUTDOWN,
                now,
            );
            // A flow record is 168 bytes: the cast cannot truncate.
            out.framed
                .extend_from_slice(&(rec.len() as u32).to_le_bytes());
            out.framed.extend_from_slice(&rec);
            out.flows += 1;
        }
    }
    out.left = open.saturating_sub(out.flows);
    out
}

/// What [`carry_over`] did: the line for the log and `status`, and the pin directories
/// whose flows it took over.
#[derive(Debug, Default)]
pub struct Carried {
    /// For `status` and the log; empty when no other version's table was there.
    pub report: String,
    /// Version directories read whole.
    pub dirs: Vec<std::path::PathBuf>,
}

/// An upgrade: the open flows of another ABI version's table whose layout this build shares
/// (`FLOW_LAYOUT_SINCE`), pinned below `pins.root`, go into this table before anything of
/// this version is attached, with their counters and identity (`first_seen_ns`, so their
/// later records keep their EVE `flow_id`); they end with a record like any other flow.
/// What ties an entry to the older version's other maps is reset: TLS following and the
/// cached TLS-cut verdict (asked again). The older programs count until they are detached,
/// after this version is attached; the start calls this again then, which takes the flows
/// they started in between. Packets of the flows copied the first time that arrive between
/// the copy and this version's attach (a few ms) are not in their counters.
/// Tables of an older layout are not read (their flows are counted when their pins go).
pub fn carry_over(loaded: &Loaded, pins: &crate::ebpf::pin::PinTree) -> Carried {
    let mut out = Carried::default();
    let mut notes = Vec::new();
    for (version, dir) in pins.other_versions() {
        if !(palisade_abi::FLOW_LAYOUT_SINCE..palisade_abi::ABI_VERSION).contains(&version) {
            continue;
        }
        let (mut flows, mut known) = (0u64, 0u64);
        let (tables, mut errors) = pinned_flows(&dir);
        for entries in tables {
            for (key, mut value) in entries {
                value.tls_follow = 0;
                value.blocked = 0;
                value.block_gen = 0;
                let Some(shard) = loaded
                    .flow_shards
                    .get(palisade_abi::flow_shard(&key) as usize)
                else {
                    errors.push("no flow table".into());
                    break;
                };
                match flow_table::seed(shard.as_fd(), &key, &value) {
                    Ok(true) => flows += 1,
                    Ok(false) => known += 1,
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        let mut note = format!("carried {flows} open flows over from ABI {version}");
        if known > 0 {
            note.push_str(&format!(" ({known} already tracked)"));
        }
        if let Some(first) = errors.first() {
            note.push_str(&format!("; {} failed: {first}", errors.len()));
            tracing::warn!(pins = %dir.display(), "{note}");
        } else {
            tracing::info!(pins = %dir.display(), "{note}");
            out.dirs.push(dir);
        }
        notes.push(note);
    }
    out.report = notes.join("; ");
    out
}

/// Whether the flow table is one a previous run left pinned (its sweeper has walked it).
pub fn table_survived(loaded: &Loaded) -> bool {
    loaded
        .fd(MAP_FLOW_SWEEP)
        .ok()
        .and_then(|fd| flow_table::sweep_state(fd).ok())
        .is_some_and(|s| s.iter().any(|shard| shard.sweeps > 0))
}

/// Seeds the flow table from conntrack. Returns the line `status` shows.
/// Under NAT both sides of the translation are seeded (the pre-NAT tuple as
/// seen on the inside, the post-NAT one as seen on the outside), like the
/// program counts them. Counters start at zero: a seeded flow counts what
/// Palisade saw.
pub fn seed_from_conntrack(loaded: &Loaded) -> String {
    let entries = match conntrack::dump() {
        Ok(e) => e,
        Err(e) => {
            let report = format!("unavailable: reading conntrack over netlink failed ({e})");
            tracing::warn!("flow table not seeded: {report}");
            return report;
        }
    };
    let (boot_ns, real_ns) = clocks();
    let (mut seeded, mut skipped, mut errors) = (0u32, 0u32, Vec::new());
    for entry in &entries {
        if !entry.is_live() || !matches!(entry.orig.proto, 1 | 6 | 17 | 58) {
            skipped += 1;
            continue;
        }
        let first_seen = entry.start_realtime_ns.map_or(boot_ns, |start| {
            boot_ns.saturating_sub(real_ns.saturating_sub(start))
        });
        let mut tuples = vec![entry.orig];
        if let Some(reply) = entry.reply {
            // The outside view of a NATed connection: client = reply's destination.
            let outside = conntrack::Tuple {
                src: reply.dst,
                dst: reply.src,
                proto: reply.proto,
                sport: reply.dport,
                dport: reply.sport,
            };
            if outside != entry.orig {
                tuples.push(outside);
            }
        }
        for t in tuples {
            let (key, value) = seeded_entry(&t, first_seen, boot_ns);
            let Some(shard) = loaded
                .flow_shards
                .get(palisade_abi::flow_shard(&key) as usize)
            else {
                errors.push("no flow table".to_owned());
                continue;
            };
            match flow_table::seed(shard.as_fd(), &key, &value) {
                Ok(true) => seeded += 1,
                Ok(false) => skipped += 1,
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    let mut report = format!(
        "seeded {seeded} flows from {} conntrack entries ({skipped} closing, known or not tracked)",
        entries.len()
    );
    if let Some(first) = errors.first() {
        report.push_str(&format!("; {} inserts failed: {first}", errors.len()));
    }
    tracing::info!("{report}");
    report
}

/// The `status` view of the table.
pub fn status(loaded: &Loaded, cfg: &FlowConfig, conntrack: &str) -> FlowTableStatus {
    let mut out = FlowTableStatus {
        capacity: capacity(loaded),
        configured_capacity: cfg.capacity(),
        idle_timeout_s: cfg.idle_timeout_s,
        tcp_idle_timeout_s: cfg.tcp_idle_timeout_s,
        update_interval_s: cfg.update_interval_s,
        conntrack: conntrack.to_owned(),
        ..FlowTableStatus::default()
    };
    let sweep = loaded
        .fd(MAP_FLOW_SWEEP)
        .ok()
        .and_then(|fd| flow_table::sweep_state(fd).ok());
    let stat = |s: FlowStat| -> u64 {
        let Some(map) = loaded.ebpf.map(MAP_FLOW_STATS) else {
            return 0;
        };
        aya::maps::PerCpuArray::<_, u64>::try_from(map)
            .ok()
            .and_then(|a| a.get(&s.index(), 0).ok())
            .map_or(0, |v| v.iter().sum())
    };
    if let Some(shards) = sweep {
        let (boot_ns, _) = clocks();
        out.live = shards.iter().map(|s| s.live).sum();
        // Walks of the whole table: every shard is walked once per period.
        out.sweeps = shards.iter().map(|s| s.sweeps).min().unwrap_or(0);
        // The longest shard walk: what one tick of the sweeper costs at most.
        out.sweep_walk_us = shards.iter().map(|s| s.walk_ns).max().unwrap_or(0) / 1000;
        let last = shards.iter().map(|s| s.last_sweep_ns).max().unwrap_or(0);
        out.last_sweep_ms_ago = (last > 0).then(|| boot_ns.saturating_sub(last) / 1_000_000);
    }
    out.evicted = stat(FlowStat::EndedEvicted);
    out
}

fn proto_name(proto: u8) -> String {
    match proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "ipv6-icmp".into(),
        p => p.to_string(),
    }
}

/// One table entry as a listing row.
fn summary(
    key: &FlowKey,
    v: &FlowValue,
    now_ns: u64,
    names: &BTreeMap<u32, String>,
) -> FlowSummary {
    let lo = (addr_of(&key.addr_lo, key.ip_version), key.port_lo);
    let hi = (addr_of(&key.addr_hi, key.ip_version), key.port_hi);
    let (client, server) = if v.client_is_lo != 0 {
        (lo, hi)
    } else {
        (hi, lo)
    };
    FlowSummary {
        proto: proto_name(key.l4_proto),
        src_ip: client.0.to_string(),
        src_port: client.1,
        dest_ip: server.0.to_string(),
        dest_port: server.1,
        pkts_toserver: v.pkts[0],
        pkts_toclient: v.pkts[1],
        bytes_toserver: v.bytes[0],
        bytes_toclient: v.bytes[1],
        age_ms: now_ns.saturating_sub(v.first_seen_ns) / 1_000_000,
        idle_ms: now_ns.saturating_sub(v.last_seen_ns) / 1_000_000,
        interface: names.get(&v.ifindex).cloned().unwrap_or_default(),
        tcp_flags_ts: v.tcp_flags[0],
        tcp_flags_tc: v.tcp_flags[1],
        seeded: v.flags & FLOW_F_SEEDED != 0,
    }
}

/// Live flows matching `host` (any when `None`), biggest first by `order`, at most `limit`.
pub fn list(
    loaded: &Loaded,
    names: &BTreeMap<u32, String>,
    host: Option<IpAddr>,
    order: FlowOrder,
    limit: u32,
) -> Result<FlowList, KernelError> {
    let mut table = Vec::new();
    for shard in &loaded.flow_shards {
        table.extend(flow_table::dump(shard.as_fd()).map_err(on(MAP_FLOWS))?);
    }
    let live = table.len() as u64;
    let wanted = host.map(addr_bytes);
    let mut rows: Vec<&(FlowKey, FlowValue)> = table
        .iter()
        .filter(|(k, _)| wanted.is_none_or(|w| k.addr_lo == w || k.addr_hi == w))
        .collect();
    let weight = |v: &FlowValue| match order {
        FlowOrder::Bytes => v.bytes[0] + v.bytes[1],
        FlowOrder::Packets => v.pkts[0] + v.pkts[1],
    };
    rows.sort_by_key(|(_, v)| std::cmp::Reverse(weight(v)));
    let matched = rows.len() as u64;
    let limit = limit.min(palisade_ipc::messages::FLOW_ROWS_MAX) as usize;
    let (now_ns, _) = clocks();
    Ok(FlowList {
        live,
        matched,
        flows: rows
            .into_iter()
            .take(limit)
            .map(|(k, v)| summary(k, v, now_ns, names))
            .collect(),
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests: a panic is a test failure")]
mod tests {
    use super::*;

    #[test]
    fn seeded_entries_normalize_like_the_kernel() {
        let t = conntrack::Tuple {
            src: "198.18.0.2".parse().unwrap(),
            dst: "198.18.0.1".parse().unwrap(),
            proto: 6,
            sport: 40000,
            dport: 80,
        };
        let (key, value) = seeded_entry(&t, 5, 9);
        // The server has the lower address: it is addr_lo, and the client is not.
        assert_eq!(&key.addr_lo[..4], &[198, 18, 0, 1]);
        assert_eq!((key.port_lo, key.port_hi), (80, 40000));
        assert_eq!(value.client_is_lo, 0);
        assert_eq!(value.flags, FLOW_F_SEEDED | FLOW_F_ANNOUNCE);
        assert_eq!((value.first_seen_ns, value.last_seen_ns), (5, 9));
        let names = BTreeMap::new();
        let row = summary(&key, &value, 9, &names);
        assert_eq!(
            (row.src_ip.as_str(), row.src_port, row.dest_port),
            ("198.18.0.2", 40000, 80)
        );
        assert!(row.seeded);
    }
}
