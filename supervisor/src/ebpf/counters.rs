//! Kernel counters (`pal_stats`, `pal_dns_stats`, per CPU), summed for
//! `status`. Names come from `palisade_abi::kernel_counters`, so a new
//! counter shows up without a change here.

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray},
};
use palisade_ipc::messages::KernelCounter;

/// Reads every counter; `Err` names what failed.
pub fn read(ebpf: &Ebpf) -> Result<Vec<KernelCounter>, String> {
    let mut out = Vec::new();
    for def in palisade_abi::kernel_counters() {
        let map = ebpf
            .map(def.map)
            .ok_or_else(|| format!("map {} missing", def.map))?;
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| format!("{}: {e}", def.map))?;
        let values = array
            .get(&def.key, 0)
            .map_err(|e| format!("{}[{}] (BPF_MAP_LOOKUP_ELEM): {e}", def.map, def.key))?;
        out.push(KernelCounter {
            group: def.group.to_owned(),
            counter: def.name.to_owned(),
            value: values.iter().sum(),
        });
    }
    Ok(out)
}
