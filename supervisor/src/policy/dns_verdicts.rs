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
    let learned = dns.learn(norm.clone(), rule_id, Instant::now());
    match learned.map_err(|e| e.to_string()).and_then(|l| {
        dns_kernel::learn(
            maps,
            &norm,
            rule_id,
            l.expires.saturating_duration_since(Instant::now()),
        )
        .map_err(|e| crate::error_chain(&e))
    }) {
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
    let learned = dns.check_request(name, rule_id).and_then(|norm| {
        dns.learn(norm.clone(), rule_id, Instant::now())
            .map(|l| (norm, l))
    });
    match learned {
        Ok((norm, l)) => match dns_kernel::learn(
            maps,
            &norm,
            rule_id,
            l.expires.saturating_duration_since(Instant::now()),
        ) {
            Ok(()) => {
                let rule = dns.rules.rule(rule_id).map(describe).unwrap_or_default();
                tracing::info!(name = norm, rule, "learned DNS block");
            }
            Err(e) => {
                tracing::error!(name = norm, error = %crate::error_chain(&e), "writing a learned DNS block")
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
