//! Helpers for any of the object's maps: a descriptor from aya's view of a map, facts about a
//! map, per-CPU hit counters.

use std::{io, os::fd::AsFd};

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
