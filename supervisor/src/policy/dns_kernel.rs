//! Writing the DNS policy into the kernel maps (the supervisor is the only
//! writer). A rule set is built into a fresh map and swapped into the
//! `pal_dns_policy` map-of-maps slot in one update, so no packet ever sees
//! a half-loaded or empty list; learned names go to `pal_dns_learned`.
//! The bpf(2) calls themselves live in `palisade_ebpf::dns_policy`.

use std::time::Duration;

use palisade_abi::{
    MAP_DNS_CONFIG, MAP_DNS_HITS, MAP_DNS_LEARNED, MAP_DNS_POLICY, dns_name::name_hash,
};
use palisade_ebpf::dns_policy::{self, RuleKind as KernelKind, RuleSetBuilder};

use super::{
    dns::{Action, BlockAction, RuleSet},
    dns_lists::Match,
};
use crate::ebpf::maps::{KernelError, Maps, on as err};

/// Builds the rule set's kernel map, swaps it in, and sets the action.
/// Returns the number of map entries (names) in the kernel.
pub fn apply(maps: &dyn Maps, rules: &RuleSet, action: BlockAction) -> Result<u32, KernelError> {
    apply_holding(maps, rules, action).map(|(n, _)| n)
}

/// [`apply`], also returning the descriptor of the map swapped in, so that the daemon can
/// read it back for drift checks (reopening it by id would need CAP_SYS_ADMIN).
pub fn apply_holding(
    maps: &dyn Maps,
    rules: &RuleSet,
    action: BlockAction,
) -> Result<(u32, std::os::fd::OwnedFd), KernelError> {
    let builder = builder(rules);
    let map = builder.build().map_err(err("new DNS rule map"))?;
    dns_policy::swap_in(maps.fd(MAP_DNS_POLICY)?, &map).map_err(err(MAP_DNS_POLICY))?;
    let action = match action {
        BlockAction::Nxdomain => palisade_abi::BlockAction::Nxdomain,
        BlockAction::Drop => palisade_abi::BlockAction::Drop,
        BlockAction::Off => palisade_abi::BlockAction::Off,
    };
    dns_policy::set_block_action(maps.fd(MAP_DNS_CONFIG)?, action).map_err(err(MAP_DNS_CONFIG))?;
    Ok((builder.len() as u32, map))
}

/// Writes only the block action (`palisade feature enable|disable dns-blocking`).
pub fn set_action(maps: &dyn Maps, action: BlockAction) -> Result<(), KernelError> {
    let action = match action {
        BlockAction::Nxdomain => palisade_abi::BlockAction::Nxdomain,
        BlockAction::Drop => palisade_abi::BlockAction::Drop,
        BlockAction::Off => palisade_abi::BlockAction::Off,
    };
    dns_policy::set_block_action(maps.fd(MAP_DNS_CONFIG)?, action).map_err(err(MAP_DNS_CONFIG))
}

/// The [`Digest`](palisade_ebpf::maps::Digest) of the kernel map [`apply`] builds for
/// `rules`: what a drift check compares the live map with.
pub fn digest(rules: &RuleSet) -> palisade_ebpf::maps::Digest {
    let mut d = palisade_ebpf::maps::Digest::default();
    for (hash, rule) in builder(rules).entries() {
        d.add(&hash.to_ne_bytes(), &rule.to_bytes());
    }
    d
}

fn builder(rules: &RuleSet) -> RuleSetBuilder {
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
    builder
}

/// Adds a learned exact-name block for `ttl`.
pub fn learn(maps: &dyn Maps, name: &str, rule_id: u32, ttl: Duration) -> Result<(), KernelError> {
    dns_policy::learn(maps.fd(MAP_DNS_LEARNED)?, name_hash(name), rule_id, ttl)
        .map_err(err(MAP_DNS_LEARNED))
}

/// Removes a learned name.
pub fn forget(maps: &dyn Maps, name: &str) -> Result<(), KernelError> {
    dns_policy::forget(maps.fd(MAP_DNS_LEARNED)?, name_hash(name))
        .map(|_| ())
        .map_err(err(MAP_DNS_LEARNED))
}

/// Removes every learned name (start-up, reload).
pub fn clear_learned(maps: &dyn Maps) -> Result<(), KernelError> {
    dns_policy::clear_learned(maps.fd(MAP_DNS_LEARNED)?)
        .map(drop)
        .map_err(err(MAP_DNS_LEARNED))
}

/// Per-rule hit counters, summed over CPUs.
pub fn hits(maps: &dyn Maps) -> Result<Vec<(u32, u64)>, KernelError> {
    maps.hits(MAP_DNS_HITS)
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "a panic is a test failure")]
mod tests {
    //! The DNS policy transactions against the fake kernel (no root): what ends up in each map,
    //! and that a failed swap leaves the rule set in force untouched.

    use palisade_abi::{DNS_BLOCK, DnsConfig, DnsRule, RuleKind};

    use super::*;
    use crate::{ebpf::maps::fake::FakeMaps, policy::dns::DnsLists};

    fn rule_set(block: &str, allow: &str) -> (RuleSet, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        let (b, a) = (dir.path().join("block"), dir.path().join("allow"));
        std::fs::write(&b, block).expect("write");
        std::fs::write(&a, allow).expect("write");
        let lists = DnsLists {
            blocklists: vec![b],
            allowlists: vec![a],
            regex_lists: vec![],
            encrypted_dns: vec![],
        };
        (RuleSet::load(&lists).expect("valid lists"), dir)
    }

    fn current(maps: &FakeMaps) -> Option<Vec<(u64, DnsRule)>> {
        let outer = maps.fd(MAP_DNS_POLICY).expect("outer");
        dns_policy::open_current(outer)
            .expect("open")
            .map(|inner| dns_policy::read_rules(&inner).expect("read"))
    }

    #[test]
    fn apply_swaps_a_complete_rule_set_and_sets_the_action() {
        let maps = FakeMaps::new();
        assert_eq!(current(&maps), None, "fresh object: empty slot");
        let (set, _dir) = rule_set("ads.example\n||tracker.example^\n", "ok.tracker.example\n");
        let n = apply(&maps, &set, BlockAction::Nxdomain).expect("apply");
        let rules = current(&maps).expect("a rule set in the slot");
        assert_eq!(rules.len(), n as usize);
        let get = |name: &str| {
            rules
                .iter()
                .find(|(h, _)| *h == name_hash(name))
                .map(|(_, r)| *r)
        };
        let exact_block = DnsRule::new(RuleKind::BlockExact, 0);
        assert_eq!(
            get("ads.example").map(|r| (r.action, r.flags)),
            Some((exact_block.action, exact_block.flags))
        );
        assert_eq!(get("tracker.example").map(|r| r.action), Some(DNS_BLOCK));
        assert!(get("ok.tracker.example").is_some());
        let config = maps.entries(MAP_DNS_CONFIG);
        let value = DnsConfig::from_bytes(&config[0].1).expect("config");
        assert_eq!(
            palisade_abi::BlockAction::from_raw(value.block_action),
            Some(palisade_abi::BlockAction::Nxdomain)
        );
    }

    #[test]
    fn a_failed_swap_leaves_the_old_rule_set_in_force() {
        let maps = FakeMaps::new();
        let (old, _d1) = rule_set("old.example\n", "");
        apply(&maps, &old, BlockAction::Drop).expect("apply");
        let before = current(&maps);

        let (new, _d2) = rule_set("a.example\nb.example\n", "");
        // The new map fills; the swap into the outer map fails.
        maps.kernel
            .fail_on("BPF_MAP_UPDATE_ELEM", MAP_DNS_POLICY, libc::ENOMEM);
        let error = apply(&maps, &new, BlockAction::Nxdomain).expect_err("swap fails");
        let text = crate::error_chain(&error);
        assert!(
            text.starts_with("pal_dns_policy: BPF_MAP_UPDATE_ELEM"),
            "{text}"
        );
        assert_eq!(current(&maps), before, "the rule set in force is untouched");
        let config = DnsConfig::from_bytes(&maps.entries(MAP_DNS_CONFIG)[0].1).expect("config");
        assert_eq!(
            palisade_abi::BlockAction::from_raw(config.block_action),
            Some(palisade_abi::BlockAction::Drop),
            "the action is written only after the swap"
        );
    }

    #[test]
    fn learned_blocks_are_added_removed_and_cleared() {
        let maps = FakeMaps::new();
        learn(&maps, "x.example", 7, Duration::from_secs(60)).expect("learn");
        learn(&maps, "y.example", 8, Duration::from_secs(60)).expect("learn");
        let hashes = |m: &FakeMaps| -> Vec<u64> {
            let mut h: Vec<u64> = m
                .entries(MAP_DNS_LEARNED)
                .iter()
                .map(|(k, _)| u64::from_ne_bytes(k[..8].try_into().expect("8 bytes")))
                .collect();
            h.sort_unstable();
            h
        };
        let mut both = vec![name_hash("x.example"), name_hash("y.example")];
        both.sort_unstable();
        assert_eq!(hashes(&maps), both);
        let entry = maps.entries(MAP_DNS_LEARNED);
        let value = palisade_abi::DnsLearned::from_bytes(&entry[0].1).expect("value");
        assert!(value.rule_id == 7 || value.rule_id == 8);
        assert!(value.expires_boot_ns > 0);

        forget(&maps, "x.example").expect("forget");
        assert_eq!(hashes(&maps), vec![name_hash("y.example")]);
        forget(&maps, "never.example").expect("forgetting an absent name is not an error");
        clear_learned(&maps).expect("clear");
        assert!(hashes(&maps).is_empty());
    }

    #[test]
    fn a_full_learned_map_is_an_error_naming_the_map() {
        let maps = FakeMaps::new();
        maps.kernel.fail("BPF_MAP_UPDATE_ELEM", 0, libc::E2BIG);
        let error = learn(&maps, "x.example", 7, Duration::from_secs(60)).expect_err("full");
        assert_eq!(
            crate::error_chain(&error),
            "pal_dns_learned: BPF_MAP_UPDATE_ELEM: Argument list too long (os error 7)"
        );
    }
}
