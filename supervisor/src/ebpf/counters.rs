//! Kernel counters (`pal_stats`, per CPU), summed for `status`.

use aya::maps::{Map, PerCpuArray};
use palisade_ipc::messages::KernelCounter;

/// Names of the counter groups, by group index.
const GROUPS: [&str; 5] = ["dns", "dhcp", "tls", "flow", "global"];
/// Names of the counter slots, by slot index.
const SLOTS: [&str; 5] = ["records", "ring_full", "truncated", "not_parsed", "map_full"];

const _: () = assert!(GROUPS.len() == palisade_ebpf::STATS_GLOBAL as usize + 1);
const _: () = assert!(SLOTS.len() == palisade_ebpf::STAT_COUNT as usize);

/// Reads every counter; `Err` names what failed.
pub fn read(map: &Map) -> Result<Vec<KernelCounter>, String> {
    let array: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(|e| format!("pal_stats: {e}"))?;
    let mut out = Vec::with_capacity(GROUPS.len() * SLOTS.len());
    for (g, group) in GROUPS.iter().enumerate() {
        for (s, slot) in SLOTS.iter().enumerate() {
            let index = (g * SLOTS.len() + s) as u32;
            let values = array.get(&index, 0).map_err(|e| format!("pal_stats[{index}] (BPF_MAP_LOOKUP_ELEM): {e}"))?;
            let value = values.iter().sum();
            out.push(KernelCounter { group: (*group).to_owned(), counter: (*slot).to_owned(), value });
        }
    }
    Ok(out)
}
