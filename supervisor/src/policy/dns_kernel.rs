//! Writing the DNS policy into the kernel maps (the supervisor is the only
//! writer). A rule set is built into a fresh map and swapped into the
//! `pal_dns_policy` map-of-maps slot in one update, so no packet ever sees
//! a half-loaded or empty list; learned names go to `pal_dns_learned`.
//! The bpf(2) calls themselves live in `palisade_ebpf::dns_policy`.

use std::{os::fd::BorrowedFd, time::Duration};

use palisade_abi::{
    MAP_DNS_CONFIG, MAP_DNS_HITS, MAP_DNS_LEARNED, MAP_DNS_POLICY, dns_name::name_hash,
};
use palisade_ebpf::dns_policy::{self, RuleKind as KernelKind, RuleSetBuilder};

use super::{
    dns::{Action, BlockAction, RuleSet},
    dns_lists::Match,
};
use crate::ebpf::loader::Loaded;

/// Kernel policy errors; each names the map and the bpf(2) command.
#[derive(Debug, thiserror::Error)]
pub enum KernelPolicyError {
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

fn fd<'a>(loaded: &'a Loaded, name: &'static str) -> Result<BorrowedFd<'a>, KernelPolicyError> {
    loaded
        .ebpf
        .map(name)
        .and_then(dns_policy::map_fd)
        .ok_or(KernelPolicyError::MissingMap(name))
}

fn err(map: &'static str) -> impl FnOnce(std::io::Error) -> KernelPolicyError {
    move |source| KernelPolicyError::Map { map, source }
}

/// Builds the rule set's kernel map, swaps it in, and sets the action.
/// Returns the number of map entries (names) in the kernel.
pub fn apply(
    loaded: &Loaded,
    rules: &RuleSet,
    action: BlockAction,
) -> Result<u32, KernelPolicyError> {
    let mut builder = RuleSetBuilder::with_capacity(rules.len());
    for (hash, action, kind, id) in rules.name_rules() {
        let kind = match (action, kind) {
            (Action::Block, Match::Exact) => KernelKind::BlockExact,
            (Action::Block, Match::Suffix) => KernelKind::BlockSuffix,
            (Action::Allow, Match::Exact) => KernelKind::AllowExact,
            (Action::Allow, Match::Suffix) => KernelKind::AllowSuffix,
        };
        builder.add_hash(hash, kind, id);
    }
    let map = builder.build().map_err(err("new DNS rule map"))?;
    dns_policy::swap_in(fd(loaded, MAP_DNS_POLICY)?, &map).map_err(err(MAP_DNS_POLICY))?;
    let action = match action {
        BlockAction::Nxdomain => palisade_abi::BlockAction::Nxdomain,
        BlockAction::Drop => palisade_abi::BlockAction::Drop,
    };
    dns_policy::set_block_action(fd(loaded, MAP_DNS_CONFIG)?, action)
        .map_err(err(MAP_DNS_CONFIG))?;
    Ok(builder.len() as u32)
}

/// Adds a learned exact-name block for `ttl`.
pub fn learn(
    loaded: &Loaded,
    name: &str,
    rule_id: u32,
    ttl: Duration,
) -> Result<(), KernelPolicyError> {
    dns_policy::learn(fd(loaded, MAP_DNS_LEARNED)?, name_hash(name), rule_id, ttl)
        .map_err(err(MAP_DNS_LEARNED))
}

/// Removes a learned name.
pub fn forget(loaded: &Loaded, name: &str) -> Result<(), KernelPolicyError> {
    dns_policy::forget(fd(loaded, MAP_DNS_LEARNED)?, name_hash(name))
        .map(|_| ())
        .map_err(err(MAP_DNS_LEARNED))
}

/// Removes every learned name (start-up, reload).
pub fn clear_learned(loaded: &Loaded) -> Result<(), KernelPolicyError> {
    let map = loaded
        .ebpf
        .map(MAP_DNS_LEARNED)
        .ok_or(KernelPolicyError::MissingMap(MAP_DNS_LEARNED))?;
    let aya_err = |e: aya::maps::MapError| KernelPolicyError::Map {
        map: MAP_DNS_LEARNED,
        source: std::io::Error::other(e),
    };
    let keys: Vec<u64> = {
        let learned =
            aya::maps::HashMap::<_, u64, [u8; palisade_abi::DnsLearned::SIZE]>::try_from(map)
                .map_err(aya_err)?;
        learned.keys().collect::<Result<_, _>>().map_err(aya_err)?
    };
    let learned = fd(loaded, MAP_DNS_LEARNED)?;
    for hash in keys {
        dns_policy::forget(learned, hash).map_err(err(MAP_DNS_LEARNED))?;
    }
    Ok(())
}

/// Per-rule hit counters, summed over CPUs.
pub fn hits(loaded: &Loaded) -> Result<Vec<(u32, u64)>, KernelPolicyError> {
    let map = loaded
        .ebpf
        .map(MAP_DNS_HITS)
        .ok_or(KernelPolicyError::MissingMap(MAP_DNS_HITS))?;
    dns_policy::read_hits(map).map_err(|e| KernelPolicyError::Map {
        map: MAP_DNS_HITS,
        source: std::io::Error::other(e),
    })
}
