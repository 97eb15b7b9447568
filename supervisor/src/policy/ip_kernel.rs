//! Writing the IP policy into the kernel maps (the supervisor is the only
//! writer). A reload builds a fresh LPM trie per family and swaps it into
//! the `pal_ip4_policy` / `pal_ip6_policy` slot in one update; runtime rules
//! are single element updates of the live trie. A family without any rule
//! has an empty slot, so the programs stop after one array lookup. The IPv4
//! pre-filter (`pal_ip4_filter`, a bit per /16) always covers every prefix in
//! the trie: bits are set before a prefix goes in, and cleared only by a
//! reload, after the new trie is in place.
//! The supervisor keeps a descriptor of each trie it swaps in ([`LiveTries`]) and writes
//! runtime rules through it: reopening the live trie by its id (`BPF_MAP_GET_FD_BY_ID`)
//! needs CAP_SYS_ADMIN, which the unit does not grant.
//! The bpf(2) calls themselves live in `palisade_ebpf::ip_policy`.

use std::{
    collections::HashMap,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use palisade_abi::{MAP_IP_CONFIG, MAP_IP_HITS, MAP_IP4_FILTER};
use palisade_ebpf::ip_policy::{self, Family};

use super::ip::{IpState, KernelChange, MAX_RUNTIME_RULES, unix_now};
use crate::ebpf::maps::{KernelError, Maps, on as err};

/// Prefixes in the kernel, per family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounts {
    /// IPv4 prefixes.
    pub v4: u32,
    /// IPv6 prefixes.
    pub v6: u32,
}

/// Descriptors of the tries this supervisor swapped into the `pal_ip4_policy` and
/// `pal_ip6_policy` slots (`None`: it emptied the slot). Start-up and every reload swap in
/// fresh tries or empty the slots ([`apply`]), so these are the kernel's from then on.
#[derive(Debug, Default)]
pub struct LiveTries {
    v4: Option<OwnedFd>,
    v6: Option<OwnedFd>,
}

impl LiveTries {
    fn slot(&mut self, family: Family) -> &mut Option<OwnedFd> {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    /// The trie in `family`'s slot, `None` when the slot is empty. Normally the one this
    /// supervisor swapped in; a trie it did not put there (nothing but a bug or another
    /// writer does that) is opened by its id, which needs CAP_SYS_ADMIN.
    fn live(
        &mut self,
        outer: BorrowedFd<'_>,
        family: Family,
    ) -> Result<Option<BorrowedFd<'_>>, KernelError> {
        let name = family.outer_map();
        let current = ip_policy::current_inner_id(outer).map_err(err(name))?;
        let held = self.slot(family);
        let held_id = match held.as_ref() {
            Some(fd) => Some(palisade_ebpf::maps::map_facts(fd).map_err(err(name))?.id),
            None => None,
        };
        match current {
            None => *held = None,
            Some(id) if held_id == Some(id) => {}
            Some(id) => {
                tracing::warn!(
                    map = name,
                    id,
                    "the live IP trie is not the one this supervisor swapped in: opening it by id"
                );
                *held = ip_policy::open_current(outer).map_err(err(name))?;
            }
        }
        Ok(held.as_ref().map(AsFd::as_fd))
    }
}

/// Builds both tries from `state` and swaps them in (keeping them in `tries`); writes the
/// alert rate.
pub fn apply(
    maps: &dyn Maps,
    tries: &mut LiveTries,
    state: &IpState,
    alerts_per_second: u32,
) -> Result<KernelCounts, KernelError> {
    let boot = ip_policy::boot_time_ns().map_err(err("CLOCK_BOOTTIME"))?;
    let entries = state.kernel_entries(unix_now(), boot);
    let mut counts = KernelCounts::default();
    // IPv4 pre-filter: a superset of the old and new rules' /16s while the trie is swapped,
    // exactly the new ones after.
    let filter = maps.fd(MAP_IP4_FILTER)?;
    let old_bits = ip_policy::read_filter(filter).map_err(err(MAP_IP4_FILTER))?;
    let new_bits = ip_policy::filter_bits(entries.first().into_iter().flatten().map(|(p, _)| p));
    let both: Vec<u64> = old_bits
        .iter()
        .zip(new_bits.iter())
        .map(|(o, n)| o | n)
        .collect();
    ip_policy::write_filter(filter, &old_bits, &both).map_err(err(MAP_IP4_FILTER))?;
    for (family, rules) in Family::ALL.into_iter().zip(entries.iter()) {
        let outer = maps.fd(family.outer_map())?;
        if rules.is_empty() {
            ip_policy::clear(outer).map_err(err(family.outer_map()))?;
            *tries.slot(family) = None;
            continue;
        }
        let trie =
            ip_policy::build(family, rules, MAX_RUNTIME_RULES).map_err(err("new IP trie"))?;
        ip_policy::swap_in(outer, &trie).map_err(err(family.outer_map()))?;
        *tries.slot(family) = Some(trie);
        let n = u32::try_from(rules.len()).unwrap_or(u32::MAX);
        match family {
            Family::V4 => counts.v4 = n,
            Family::V6 => counts.v6 = n,
        }
    }
    ip_policy::write_filter(filter, &both, &new_bits).map_err(err(MAP_IP4_FILTER))?;
    ip_policy::set_alert_rate(
        maps.fd(MAP_IP_CONFIG)?,
        alerts_per_second,
        alerts_per_second,
    )
    .map_err(err(MAP_IP_CONFIG))?;
    Ok(counts)
}

/// Carries out one runtime change in the live trie (creating the trie if the family had
/// none). Returns the change in the prefix count of its family (+1, 0, -1).
pub fn change(
    maps: &dyn Maps,
    tries: &mut LiveTries,
    change: KernelChange,
) -> Result<i8, KernelError> {
    match change {
        KernelChange::None => Ok(0),
        KernelChange::Set(prefix, rule) => {
            let family = prefix.family();
            // The /16 bit first: a prefix in the trie is never hidden by the pre-filter.
            ip_policy::filter_add(maps.fd(MAP_IP4_FILTER)?, &prefix)
                .map_err(err(MAP_IP4_FILTER))?;
            let outer = maps.fd(family.outer_map())?;
            match tries.live(outer, family)? {
                Some(trie) => {
                    let existed = ip_policy::lookup(trie, prefix)
                        .map_err(err(family.outer_map()))?
                        .is_some();
                    ip_policy::insert(trie, prefix, rule).map_err(err(family.outer_map()))?;
                    Ok(if existed { 0 } else { 1 })
                }
                None => {
                    let trie = ip_policy::build(family, &[(prefix, rule)], MAX_RUNTIME_RULES)
                        .map_err(err("new IP trie"))?;
                    ip_policy::swap_in(outer, &trie).map_err(err(family.outer_map()))?;
                    *tries.slot(family) = Some(trie);
                    Ok(1)
                }
            }
        }
        KernelChange::Delete(prefix) => {
            let family = prefix.family();
            let outer = maps.fd(family.outer_map())?;
            match tries.live(outer, family)? {
                Some(trie) => {
                    let removed =
                        ip_policy::remove(trie, prefix).map_err(err(family.outer_map()))?;
                    Ok(if removed { -1 } else { 0 })
                }
                None => Ok(0),
            }
        }
    }
}

/// Tries with more prefixes than this are checked for drift by their size only: a trie has no
/// batch reads, and reading a million prefixes key by key takes about a second.
pub const DRIFT_COMPARE_MAX: usize = 1 << 18;

/// How the live tries differ from what `state` says they hold (drift): a trie in a slot that
/// is not the one this supervisor swapped in, prefixes missing, added or changed. Expiry
/// times are compared to the second, and a rule expiring within two seconds is left out
/// (the supervisor's expiry may not have run yet). Empty when they match.
pub fn drift(
    maps: &dyn Maps,
    tries: &LiveTries,
    state: &IpState,
) -> Result<Vec<String>, KernelError> {
    const SLACK_NS: u64 = 2_000_000_000;
    let boot = ip_policy::boot_time_ns().map_err(err("CLOCK_BOOTTIME"))?;
    let entries = state.kernel_entries(unix_now(), boot);
    let mut problems = Vec::new();
    for (family, want) in Family::ALL.into_iter().zip(entries.iter()) {
        let name = family.outer_map();
        let current = ip_policy::current_inner_id(maps.fd(name)?).map_err(err(name))?;
        let held = match family {
            Family::V4 => tries.v4.as_ref(),
            Family::V6 => tries.v6.as_ref(),
        };
        let held_id = match held {
            Some(fd) => Some(palisade_ebpf::maps::map_facts(fd).map_err(err(name))?.id),
            None => None,
        };
        if current != held_id {
            problems.push(format!(
                "{name}: slot holds map {current:?}, this supervisor swapped in {held_id:?}"
            ));
            continue;
        }
        let Some(trie) = held else { continue };
        let near_expiry = |r: &palisade_abi::IpRule| {
            r.expires_boot_ns != 0 && r.expires_boot_ns < boot + SLACK_NS
        };
        let want: std::collections::BTreeMap<_, _> = want
            .iter()
            .filter(|(_, r)| !near_expiry(r))
            .map(|(p, r)| (*p, *r))
            .collect();
        if want.len() > DRIFT_COMPARE_MAX {
            let live = palisade_ebpf::flow_table::count(trie).map_err(err(name))? as usize;
            // Rules near their expiry may or may not still be in the trie.
            if live < want.len() {
                problems.push(format!("{name}: {live} prefixes, {} expected", want.len()));
            }
            continue;
        }
        let live = ip_policy::read_rules(trie, family).map_err(err(name))?;
        let mut seen = 0usize;
        for (prefix, rule) in &live {
            match want.get(prefix) {
                Some(w) => {
                    seen += 1;
                    let same_expiry =
                        rule.expires_boot_ns.abs_diff(w.expires_boot_ns) < 1_000_000_000;
                    if rule.rule_id != w.rule_id || rule.prefixlen != w.prefixlen || !same_expiry {
                        problems.push(format!("{name}: {prefix} changed (rule {})", rule.rule_id));
                    }
                }
                None if near_expiry(rule) => {}
                None => problems.push(format!("{name}: {prefix} added")),
            }
        }
        if seen < want.len() {
            problems.push(format!("{name}: {} prefixes missing", want.len() - seen));
        }
    }
    Ok(problems)
}

/// Per-rule hit counters, summed over CPUs.
pub fn hits(maps: &dyn Maps) -> Result<HashMap<u32, u64>, KernelError> {
    Ok(maps.hits(MAP_IP_HITS)?.into_iter().collect())
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "a panic is a test failure")]
mod tests {
    //! The IP policy transactions against the fake kernel (no root): tries swapped in whole,
    //! the /16 pre-filter always covering the trie, runtime changes, failures that leave the
    //! kernel as it was.

    use palisade_abi::{IP4_FILTER_WORDS, IpRule, MAP_IP4_POLICY};
    use palisade_ebpf::ip_policy::Prefix;

    use super::*;
    use crate::{ebpf::maps::fake::FakeMaps, policy::ip::IpRuleSet};

    fn state(dir: &std::path::Path, list: &str) -> IpState {
        let path = dir.join("list.txt");
        std::fs::write(&path, list).expect("write");
        IpState::open(IpRuleSet::load(&[path]).expect("valid"), dir).expect("open")
    }

    fn prefix(text: &str) -> Prefix {
        Prefix::parse(text).expect("valid").0
    }

    fn trie(maps: &FakeMaps, family: Family) -> Option<Vec<(Prefix, IpRule)>> {
        let outer = maps.fd(family.outer_map()).expect("outer");
        ip_policy::open_current(outer)
            .expect("open")
            .map(|t| ip_policy::read_rules(&t, family).expect("read"))
    }

    fn filter(maps: &FakeMaps) -> Vec<u64> {
        ip_policy::read_filter(maps.fd(MAP_IP4_FILTER).expect("filter")).expect("read")
    }

    /// Bit of the /16 of `addr` in the pre-filter.
    fn bit(words: &[u64], a: u8, b: u8) -> bool {
        let slash16 = usize::from(a) << 8 | usize::from(b);
        words[slash16 / 64] >> (slash16 % 64) & 1 == 1
    }

    #[test]
    fn apply_swaps_both_families_and_sets_the_prefilter() {
        let dir = tempfile::tempdir().expect("tmp");
        let maps = FakeMaps::new();
        let st = state(dir.path(), "192.0.2.0/24\n10.0.0.0/8\n2001:db8::/32\n");
        let counts = apply(&maps, &mut LiveTries::default(), &st, 5).expect("apply");
        assert_eq!(counts, KernelCounts { v4: 2, v6: 1 });
        let v4 = trie(&maps, Family::V4).expect("v4 trie");
        let mut got: Vec<String> = v4.iter().map(|(p, _)| p.to_string()).collect();
        got.sort();
        assert_eq!(got, ["10.0.0.0/8", "192.0.2.0/24"]);
        assert_eq!(trie(&maps, Family::V6).expect("v6 trie").len(), 1);
        let words = filter(&maps);
        assert_eq!(words.len(), IP4_FILTER_WORDS);
        assert!(bit(&words, 192, 0) && bit(&words, 10, 0) && bit(&words, 10, 255));
        assert!(!bit(&words, 198, 51), "no rule there");

        // A reload without IPv6 rules empties that slot; the filter is exactly the new /16s.
        let st = state(dir.path(), "198.51.100.0/24\n");
        assert_eq!(
            apply(&maps, &mut LiveTries::default(), &st, 5).expect("apply"),
            KernelCounts { v4: 1, v6: 0 }
        );
        assert_eq!(trie(&maps, Family::V6), None);
        let words = filter(&maps);
        assert!(bit(&words, 198, 51) && !bit(&words, 192, 0) && !bit(&words, 10, 0));
    }

    #[test]
    fn a_failed_swap_keeps_the_old_trie_and_a_filter_that_covers_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let maps = FakeMaps::new();
        let mut tries = LiveTries::default();
        apply(&maps, &mut tries, &state(dir.path(), "192.0.2.0/24\n"), 5).expect("apply");
        let before = trie(&maps, Family::V4);
        maps.kernel
            .fail_on("BPF_MAP_UPDATE_ELEM", MAP_IP4_POLICY, libc::ENOMEM);
        let error = apply(
            &maps,
            &mut tries,
            &state(dir.path(), "198.51.100.0/24\n"),
            5,
        )
        .expect_err("fails");
        assert!(
            crate::error_chain(&error).starts_with("pal_ip4_policy: BPF_MAP_UPDATE_ELEM"),
            "{}",
            crate::error_chain(&error)
        );
        assert_eq!(trie(&maps, Family::V4), before, "old rules still enforced");
        assert!(
            bit(&filter(&maps), 192, 0),
            "the pre-filter still covers them"
        );
    }

    #[test]
    fn runtime_changes_create_edit_and_delete_prefixes() {
        let maps = FakeMaps::new();
        let mut tries = LiveTries::default();
        let p = prefix("203.0.113.7/32");
        let rule = IpRule::new(900_001, 32, 0);
        // No trie yet: one is built and swapped in.
        assert_eq!(
            change(&maps, &mut tries, KernelChange::Set(p, rule)).expect("set"),
            1
        );
        assert_eq!(trie(&maps, Family::V4), Some(vec![(p, rule)]));
        assert!(
            bit(&filter(&maps), 203, 0),
            "filter bit set with the prefix"
        );
        // Same prefix again: replaced, count unchanged.
        let longer = IpRule::new(900_001, 32, 123);
        assert_eq!(
            change(&maps, &mut tries, KernelChange::Set(p, longer)).expect("set"),
            0
        );
        assert_eq!(trie(&maps, Family::V4), Some(vec![(p, longer)]));
        assert_eq!(
            change(&maps, &mut tries, KernelChange::Delete(p)).expect("delete"),
            -1
        );
        assert_eq!(trie(&maps, Family::V4), Some(vec![]));
        assert_eq!(
            change(&maps, &mut tries, KernelChange::Delete(p)).expect("delete"),
            0
        );
        assert_eq!(
            change(&maps, &mut tries, KernelChange::None).expect("none"),
            0
        );
    }

    #[test]
    fn runtime_changes_write_the_held_trie_without_opening_it_by_id() {
        // BPF_MAP_GET_FD_BY_ID needs CAP_SYS_ADMIN, which the unit does not grant.
        let dir = tempfile::tempdir().expect("tmp");
        let maps = FakeMaps::new();
        let mut tries = LiveTries::default();
        apply(&maps, &mut tries, &state(dir.path(), "192.0.2.0/24\n"), 5).expect("apply");
        let by_id = || maps.kernel.calls("BPF_MAP_GET_FD_BY_ID");
        let before = by_id();
        let p = prefix("203.0.113.0/24");
        let rule = IpRule::new(900_002, 24, 0);
        assert_eq!(
            change(&maps, &mut tries, KernelChange::Set(p, rule)).expect("set"),
            1
        );
        assert_eq!(
            change(&maps, &mut tries, KernelChange::Delete(p)).expect("delete"),
            -1
        );
        let v6 = prefix("2001:db8::/48");
        let rule6 = IpRule::new(900_003, 48, 0);
        assert_eq!(
            change(&maps, &mut tries, KernelChange::Set(v6, rule6)).expect("v6"),
            1
        );
        assert_eq!(by_id(), before, "no trie opened by id");
        assert_eq!(trie(&maps, Family::V6), Some(vec![(v6, rule6)]));
        assert_eq!(
            trie(&maps, Family::V4).expect("v4").len(),
            1,
            "the list rule stays"
        );

        // A trie this supervisor did not swap in (here: another `apply` with other handles)
        // is opened by id, not replaced by a new one that would lose its rules.
        let mut other = LiveTries::default();
        apply(
            &maps,
            &mut other,
            &state(dir.path(), "198.51.100.0/24\n"),
            5,
        )
        .expect("apply");
        let before = by_id();
        assert_eq!(
            change(&maps, &mut tries, KernelChange::Set(p, rule)).expect("set"),
            1
        );
        assert_eq!(by_id(), before + 1);
        let mut v4: Vec<String> = trie(&maps, Family::V4)
            .expect("v4")
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        v4.sort();
        assert_eq!(v4, ["198.51.100.0/24", "203.0.113.0/24"]);
    }

    #[test]
    fn a_prefix_never_enters_the_trie_without_its_filter_bit() {
        let maps = FakeMaps::new();
        let mut tries = LiveTries::default();
        let p = prefix("203.0.113.0/24");
        maps.kernel
            .fail_on("BPF_MAP_UPDATE_ELEM", MAP_IP4_FILTER, libc::EPERM);
        let error = change(
            &maps,
            &mut tries,
            KernelChange::Set(p, IpRule::new(1, 24, 0)),
        )
        .expect_err("fails");
        assert!(crate::error_chain(&error).starts_with("pal_ip4_filter: "));
        assert_eq!(trie(&maps, Family::V4), None, "nothing stored");
    }
}
