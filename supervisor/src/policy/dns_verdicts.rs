//! What the supervisor does with the DNS and flow workers' verdicts: the
//! CNAME chain of an answer that reaches a blocked domain, a name a regex
//! rule matched that the DNS worker asks to block, and the rule set a worker
//! says it applies. Nothing a worker sends is trusted: each request is
//! checked against the rule set in force ([`super::dns_state`]) before the
//! name is learned and written into the kernel ([`super::dns_kernel`]); a
//! claim that only a lying worker makes is a protocol violation.
//! Learned blocks lapse after [`super::dns_state::LEARNED_TTL`] ([`expire_learned`]).

use std::time::Instant;

use palisade_ipc::messages::{SupervisorToWorker, WorkerKind};

use super::{
    dns_kernel,
    dns_state::{DnsState, Refusal, describe},
};
use crate::ebpf::maps::Maps;

/// An answer's CNAME chain, from the DNS worker: when a target is blocked,
/// the queried name is learned (blocked in the kernel from the next query).
/// Returns what to tell the DNS worker (it logs the alert), if anything.
pub fn cname_check(
    dns: &mut DnsState,
    maps: &dyn Maps,
    name: &str,
    targets: &[String],
) -> Option<SupervisorToWorker> {
    let (norm, target, rule) = dns.check_cname(name, targets, Instant::now())?;
    let (rule_id, rule_text) = (rule.id, describe(rule));
    match learn_in_both(dns, maps, &norm, rule_id) {
        Ok(()) => {
            tracing::warn!(
                name = norm,
                cname = target,
                rule = rule_text,
                "CNAME chain reaches a blocked domain: name blocked"
            );
            Some(SupervisorToWorker::CnameBlocked {
                name: norm,
                target,
                rule: rule_text,
            })
        }
        Err(e) => {
            tracing::error!(name = norm, error = %e, "learning a CNAME-blocked name");
            None
        }
    }
}

/// The DNS worker (`kind`) asks to block `name`, which it says regex rule
/// `rule_id` matched: learned only if our own rule set agrees. Refusals are
/// counted; one that an honest worker could not have caused
/// ([`Refusal::is_violation`]) is returned, for the caller to treat as a
/// protocol violation.
pub fn block_request(
    dns: &mut DnsState,
    maps: &dyn Maps,
    kind: WorkerKind,
    name: &str,
    rule_id: u32,
) -> Option<Refusal> {
    match dns.check_request(name, rule_id) {
        Ok(norm) => match learn_in_both(dns, maps, &norm, rule_id) {
            Ok(()) => {
                let rule = dns.rules.rule(rule_id).map(describe).unwrap_or_default();
                tracing::info!(name = norm, rule, "learned DNS block");
            }
            // The kernel refused (map full; with AF_PACKET capture there is no kernel side
            // at all): counted as refused, logged at most 10 a second, as a request flood
            // under AF_PACKET would otherwise log a line per matching query.
            Err(e) => {
                dns.refused += 1;
                if let Some(suppressed) = dns.refusal_log.take(Instant::now()) {
                    tracing::warn!(name = norm, error = %e, suppressed, total = dns.refused, "learning a DNS block");
                }
            }
        },
        Err(refusal) => {
            dns.refused += 1;
            let applied = dns.worker_rulesets.get(&kind);
            if refusal.is_violation(applied, &dns.rules.sha256()) {
                return Some(refusal);
            }
            // Counted always; logged at most 10 a second (the count of lines left out rides
            // on the next one).
            if let Some(suppressed) = dns.refusal_log.take(Instant::now()) {
                tracing::warn!(%refusal, suppressed, total = dns.refused, "DNS worker block request refused");
            }
        }
    }
    None
}

/// Learns `name` (normalized) in the state and then in the kernel; when the kernel refuses,
/// the state is put back as it was, so the two never disagree.
fn learn_in_both(
    dns: &mut DnsState,
    maps: &dyn Maps,
    name: &str,
    rule_id: u32,
) -> Result<(), String> {
    let previous = dns.learned.get(name).copied();
    let learned = dns
        .learn(name.to_owned(), rule_id, Instant::now())
        .map_err(|e| e.to_string())?;
    let ttl = learned.expires.saturating_duration_since(Instant::now());
    if let Err(e) = dns_kernel::learn(maps, name, rule_id, ttl) {
        match previous {
            Some(p) => dns.learned.insert(name.to_owned(), p),
            None => dns.learned.remove(name),
        };
        return Err(crate::error_chain(&e));
    }
    Ok(())
}

/// A worker reports the hash of the rule set it applies: recorded for
/// `status`, and a mismatch with ours is logged as drift.
pub fn ruleset_applied(dns: &mut DnsState, kind: WorkerKind, hash: [u8; 32]) {
    dns.worker_rulesets.insert(kind, hash);
    if hash != dns.rules.sha256() {
        tracing::warn!(worker = kind.name(), applied = %hex::encode(hash), ours = %hex::encode(dns.rules.sha256()), "worker applies another rule set (drift)");
    }
}

/// Removes lapsed learned names from the state and the kernel.
pub fn expire_learned(dns: &mut DnsState, maps: &dyn Maps, now: Instant) {
    for name in dns.expire(now) {
        if let Err(e) = dns_kernel::forget(maps, &name) {
            tracing::warn!(name, error = %crate::error_chain(&e), "removing an expired learned block");
        }
    }
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "a panic is a test failure")]
mod tests {
    //! The verdicts on the DNS worker's requests, against the fake kernel (no root).

    use std::time::Duration;

    use palisade_abi::{MAP_DNS_LEARNED, dns_name::name_hash};

    use super::*;
    use crate::{
        ebpf::maps::fake::FakeMaps,
        policy::dns_state::{LEARNED_TTL, test_state as state},
    };

    fn learned(maps: &FakeMaps) -> Vec<u64> {
        let mut h: Vec<u64> = maps
            .entries(MAP_DNS_LEARNED)
            .iter()
            .map(|(k, _)| u64::from_ne_bytes(k.as_slice().try_into().expect("8 bytes")))
            .collect();
        h.sort_unstable();
        h
    }

    #[test]
    fn an_honest_block_request_is_learned_in_state_and_kernel() {
        let maps = FakeMaps::new();
        let (mut dns, _d) = state("", "", "^ad[0-9]+\\.example$\n");
        let id = dns.rules.regexes()[0].0;
        let ours = dns.rules.sha256();
        ruleset_applied(&mut dns, WorkerKind::Dns, ours);
        assert_eq!(
            block_request(&mut dns, &maps, WorkerKind::Dns, "ad7.example", id),
            None
        );
        assert!(dns.learned.contains_key("ad7.example"));
        assert_eq!(learned(&maps), [name_hash("ad7.example")]);
        // Expiry removes it from both.
        expire_learned(
            &mut dns,
            &maps,
            Instant::now() + LEARNED_TTL + Duration::from_secs(1),
        );
        assert!(dns.learned.is_empty());
        assert!(learned(&maps).is_empty());
    }

    #[test]
    fn a_lie_is_returned_as_a_violation_and_writes_nothing() {
        let maps = FakeMaps::new();
        let (mut dns, _d) = state("", "ad9.example\n", "^ad[0-9]+\\.example$\n");
        let id = dns.rules.regexes()[0].0;
        let ours = dns.rules.sha256();
        ruleset_applied(&mut dns, WorkerKind::Dns, ours);
        let lie = block_request(&mut dns, &maps, WorkerKind::Dns, "innocent.example", id);
        assert!(matches!(lie, Some(Refusal::NoMatch { .. })), "{lie:?}");
        // An allow-listed name: refused and counted, but honest.
        assert_eq!(
            block_request(&mut dns, &maps, WorkerKind::Dns, "ad9.example", id),
            None
        );
        assert_eq!(dns.refused, 2);
        assert!(learned(&maps).is_empty());
    }

    #[test]
    fn a_cname_to_a_blocked_domain_blocks_the_queried_name() {
        let maps = FakeMaps::new();
        let (mut dns, _d) = state("||tracker.example^\n", "", "");
        let targets = vec!["cdn.example".to_owned(), "x.tracker.example".to_owned()];
        let msg = cname_check(&mut dns, &maps, "www.shop.example", &targets);
        assert!(
            matches!(&msg, Some(SupervisorToWorker::CnameBlocked { name, target, .. })
                if name == "www.shop.example" && target == "x.tracker.example"),
            "{msg:?}"
        );
        assert_eq!(learned(&maps), [name_hash("www.shop.example")]);
        // A full kernel map: nothing to tell the worker, nothing half-done in the state.
        maps.kernel.fail("BPF_MAP_UPDATE_ELEM", 0, libc::E2BIG);
        assert!(cname_check(&mut dns, &maps, "m.shop.example", &targets).is_none());
        assert!(!dns.learned.contains_key("m.shop.example"));
        assert!(dns.learned.contains_key("www.shop.example"));
    }
}
