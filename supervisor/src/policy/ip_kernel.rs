//! Writing the IP policy into the kernel maps (the supervisor is the only
//! writer). A reload builds a fresh LPM trie per family and swaps it into
//! the `pal_ip4_policy` / `pal_ip6_policy` slot in one update; runtime rules
//! are single element updates of the live trie. A family without any rule
//! has an empty slot, so the programs stop after one array lookup. The IPv4
//! pre-filter (`pal_ip4_filter`, a bit per /16) always covers every prefix in
//! the trie: bits are set before a prefix goes in, and cleared only by a
//! reload, after the new trie is in place.
//! The bpf(2) calls themselves live in `palisade_ebpf::ip_policy`.

use std::{collections::HashMap, os::fd::BorrowedFd};

use palisade_abi::{MAP_IP_CONFIG, MAP_IP_HITS, MAP_IP4_FILTER};
use palisade_ebpf::{
    dns_policy::map_fd,
    ip_policy::{self, Family},
};

use super::ip::{IpState, KernelChange, MAX_RUNTIME_RULES, unix_now};
use crate::ebpf::loader::Loaded;

/// Kernel IP policy errors; each names the map and the bpf(2) command.
#[derive(Debug, thiserror::Error)]
pub enum IpKernelError {
    /// A map is missing from the object (a bug).
    #[error("map {0} missing from the eBPF object")]
    MissingMap(&'static str),
    /// A map operation failed (the io::Error names the bpf command).
    #[error("{map}")]
    Map {
        map: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn fd<'a>(loaded: &'a Loaded, name: &'static str) -> Result<BorrowedFd<'a>, IpKernelError> {
    loaded
        .ebpf
        .map(name)
        .and_then(map_fd)
        .ok_or(IpKernelError::MissingMap(name))
}

fn err(map: &'static str) -> impl FnOnce(std::io::Error) -> IpKernelError {
    move |source| IpKernelError::Map { map, source }
}

/// Prefixes in the kernel, per family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounts {
    /// IPv4 prefixes.
    pub v4: u32,
    /// IPv6 prefixes.
    pub v6: u32,
}

/// Builds both tries from `state` and swaps them in; writes the alert rate.
pub fn apply(
    loaded: &Loaded,
    state: &IpState,
    alerts_per_second: u32,
) -> Result<KernelCounts, IpKernelError> {
    let boot = ip_policy::boot_time_ns().map_err(err("CLOCK_BOOTTIME"))?;
    let entries = state.kernel_entries(unix_now(), boot);
    let mut counts = KernelCounts::default();
    // IPv4 pre-filter: a superset of the old and new rules' /16s while the trie is swapped,
    // exactly the new ones after.
    let filter = fd(loaded, MAP_IP4_FILTER)?;
    let old_bits = ip_policy::read_filter(filter).map_err(err(MAP_IP4_FILTER))?;
    let new_bits = ip_policy::filter_bits(entries.first().into_iter().flatten().map(|(p, _)| p));
    let both: Vec<u64> = old_bits
        .iter()
        .zip(new_bits.iter())
        .map(|(o, n)| o | n)
        .collect();
    ip_policy::write_filter(filter, &old_bits, &both).map_err(err(MAP_IP4_FILTER))?;
    for (family, rules) in Family::ALL.into_iter().zip(entries.iter()) {
        let outer = fd(loaded, family.outer_map())?;
        if rules.is_empty() {
            ip_policy::clear(outer).map_err(err(family.outer_map()))?;
            continue;
        }
        let trie =
            ip_policy::build(family, rules, MAX_RUNTIME_RULES).map_err(err("new IP trie"))?;
        ip_policy::swap_in(outer, &trie).map_err(err(family.outer_map()))?;
        let n = u32::try_from(rules.len()).unwrap_or(u32::MAX);
        match family {
            Family::V4 => counts.v4 = n,
            Family::V6 => counts.v6 = n,
        }
    }
    ip_policy::write_filter(filter, &both, &new_bits).map_err(err(MAP_IP4_FILTER))?;
    ip_policy::set_alert_rate(
        fd(loaded, MAP_IP_CONFIG)?,
        alerts_per_second,
        alerts_per_second,
    )
    .map_err(err(MAP_IP_CONFIG))?;
    Ok(counts)
}

/// Carries out one runtime change in the live trie (creating the trie if the family had
/// none). Returns the change in the prefix count of its family (+1, 0, -1).
pub fn change(loaded: &Loaded, change: KernelChange) -> Result<i8, IpKernelError> {
    match change {
        KernelChange::None => Ok(0),
        KernelChange::Set(prefix, rule) => {
            let family = prefix.family();
            // The /16 bit first: a prefix in the trie is never hidden by the pre-filter.
            ip_policy::filter_add(fd(loaded, MAP_IP4_FILTER)?, &prefix)
                .map_err(err(MAP_IP4_FILTER))?;
            let outer = fd(loaded, family.outer_map())?;
            match ip_policy::open_current(outer).map_err(err(family.outer_map()))? {
                Some(trie) => {
                    let existed = ip_policy::lookup(&trie, prefix)
                        .map_err(err(family.outer_map()))?
                        .is_some();
                    ip_policy::insert(&trie, prefix, rule).map_err(err(family.outer_map()))?;
                    Ok(if existed { 0 } else { 1 })
                }
                None => {
                    let trie = ip_policy::build(family, &[(prefix, rule)], MAX_RUNTIME_RULES)
                        .map_err(err("new IP trie"))?;
                    ip_policy::swap_in(outer, &trie).map_err(err(family.outer_map()))?;
                    Ok(1)
                }
            }
        }
        KernelChange::Delete(prefix) => {
            let family = prefix.family();
            let outer = fd(loaded, family.outer_map())?;
            match ip_policy::open_current(outer).map_err(err(family.outer_map()))? {
                Some(trie) => {
                    let removed =
                        ip_policy::remove(&trie, prefix).map_err(err(family.outer_map()))?;
                    Ok(if removed { -1 } else { 0 })
                }
                None => Ok(0),
            }
        }
    }
}

/// Per-rule hit counters, summed over CPUs.
pub fn hits(loaded: &Loaded) -> Result<HashMap<u32, u64>, IpKernelError> {
    let map = loaded
        .ebpf
        .map(MAP_IP_HITS)
        .ok_or(IpKernelError::MissingMap(MAP_IP_HITS))?;
    palisade_ebpf::dns_policy::read_hits(map)
        .map(|v| v.into_iter().collect())
        .map_err(|e| IpKernelError::Map {
            map: MAP_IP_HITS,
            source: std::io::Error::other(e),
        })
}
