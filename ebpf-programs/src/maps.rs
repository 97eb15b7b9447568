//! Helpers for any of the object's maps: a descriptor from aya's view of a map, facts about a
//! map, per-CPU hit counters.

use std::{
    io,
    os::fd::{AsFd, OwnedFd},
};

use crate::sys;

/// The descriptor of one of the object's maps as aya loaded it (the policy maps are of kinds
/// aya has no typed wrapper for here), e.g. `map_fd(ebpf.map(MAP_DNS_POLICY)?)`. `None` for map
/// kinds this crate does not use.
pub fn map_fd(map: &aya::maps::Map) -> Option<std::os::fd::BorrowedFd<'_>> {
    use aya::maps::Map;
    match map {
        Map::ArrayOfMaps(data)
        | Map::Array(data)
        | Map::HashMap(data)
        | Map::PerCpuArray(data)
        | Map::PerCpuLruHashMap(data)
        | Map::PerCpuHashMap(data)
        | Map::LruHashMap(data)
        | Map::RingBuf(data) => Some(data.fd().as_fd()),
        _ => None,
    }
}

/// Per-rule hit counts from `pal_dns_hits`, summed over CPUs, sorted by rule id.
pub fn read_hits(hits: &aya::maps::Map) -> Result<Vec<(u32, u64)>, aya::maps::MapError> {
    let map = aya::maps::PerCpuHashMap::<_, u32, u64>::try_from(hits)?;
    let mut all = Vec::new();
    for entry in map.iter() {
        let (rule_id, per_cpu) = entry?;
        all.push((rule_id, per_cpu.iter().sum()));
    }
    all.sort_unstable();
    Ok(all)
}

/// Facts about a map (`BPF_OBJ_GET_INFO_BY_FD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapFacts {
    /// Kernel map id.
    pub id: u32,
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
    /// `map_flags` it was created with.
    pub map_flags: u32,
    /// Its name (at most 15 bytes).
    pub name: String,
}

/// [`MapFacts`] of any map descriptor.
pub fn map_facts(map: impl AsFd) -> io::Result<MapFacts> {
    let info = sys::map_info(map.as_fd())?;
    let name_len = info
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(info.name.len());
    Ok(MapFacts {
        id: info.id,
        map_type: info.map_type,
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        map_flags: info.map_flags,
        name: String::from_utf8_lossy(info.name.get(..name_len).unwrap_or_default()).into_owned(),
    })
}

/// Pins a map (or any BPF object) held by descriptor at `path` (`BPF_OBJ_PIN`): how a pin
/// removed from outside is put back.
pub fn pin(object: impl AsFd, path: &std::path::Path) -> io::Result<()> {
    sys::obj_pin(object.as_fd(), path)
}

/// Opens a pinned map (or any BPF object) at `path` (`BPF_OBJ_GET`).
pub fn open_pinned(path: &std::path::Path) -> io::Result<OwnedFd> {
    sys::obj_get(path)
}

/// Slot 0 of a one-entry array (the config maps), `value_size` bytes.
pub fn read_slot0(map: impl AsFd) -> io::Result<Vec<u8>> {
    let size = map_facts(map.as_fd())?.value_size as usize;
    let mut value = vec![0_u8; size];
    sys::map_lookup(map.as_fd(), &0_u32.to_ne_bytes(), &mut value)?;
    Ok(value)
}

/// An order-independent digest of a set of (key, value) entries: their number and two
/// folds (sum and xor) of a 64-bit hash of each, so that it can be computed from a map in
/// whatever order the kernel returns it, or from the entries the supervisor meant to write.
/// Not a cryptographic commitment: it detects changes made by mistake or by a tool, which is
/// what drift is (a process with CAP_BPF could forge anything anyway).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest {
    /// Entries.
    pub entries: u64,
    sum: u64,
    xor: u64,
}

impl Digest {
    /// Adds one entry.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        // FNV-1a over key, a separator and value, then a 64-bit finaliser (splitmix) so that
        // sum and xor of similar entries do not cancel.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in key.iter().chain(&[0xff]).chain(value) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        self.entries += 1;
        self.sum = self.sum.wrapping_add(h);
        self.xor ^= h;
    }
}

/// Entries per `BPF_MAP_LOOKUP_BATCH` call of [`for_each_entry`] (also bounds a hash
/// bucket's length, see ENOSPC).
const LOOKUP_BATCH: u32 = 1 << 12;

/// Calls `f` with every (key, value) of a map, read with `BPF_MAP_LOOKUP_BATCH`, or key by
/// key (`BPF_MAP_GET_NEXT_KEY` + `BPF_MAP_LOOKUP_ELEM`) where the map type has no batch
/// operations (LPM tries). Entries that vanish meanwhile are skipped. Stops at `f`'s first
/// error.
pub fn for_each_entry(
    map: impl AsFd,
    mut f: impl FnMut(&[u8], &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let map = map.as_fd();
    let facts = map_facts(map)?;
    let (ks, vs) = (facts.key_size as usize, facts.value_size as usize);
    let mut keys = vec![0_u8; LOOKUP_BATCH as usize * ks];
    let mut values = vec![0_u8; LOOKUP_BATCH as usize * vs];
    // The batch position is opaque; for hash maps it is a bucket number (u32), for arrays
    // the key: the larger of the two covers both.
    let (mut position, mut next) = (vec![0_u8; ks.max(4)], vec![0_u8; ks.max(4)]);
    let mut first = true;
    loop {
        let batch = sys::map_lookup_batch(
            map,
            (!first).then_some(&position[..]),
            &mut next,
            &mut keys,
            &mut values,
            LOOKUP_BATCH,
        );
        let (count, done) = match batch {
            Ok(result) => result,
            Err(error)
                if first
                    && matches!(
                        sys::errno(&error),
                        Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS | 524)
                    ) =>
            {
                return for_each_by_key(map, ks, vs, f);
            }
            Err(error) => return Err(error),
        };
        for (k, v) in keys
            .chunks_exact(ks)
            .zip(values.chunks_exact(vs))
            .take(count as usize)
        {
            f(k, v)?;
        }
        if done {
            return Ok(());
        }
        std::mem::swap(&mut position, &mut next);
        first = false;
    }
}

fn for_each_by_key(
    map: std::os::fd::BorrowedFd<'_>,
    key_size: usize,
    value_size: usize,
    mut f: impl FnMut(&[u8], &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let (mut key, mut next) = (vec![0_u8; key_size], vec![0_u8; key_size]);
    let mut value = vec![0_u8; value_size];
    let mut first = true;
    while sys::map_next_key(map, (!first).then_some(&key[..]), &mut next)? {
        if sys::map_lookup(map, &next, &mut value)? {
            f(&next, &value)?;
        }
        std::mem::swap(&mut key, &mut next);
        first = false;
    }
    Ok(())
}

/// The [`Digest`] of every entry of a map.
pub fn digest(map: impl AsFd) -> io::Result<Digest> {
    let mut out = Digest::default();
    for_each_entry(map, |k, v| {
        out.add(k, v);
        Ok(())
    })?;
    Ok(out)
}

/// Writes slot 0 of a one-entry array (a config map): how a value changed from outside is
/// put back.
pub fn write_slot0(map: impl AsFd, value: &[u8]) -> io::Result<()> {
    sys::set_slot0(map.as_fd(), value)
}
