//! Feeding the kernel's domain policy. Everything here is the supervisor's to call (it needs
//! CAP_BPF; workers never touch policy maps).
//!
//! # Rule sets
//!
//! A rule set is a hash map `u64 name hash -> DnsRule` that the TC program finds in slot 0 of
//! `pal_dns_policy` ([`palisade_abi::MAP_DNS_POLICY`]). It is never edited in place: a reload builds a
//! complete new map and swaps it in with one update of the slot, so every packet is judged by
//! either the old or the new set, never a mix, and never by an empty one.
//!
//! ```no_run
//! # fn demo(outer: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
//! use palisade_ebpf::dns_policy::{RuleKind, RuleSetBuilder, swap_in};
//!
//! let mut rules = RuleSetBuilder::new();
//! rules.add("ads.example.com", RuleKind::BlockSuffix, 1).expect("valid name");
//! rules.add("ok.ads.example.com", RuleKind::AllowExact, 2).expect("valid name");
//! let map = rules.build()?; // BPF_MAP_CREATE + BPF_MAP_UPDATE_BATCH
//! swap_in(outer, &map)?; // BPF_MAP_UPDATE_ELEM on pal_dns_policy[0]
//! // `map` can be dropped now: the slot holds its own reference.
//! # Ok(()) }
//! ```
//!
//! Semantics in the kernel, per query or answer name: if any allow rule matches (an exact allow
//! on the name itself, or a suffix allow on the name or any parent) the message passes; else
//! the most specific block rule (or an unexpired learned block of the exact name) blocks it.
//!
//! Several list entries for one name share one map key; [`RuleSetBuilder`] merges them:
//! a suffix allow covers everything; an exact allow plus a suffix block become one entry that
//! allows the name and blocks its subdomains ([`palisade_abi::DNS_RULE_BLOCK_SUBDOMAINS`], counted
//! under the block rule's id); otherwise allow beats block and suffix beats exact. The first
//! id given for a kind is kept.
//!
//! Rule-set maps are preallocated hash maps (`map_flags` 0, the same as the template the outer
//! map was created with; the kernel refuses an inner map whose flags differ). Their size is
//! free: for hash maps the kernel does not require `max_entries` to match the template.
//! Kernel memory is 80 bytes per entry (77 MiB for a million names; the crate README has the
//! measurement), twice that while a new set is built next to the current one.
//!
//! # Learned blocks, block action, counters
//!
//! [`learn`] adds an exact-name block with an expiry to `pal_dns_learned`; [`prune_learned`]
//! removes expired ones (the kernel ignores them but does not delete them). [`set_block_action`]
//! writes `pal_dns_config`. Per-rule hits are in `pal_dns_hits` ([`read_hits`]); the policy's
//! counters in `pal_dns_stats` ([`palisade_abi::DnsStat`], [`palisade_abi::kernel_counters`]).
//!
//! Every error is an `io::Error` whose message names the failed bpf(2) command; its inner error
//! is a [`BpfCallError`] carrying the errno.

use std::{
    collections::HashMap,
    io,
    os::fd::{AsFd, OwnedFd},
    time::Duration,
};

pub use palisade_abi::RuleKind;
use palisade_abi::{
    BlockAction, DNS_RULE_BLOCK_SUBDOMAINS, DNS_RULE_EXACT, DnsConfig, DnsLearned, DnsRule,
    dns_name::{NameError, hash_name},
};

use crate::sys;

/// Name given to rule-set maps (visible in `bpftool map`).
pub const RULE_MAP_NAME: &str = "pal_dns_rules";

/// The rules of one name, by kind (first id wins), before merging into one map value.
#[derive(Debug, Default, Clone, Copy)]
struct NameRules {
    block_exact: Option<u32>,
    block_suffix: Option<u32>,
    allow_exact: Option<u32>,
    allow_suffix: Option<u32>,
}

impl NameRules {
    fn add(&mut self, kind: RuleKind, rule_id: u32) {
        let slot = match kind {
            RuleKind::BlockExact => &mut self.block_exact,
            RuleKind::BlockSuffix => &mut self.block_suffix,
            RuleKind::AllowExact => &mut self.allow_exact,
            RuleKind::AllowSuffix => &mut self.allow_suffix,
        };
        slot.get_or_insert(rule_id);
    }

    /// One map value with the same verdicts as all the rules together.
    fn merge(&self) -> Option<DnsRule> {
        Some(match *self {
            Self {
                allow_suffix: Some(id),
                ..
            } => DnsRule::new(RuleKind::AllowSuffix, id),
            Self {
                allow_exact: Some(_),
                block_suffix: Some(id),
                ..
            } => DnsRule {
                flags: DNS_RULE_EXACT | DNS_RULE_BLOCK_SUBDOMAINS,
                ..DnsRule::new(RuleKind::AllowExact, id)
            },
            Self {
                allow_exact: Some(id),
                ..
            } => DnsRule::new(RuleKind::AllowExact, id),
            Self {
                block_suffix: Some(id),
                ..
            } => DnsRule::new(RuleKind::BlockSuffix, id),
            Self {
                block_exact: Some(id),
                ..
            } => DnsRule::new(RuleKind::BlockExact, id),
            Self { .. } => return None,
        })
    }
}

/// Hashes `u64` keys that already are (FNV) hashes: by themselves.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type KeyMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// Collects list entries and turns them into the contents of one rule-set map.
#[derive(Debug, Default, Clone)]
pub struct RuleSetBuilder {
    names: KeyMap<NameRules>,
}

impl RuleSetBuilder {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set with room for `names` distinct names.
    pub fn with_capacity(names: usize) -> Self {
        Self {
            names: KeyMap::with_capacity_and_hasher(names, Default::default()),
        }
    }

    /// Adds a rule for `name` (normalized here, see [`palisade_abi::dns_name`]); returns its hash. A
    /// name the kernel could never match is refused with the reason.
    pub fn add(&mut self, name: &str, kind: RuleKind, rule_id: u32) -> Result<u64, NameError> {
        let hash = hash_name(name)?;
        self.add_hash(hash, kind, rule_id);
        Ok(hash)
    }

    /// Adds a rule for an already computed [`palisade_abi::dns_name::name_hash`].
    pub fn add_hash(&mut self, hash: u64, kind: RuleKind, rule_id: u32) {
        self.names.entry(hash).or_default().add(kind, rule_id);
    }

    /// Distinct names (map entries).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no rule was added.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The map contents, sorted by hash (a stable order, e.g. for hashing the kernel state).
    pub fn entries(&self) -> Vec<(u64, DnsRule)> {
        let mut entries: Vec<(u64, DnsRule)> = self
            .names
            .iter()
            .filter_map(|(&hash, rules)| rules.merge().map(|rule| (hash, rule)))
            .collect();
        entries.sort_unstable_by_key(|&(hash, _)| hash);
        entries
    }

    /// Creates a rule-set map exactly the size of the set (at least 1 entry) and fills it.
    pub fn build(&self) -> io::Result<OwnedFd> {
        let entries = self.entries();
        let map = create_rule_map(u32::try_from(entries.len().max(1)).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "more than 2^32 DNS rules")
        })?)?;
        fill(&map, &entries)?;
        Ok(map)
    }
}

/// Creates an empty rule-set map (`BPF_MAP_CREATE`: hash, `u64` -> [`DnsRule`], flags 0) for
/// up to `max_entries` names, ready for [`fill`] and [`swap_in`].
pub fn create_rule_map(max_entries: u32) -> io::Result<OwnedFd> {
    sys::map_create(
        sys::MAP_TYPE_HASH,
        size_of::<u64>() as u32,
        DnsRule::SIZE as u32,
        max_entries,
        0,
        RULE_MAP_NAME,
    )
}

/// Stores `rules` in a rule-set map: `BPF_MAP_UPDATE_BATCH` in chunks, or one
/// `BPF_MAP_UPDATE_ELEM` per rule where the kernel has no batch support for the map.
pub fn fill(map: impl AsFd, rules: &[(u64, DnsRule)]) -> io::Result<()> {
    sys::map_fill(
        map.as_fd(),
        rules,
        |(hash, _), out| out.extend_from_slice(&hash.to_ne_bytes()),
        |(_, rule), out| out.extend_from_slice(&rule.to_bytes()),
    )
}

/// Makes `inner` the current rule set: `BPF_MAP_UPDATE_ELEM` of slot 0 of `pal_dns_policy`
/// (`outer`) with the inner map's descriptor. Atomic for the data path; the previous rule set
/// is freed once no program run uses it any more (and no descriptor refers to it).
pub fn swap_in(outer: impl AsFd, inner: impl AsFd) -> io::Result<()> {
    let fd = u32::try_from(std::os::fd::AsRawFd::as_raw_fd(&inner.as_fd()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    sys::map_update(
        outer.as_fd(),
        &0_u32.to_ne_bytes(),
        &fd.to_ne_bytes(),
        sys::ANY,
    )
}

/// Empties slot 0 of `pal_dns_policy` (`BPF_MAP_DELETE_ELEM`): no rule set, only learned blocks
/// apply. `Ok(false)` if it was already empty.
pub fn clear(outer: impl AsFd) -> io::Result<bool> {
    sys::map_delete(outer.as_fd(), &0_u32.to_ne_bytes())
}

/// The kernel id of the current rule-set map (`BPF_MAP_LOOKUP_ELEM` on slot 0), `None` when the
/// slot is empty.
pub fn current_inner_id(outer: impl AsFd) -> io::Result<Option<u32>> {
    let mut id = [0_u8; 4];
    Ok(
        sys::map_lookup(outer.as_fd(), &0_u32.to_ne_bytes(), &mut id)?
            .then(|| u32::from_ne_bytes(id)),
    )
}

/// A descriptor of the current rule-set map (`BPF_MAP_GET_FD_BY_ID`), to read it back.
pub fn open_current(outer: impl AsFd) -> io::Result<Option<OwnedFd>> {
    current_inner_id(outer)?.map(sys::map_fd_by_id).transpose()
}

/// Whether `map` is an `ARRAY_OF_MAPS` (a sanity check for the outer map descriptor).
pub fn is_policy_map(map: impl AsFd) -> io::Result<bool> {
    let facts = crate::maps::map_facts(map)?;
    Ok(facts.map_type == sys::MAP_TYPE_ARRAY_OF_MAPS && facts.max_entries >= 1)
}

/// Every entry of a rule-set map, sorted by hash ([`crate::maps::for_each_entry`]).
pub fn read_rules(map: impl AsFd) -> io::Result<Vec<(u64, DnsRule)>> {
    let mut rules = Vec::new();
    crate::maps::for_each_entry(map, |key, value| {
        let hash = u64::from_ne_bytes(key.try_into().unwrap_or_default());
        let rule = DnsRule::from_bytes(value)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
        rules.push((hash, rule));
        Ok(())
    })?;
    rules.sort_unstable_by_key(|&(hash, _)| hash);
    Ok(rules)
}

/// Writes the block action to `pal_dns_config` (`config`), slot 0.
pub fn set_block_action(config: impl AsFd, action: BlockAction) -> io::Result<()> {
    let value = DnsConfig {
        block_action: action.raw(),
        _pad: 0,
    };
    sys::set_slot0(config.as_fd(), &value.to_bytes())
}

/// The block action in `pal_dns_config`; `None` for a value the kernel does not know (treated
/// as off).
pub fn block_action(config: impl AsFd) -> io::Result<Option<BlockAction>> {
    let mut value = [0_u8; DnsConfig::SIZE];
    sys::map_lookup(config.as_fd(), &0_u32.to_ne_bytes(), &mut value)?;
    let config = DnsConfig::from_bytes(&value)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    Ok(BlockAction::from_raw(config.block_action))
}

/// Now on the kernel's boot clock (`CLOCK_BOOTTIME`, the clock of `expires_boot_ns`).
pub fn boot_time_ns() -> io::Result<u64> {
    sys::boot_time_ns()
}

/// Blocks the exact name with hash `hash` for `ttl` from now (`pal_dns_learned`, insert or
/// refresh). Fails with `E2BIG` when the map is full: [`prune_learned`] first.
pub fn learn(learned: impl AsFd, hash: u64, rule_id: u32, ttl: Duration) -> io::Result<()> {
    let ttl_ns = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
    let value = DnsLearned {
        rule_id,
        _pad: 0,
        expires_boot_ns: boot_time_ns()?.saturating_add(ttl_ns),
    };
    sys::map_update(
        learned.as_fd(),
        &hash.to_ne_bytes(),
        &value.to_bytes(),
        sys::ANY,
    )
}

/// Removes a learned block; `Ok(false)` if there was none.
pub fn forget(learned: impl AsFd, hash: u64) -> io::Result<bool> {
    sys::map_delete(learned.as_fd(), &hash.to_ne_bytes())
}

/// Deletes the learned blocks that expired (the kernel ignores but keeps them); returns how
/// many went.
pub fn prune_learned(learned: impl AsFd) -> io::Result<usize> {
    let map = learned.as_fd();
    let now = boot_time_ns()?;
    let mut expired = Vec::new();
    let mut key: Option<[u8; 8]> = None;
    let mut next = [0_u8; 8];
    while sys::map_next_key(map, key.as_ref().map(|k| &k[..]), &mut next)? {
        let mut value = [0_u8; DnsLearned::SIZE];
        if sys::map_lookup(map, &next, &mut value)? {
            let entry = DnsLearned::from_bytes(&value)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            if entry.expires_boot_ns <= now {
                expired.push(next);
            }
        }
        key = Some(next);
    }
    let mut removed = 0;
    for key in expired {
        if sys::map_delete(map, &key)? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Deletes every learned block (start-up, reload); returns how many went.
pub fn clear_learned(learned: impl AsFd) -> io::Result<usize> {
    let map = learned.as_fd();
    let mut keys = Vec::new();
    let mut key: Option<[u8; 8]> = None;
    let mut next = [0_u8; 8];
    while sys::map_next_key(map, key.as_ref().map(|k| &k[..]), &mut next)? {
        keys.push(next);
        key = Some(next);
    }
    let mut removed = 0;
    for key in keys {
        if sys::map_delete(map, &key)? {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_abi::{
        DNS_ALLOW, DNS_BLOCK,
        dns_name::{name_hash, normalize},
    };

    fn hash(name: &str) -> u64 {
        name_hash(&normalize(name).unwrap_or_default())
    }

    /// What the kernel decides for `name` with `rules` (no learned blocks): a user-space model of
    /// `match_body()` over the name's suffixes.
    fn verdict(rules: &[(u64, DnsRule)], name: &str) -> Option<u8> {
        let table: HashMap<u64, DnsRule> = rules.iter().copied().collect();
        let normalized = normalize(name).unwrap_or_default();
        let mut block = None;
        for (i, suffix) in palisade_abi::dns_name::suffixes(&normalized).enumerate() {
            match table
                .get(&name_hash(suffix))
                .and_then(|rule| rule.decides(i == 0))
            {
                Some(DNS_ALLOW) => return Some(DNS_ALLOW),
                Some(DNS_BLOCK) if block.is_none() => block = Some(DNS_BLOCK),
                _ => {}
            }
        }
        block
    }

    #[test]
    fn merging_keeps_every_verdict() {
        let mut set = RuleSetBuilder::new();
        set.add("bad.test", RuleKind::BlockSuffix, 1)
            .unwrap_or_default();
        set.add("Bad.Test.", RuleKind::AllowExact, 2)
            .unwrap_or_default();
        set.add("exact.test", RuleKind::BlockExact, 3)
            .unwrap_or_default();
        set.add("exact.test", RuleKind::BlockSuffix, 4)
            .unwrap_or_default();
        set.add("open.test", RuleKind::BlockSuffix, 5)
            .unwrap_or_default();
        set.add("open.test", RuleKind::AllowSuffix, 6)
            .unwrap_or_default();
        set.add("only.test", RuleKind::AllowExact, 7)
            .unwrap_or_default();
        set.add("only.test", RuleKind::BlockExact, 8)
            .unwrap_or_default();
        set.add("only.test", RuleKind::AllowExact, 9)
            .unwrap_or_default();
        assert_eq!(set.len(), 4);
        let rules = set.entries();
        assert!(rules.is_sorted_by_key(|&(hash, _)| hash), "sorted by hash");
        let by_hash: HashMap<u64, DnsRule> = rules.iter().copied().collect();
        assert_eq!(
            by_hash.get(&hash("bad.test")),
            Some(&DnsRule {
                rule_id: 1,
                action: DNS_ALLOW,
                flags: DNS_RULE_EXACT | DNS_RULE_BLOCK_SUBDOMAINS,
                _pad: 0
            })
        );
        assert_eq!(
            by_hash.get(&hash("exact.test")),
            Some(&DnsRule::new(RuleKind::BlockSuffix, 4))
        );
        assert_eq!(
            by_hash.get(&hash("open.test")),
            Some(&DnsRule::new(RuleKind::AllowSuffix, 6))
        );
        assert_eq!(
            by_hash.get(&hash("only.test")),
            Some(&DnsRule::new(RuleKind::AllowExact, 7)),
            "first id of a kind wins"
        );

        assert_eq!(verdict(&rules, "bad.test"), Some(DNS_ALLOW));
        assert_eq!(verdict(&rules, "x.bad.test"), Some(DNS_BLOCK));
        assert_eq!(verdict(&rules, "x.y.bad.test"), Some(DNS_BLOCK));
        assert_eq!(verdict(&rules, "exact.test"), Some(DNS_BLOCK));
        assert_eq!(verdict(&rules, "a.exact.test"), Some(DNS_BLOCK));
        assert_eq!(verdict(&rules, "a.open.test"), Some(DNS_ALLOW));
        assert_eq!(verdict(&rules, "only.test"), Some(DNS_ALLOW));
        assert_eq!(verdict(&rules, "a.only.test"), None);
        assert_eq!(verdict(&rules, "test"), None);
    }

    #[test]
    fn bad_names_are_refused() {
        let mut set = RuleSetBuilder::new();
        assert_eq!(
            set.add("..", RuleKind::BlockExact, 1),
            Err(NameError::EmptyLabel)
        );
        assert!(set.is_empty());
    }
}
