//! The flow table's control side: creating its shards (`pal_flows` holds
//! [`FLOW_SHARDS`] hash maps the supervisor creates from its memory budget), configuring the
//! kernel sweeper (idle and emergency timeouts, update interval) and arming its timer, reading
//! what it reports, and seeding flows (conntrack). Only the supervisor calls these; workers
//! never write a map.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
};

use palisade_abi::{FLOW_SHARDS, FlowConfig, FlowEndArgs, FlowKey, FlowSweep, FlowValue};

use crate::sys;

/// What the sweeper is told to do (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// UDP, ICMP: idle time after which a flow ends.
    pub idle_ns: u64,
    /// TCP without FIN pair or RST: idle time after which a flow ends.
    pub tcp_idle_ns: u64,
    /// Period of update records; 0 for none.
    pub update_ns: u64,
}

/// Emergency: a shard whose walk found this share of its capacity live (7/8) is walked in
/// emergency next time, and its flows idle for their timeout / [`EMERGENCY_DIVISOR`] (at
/// least [`EMERGENCY_MIN_NS`]) are ended with reason `evicted`.
const EMERGENCY_NUM: u64 = 7;
const EMERGENCY_DEN: u64 = 8;
/// Divisor of the idle timeouts in emergency.
pub const EMERGENCY_DIVISOR: u64 = 16;
/// Shortest emergency idle timeout.
pub const EMERGENCY_MIN_NS: u64 = 1_000_000_000;

impl Timeouts {
    /// The period of a whole walk: a quarter of the shortest period it serves, within
    /// [100 ms, 1 s], so a flow ends at most 25% (or 1 s) after its timeout, and a closed TCP
    /// flow at most 1 s after its 1 s linger. Each tick walks one shard, every
    /// period / [`FLOW_SHARDS`].
    pub fn sweep_interval_ns(&self) -> u64 {
        const MIN: u64 = 100_000_000;
        const MAX: u64 = 1_000_000_000;
        let shortest = [self.idle_ns, self.tcp_idle_ns, self.update_ns]
            .into_iter()
            .filter(|&ns| ns > 0)
            .min()
            .unwrap_or(MAX);
        (shortest / 4).clamp(MIN, MAX)
    }

    /// The kernel's configuration for shards of `shard_capacity` flows each.
    pub fn config(&self, shard_capacity: u32) -> FlowConfig {
        let emergency = |ns: u64| (ns / EMERGENCY_DIVISOR).max(EMERGENCY_MIN_NS).min(ns);
        FlowConfig {
            idle_timeout_ns: self.idle_ns,
            tcp_idle_timeout_ns: self.tcp_idle_ns,
            update_interval_ns: self.update_ns,
            sweep_interval_ns: self.sweep_interval_ns(),
            emergency_idle_ns: emergency(self.idle_ns),
            emergency_tcp_idle_ns: emergency(self.tcp_idle_ns),
            emergency_live: u64::from(shard_capacity) * EMERGENCY_NUM / EMERGENCY_DEN,
        }
    }
}

/// Creates one empty shard (`BPF_MAP_CREATE`: hash, no preallocation, [`FlowKey`] ->
/// [`FlowValue`]) for `capacity` flows: memory is taken as flows arrive.
pub fn create_shard(capacity: u32) -> io::Result<OwnedFd> {
    sys::map_create(
        sys::MAP_TYPE_HASH,
        FlowKey::SIZE as u32,
        FlowValue::SIZE as u32,
        capacity,
        sys::F_NO_PREALLOC,
        "pal_flow_shard",
    )
}

/// Puts `shard` in slot `index` of `pal_flows` (`outer`) if the slot is empty; `Ok(false)`
/// if it already holds a shard (a table pinned by a previous run). Map-in-map slots only
/// take `BPF_ANY`, so this looks first; the supervisor is the slots' only writer.
pub fn install_shard(outer: BorrowedFd<'_>, index: u32, shard: BorrowedFd<'_>) -> io::Result<bool> {
    if has_shard(outer, index)? {
        return Ok(false);
    }
    replace_shard(outer, index, shard)?;
    Ok(true)
}

/// Puts `shard` in slot `index` of `pal_flows` (`outer`), whatever was there.
pub fn replace_shard(outer: BorrowedFd<'_>, index: u32, shard: BorrowedFd<'_>) -> io::Result<()> {
    let fd = u32::try_from(shard.as_raw_fd())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    sys::map_update(outer, &index.to_ne_bytes(), &fd.to_ne_bytes(), sys::ANY)
}

/// Creates and installs a shard of `shard_capacity` flows in every empty slot of `pal_flows`
/// (`outer`); returns the shards it installed, in slot order (for tests and tools; the
/// supervisor also pins them).
pub fn install_shards(outer: BorrowedFd<'_>, shard_capacity: u32) -> io::Result<Vec<OwnedFd>> {
    let mut installed = Vec::new();
    for index in 0..FLOW_SHARDS {
        let shard = create_shard(shard_capacity)?;
        if install_shard(outer, index, shard.as_fd())? {
            installed.push(shard);
        }
    }
    Ok(installed)
}

/// Whether slot `index` of `pal_flows` holds a shard.
pub fn has_shard(outer: BorrowedFd<'_>, index: u32) -> io::Result<bool> {
    let mut id = [0_u8; 4];
    sys::map_lookup(outer, &index.to_ne_bytes(), &mut id)
}

/// Pins a shard at `path` (`BPF_OBJ_PIN`), so that a restarted supervisor can open it.
pub fn pin_shard(shard: BorrowedFd<'_>, path: &std::path::Path) -> io::Result<()> {
    sys::obj_pin(shard, path)
}

/// Opens a pinned shard (`BPF_OBJ_GET`).
pub fn open_shard(path: &std::path::Path) -> io::Result<OwnedFd> {
    sys::obj_get(path)
}

/// The capacity (`max_entries`) of a shard.
pub fn shard_capacity(shard: impl AsFd) -> io::Result<u32> {
    Ok(crate::maps::map_facts(shard)?.max_entries)
}

/// Writes the configuration (`pal_flow_config`) for shards of `shard_capacity` flows, then
/// (re)arms the sweeper's timer by running `arm_prog` (`pal_flow_timer_arm`) once. Safe to
/// repeat: a running timer is re-pointed at `arm_prog`'s code and restarted with the new
/// period.
pub fn configure(
    config: BorrowedFd<'_>,
    arm_prog: BorrowedFd<'_>,
    t: Timeouts,
    shard_capacity: u32,
) -> io::Result<()> {
    sys::set_slot0(config, &t.config(shard_capacity).to_bytes())?;
    // A minimal Ethernet frame: BPF_PROG_TEST_RUN wants at least a link-layer header.
    let frame = [0u8; 14];
    match sys::prog_test_run(arm_prog, &frame, 1, None)?.0 {
        0 => Ok(()),
        step => Err(io::Error::other(format!(
            "arming the flow sweeper timer failed at step {step} (pal_flow_timer_arm)"
        ))),
    }
}

/// Runs `pal_flow_end_all` once: ends up to `budget` open flows of shard `shard` with their
/// end record (reason shutdown). Returns how many it ended.
pub fn end_batch(end_all_prog: BorrowedFd<'_>, shard: u32, budget: u32) -> io::Result<u32> {
    // struct pal_flow_end_args, in a frame of the 14 bytes BPF_PROG_TEST_RUN wants at least.
    let mut frame = [0u8; 14];
    for (slot, byte) in frame
        .iter_mut()
        .zip(FlowEndArgs { shard, budget }.to_bytes())
    {
        *slot = byte;
    }
    sys::prog_test_run(end_all_prog, &frame, 1, None).map(|(ended, _, _)| ended)
}

/// Reads `pal_flow_sweep`: what the latest walk of each shard saw, in shard order.
pub fn sweep_state(sweep: BorrowedFd<'_>) -> io::Result<Vec<FlowSweep>> {
    (0..FLOW_SHARDS)
        .map(|shard| {
            let mut value = [0u8; FlowSweep::SIZE];
            sys::map_lookup(sweep, &shard.to_ne_bytes(), &mut value)?;
            FlowSweep::from_bytes(&value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        })
        .collect()
}

/// Inserts `value` under `key` into `shard` (the one [`palisade_abi::flow_shard`] names)
/// unless the key exists (`BPF_NOEXIST`): a flow the kernel already tracks wins over a
/// seeded one. Returns whether it was inserted.
pub fn seed(shard: BorrowedFd<'_>, key: &FlowKey, value: &FlowValue) -> io::Result<bool> {
    match sys::map_update(shard, &key.to_bytes(), &value.to_bytes(), sys::NOEXIST) {
        Ok(()) => Ok(true),
        Err(e) if sys::errno(&e) == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every flow in a shard (`BPF_MAP_GET_NEXT_KEY` + lookup; entries that vanish meanwhile
/// are skipped).
pub fn dump(flows: BorrowedFd<'_>) -> io::Result<Vec<(FlowKey, FlowValue)>> {
    let mut out = Vec::new();
    let mut key: Option<[u8; FlowKey::SIZE]> = None;
    let mut next = [0u8; FlowKey::SIZE];
    let mut value = [0u8; FlowValue::SIZE];
    while sys::map_next_key(flows, key.as_ref().map(|k| &k[..]), &mut next)? {
        if sys::map_lookup(flows, &next, &mut value)? {
            let k = FlowKey::from_bytes(&next)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let v = FlowValue::from_bytes(&value)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            out.push((k, v));
        }
        key = Some(next);
    }
    Ok(out)
}

/// How many entries a shard holds, whatever its key layout (`BPF_MAP_GET_NEXT_KEY` with the
/// key size the kernel reports): also for the table of another ABI version, about to go.
pub fn count(shard: impl AsFd) -> io::Result<u64> {
    let size = crate::maps::map_facts(shard.as_fd())?.key_size as usize;
    let (mut key, mut next) = (vec![0u8; size], vec![0u8; size]);
    let mut n = 0u64;
    let mut first = true;
    while sys::map_next_key(shard.as_fd(), (!first).then_some(&key[..]), &mut next)? {
        n += 1;
        first = false;
        std::mem::swap(&mut key, &mut next);
    }
    Ok(n)
}

/// The flow of `key` in `shard` (the one [`palisade_abi::flow_shard`] names), if tracked.
pub fn lookup(shard: BorrowedFd<'_>, key: &FlowKey) -> io::Result<Option<FlowValue>> {
    let mut value = [0u8; FlowValue::SIZE];
    if !sys::map_lookup(shard, &key.to_bytes(), &mut value)? {
        return Ok(None);
    }
    FlowValue::from_bytes(&value)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
