//! The daemon's DNS policy: the rule set in force, names learned from
//! regex verdicts, and the checks applied to the DNS worker's requests.
//! Kernel writes go through [`super::dns_kernel`].

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use palisade_ipc::messages::{DnsPolicyStatus, DnsTestReport, RegexRule, WorkerKind, WorkerPolicy};

use super::dns::{Action, BlockAction, Decision, Rule, RuleKind, RuleSet};
use crate::policy::dns_lists::Match;

/// How long a learned block lasts.
pub const LEARNED_TTL: Duration = Duration::from_secs(3600);
/// Most learned names (the kernel map's size).
pub const MAX_LEARNED: usize = 65_536;

/// A learned block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learned {
    /// The regex rule that caused it.
    pub rule_id: u32,
    /// When it lapses.
    pub expires: Instant,
}

/// The DNS policy in force.
#[derive(Debug)]
pub struct DnsState {
    /// Rule set.
    pub rules: RuleSet,
    /// What a blocked query gets.
    pub block_action: BlockAction,
    /// Learned exact-name blocks.
    pub learned: HashMap<String, Learned>,
    /// What each policy worker last said it applied.
    pub worker_rulesets: std::collections::BTreeMap<WorkerKind, [u8; 32]>,
    /// Block requests refused.
    pub refused: u64,
    /// Lines logged about refused requests (a worker decides how many it sends).
    pub refusal_log: crate::ratelimit::TokenBucket,
}

/// Why a block request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The name is not a valid, normalized name.
    #[error("{0:?} is not a normalized domain name")]
    BadName(String),
    /// The rule id is not a regex rule of the set in force.
    #[error("rule {0} is not a regex rule of the rule set in force")]
    NotRegexRule(u32),
    /// The regex does not match the name.
    #[error("rule {rule} does not match {name:?}")]
    NoMatch { rule: u32, name: String },
    /// An allow rule covers the name.
    #[error("{0:?} is allowed by an allow rule")]
    Allowed(String),
    /// The learned map is full.
    #[error("the learned-block map is full ({MAX_LEARNED})")]
    Full,
}

impl Refusal {
    /// Whether an honest DNS worker applying `worker_ruleset` could have sent the refused
    /// request, given the rule set in force (`ours`). Such a refusal is only counted; any
    /// other is a protocol violation (the worker is killed and restarted, ARCHITECTURE.md
    /// invariant 3).
    ///
    /// Honest refusals: an allow rule covers the name (the worker holds no allow rules), the
    /// learned map is full, or the worker has not yet applied the rule set in force (a request
    /// in flight across a reload). A worker that applied our rule set and sends a name it did
    /// not normalize, a rule id that is no regex rule of the set, or a regex that does not
    /// match the name is lying.
    pub fn is_violation(&self, worker_ruleset: Option<&[u8; 32]>, ours: &[u8; 32]) -> bool {
        match self {
            Self::BadName(_) => true,
            Self::NotRegexRule(_) | Self::NoMatch { .. } => worker_ruleset == Some(ours),
            Self::Allowed(_) | Self::Full => false,
        }
    }
}

/// Human form of a rule: `block suffix tracker.example (/etc/l.txt:3)`.
pub fn describe(rule: Rule<'_>) -> String {
    let action = match rule.action {
        Action::Block => "block",
        Action::Allow => "allow",
    };
    let kind = match rule.kind {
        RuleKind::Name(Match::Exact) => "exact",
        RuleKind::Name(Match::Suffix) => "suffix",
        RuleKind::Regex => "regex",
    };
    format!("{action} {kind} {} ({})", rule.text, rule.source())
}

impl DnsState {
    /// A new state with no learned names.
    pub fn new(rules: RuleSet, block_action: BlockAction) -> Self {
        Self {
            rules,
            block_action,
            learned: HashMap::new(),
            worker_rulesets: Default::default(),
            refused: 0,
            refusal_log: crate::ratelimit::TokenBucket::new(10, 50, Instant::now()),
        }
    }

    /// A rule by kernel id, in its human form ([`describe`]).
    pub fn rule_text(&self, id: u32) -> Option<String> {
        self.rules.rule(id).map(describe)
    }

    /// The DNS part of the policy message of the DNS and flow workers.
    pub fn worker_policy(&self) -> WorkerPolicy {
        WorkerPolicy {
            ruleset: self.rules.sha256(),
            regexes: self
                .rules
                .regexes()
                .into_iter()
                .map(|(id, pattern)| RegexRule { id, pattern })
                .collect(),
            encrypted_dns_names: self.rules.resolver_names.clone(),
            encrypted_dns_addresses: self.rules.resolver_addresses.clone(),
            flow_start_events: false,
            dhcp_transaction_timeout_s: 0,
        }
    }

    /// Checks an answer's CNAME chain: the first target a name rule (or a
    /// learned block) blocks, unless an allow rule covers the queried name.
    /// Returns (normalized queried name, target, deciding rule).
    pub fn check_cname(
        &self,
        name: &str,
        targets: &[String],
        now: Instant,
    ) -> Option<(String, String, Rule<'_>)> {
        let norm = palisade_abi::dns_name::normalize(name)?;
        if matches!(self.rules.decide(&norm), Some((_, Decision::Allowed))) {
            return None;
        }
        targets.iter().find_map(|t| {
            let target = palisade_abi::dns_name::normalize(t)?;
            let rule = match self.rules.decide(&target) {
                Some((rule, Decision::Blocked)) => rule,
                _ => {
                    let learned = self.learned.get(&target).filter(|l| l.expires > now)?;
                    self.rules.rule(learned.rule_id)?
                }
            };
            Some((norm.clone(), target, rule))
        })
    }

    /// Validates a worker's block request against our own rule set.
    /// Returns the normalized name to learn.
    pub fn check_request(&self, name: &str, rule_id: u32) -> Result<String, Refusal> {
        let norm = palisade_abi::dns_name::normalize(name)
            .filter(|n| n == name)
            .ok_or_else(|| Refusal::BadName(name.to_owned()))?;
        match self.rules.rule(rule_id) {
            Some(Rule {
                kind: RuleKind::Regex,
                ..
            }) => {}
            _ => return Err(Refusal::NotRegexRule(rule_id)),
        }
        match self.rules.decide(&norm) {
            Some((_, Decision::Allowed)) => Err(Refusal::Allowed(norm)),
            Some((rule, Decision::RegexBlocked)) if rule.id == rule_id => Ok(norm),
            // A name rule already blocks it (fine: learn nothing new) or
            // another regex matches first: accept only the claimed one.
            _ if self.rules.regex_matches(&norm, rule_id) => Ok(norm),
            _ => Err(Refusal::NoMatch {
                rule: rule_id,
                name: norm,
            }),
        }
    }

    /// Records a learned name (the caller writes the kernel map).
    pub fn learn(&mut self, name: String, rule_id: u32, now: Instant) -> Result<Learned, Refusal> {
        if !self.learned.contains_key(&name) && self.learned.len() >= MAX_LEARNED {
            return Err(Refusal::Full);
        }
        let learned = Learned {
            rule_id,
            expires: now + LEARNED_TTL,
        };
        self.learned.insert(name, learned);
        Ok(learned)
    }

    /// Removes lapsed names; returns them (the caller deletes them from the kernel).
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .learned
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &gone {
            self.learned.remove(n);
        }
        gone
    }

    /// `palisade dns test NAME`.
    pub fn test(&self, name: &str, now: Instant) -> DnsTestReport {
        let Some(norm) = palisade_abi::dns_name::normalize(name) else {
            return DnsTestReport {
                name: None,
                verdict: "invalid-name".into(),
                rule: None,
            };
        };
        let decided = self.rules.decide(&norm);
        if let Some((rule, Decision::Allowed)) = decided {
            return DnsTestReport {
                name: Some(norm),
                verdict: "allowed".into(),
                rule: Some(describe(rule)),
            };
        }
        if let Some((rule, Decision::Blocked)) = decided {
            return DnsTestReport {
                name: Some(norm),
                verdict: "blocked".into(),
                rule: Some(describe(rule)),
            };
        }
        if let Some(l) = self.learned.get(&norm).filter(|l| l.expires > now) {
            let rule = self
                .rules
                .rule(l.rule_id)
                .map(describe)
                .unwrap_or_else(|| format!("rule {}", l.rule_id));
            return DnsTestReport {
                name: Some(norm),
                verdict: "learned".into(),
                rule: Some(format!(
                    "{rule}, learned, {}s left",
                    l.expires.saturating_duration_since(now).as_secs()
                )),
            };
        }
        match decided {
            Some((rule, _)) => DnsTestReport {
                name: Some(norm),
                verdict: "blocked-after-first-query".into(),
                rule: Some(describe(rule)),
            },
            None => DnsTestReport {
                name: Some(norm),
                verdict: "no-match".into(),
                rule: None,
            },
        }
    }

    /// Status section.
    pub fn status(&self, kernel_rules: u32) -> DnsPolicyStatus {
        DnsPolicyStatus {
            kernel_rules,
            regex_rules: self.rules.regexes().len() as u32,
            learned: self.learned.len() as u32,
            block_action: match self.block_action {
                BlockAction::Nxdomain => "nxdomain".into(),
                BlockAction::Drop => "drop".into(),
                BlockAction::Off => "off".into(),
            },
            ruleset_sha256: hex::encode(self.rules.sha256()),
            worker_ruleset_sha256: self.worker_rulesets.get(&WorkerKind::Dns).map(hex::encode),
            refused_requests: self.refused,
        }
    }
}

/// A state over list files written to a temporary directory (kept alive by the returned
/// guard), for unit tests.
#[cfg(test)]
pub(crate) fn test_state(block: &str, allow: &str, regex: &str) -> (DnsState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let write = |n: &str, t: &str| {
        let p = dir.path().join(n);
        std::fs::write(&p, t).expect("write");
        p
    };
    let lists = super::dns::DnsLists {
        blocklists: vec![write("block", block)],
        allowlists: vec![write("allow", allow)],
        regex_lists: vec![write("regex", regex)],
        encrypted_dns: vec![],
    };
    let rules = RuleSet::load(&lists).expect("valid lists");
    (DnsState::new(rules, BlockAction::Nxdomain), dir)
}

#[cfg(test)]
mod tests {
    //! The checks applied to the DNS worker's claims, without a kernel.

    use super::{test_state as state, *};

    fn regex_id(st: &DnsState) -> u32 {
        st.rules
            .regexes()
            .first()
            .map(|(id, _)| *id)
            .expect("a regex rule")
    }

    #[test]
    fn a_request_the_rule_set_backs_is_accepted_normalized() {
        let (st, _d) = state("", "", "^ad[0-9]+\\.example$\n");
        let id = regex_id(&st);
        assert_eq!(
            st.check_request("ad1.example", id),
            Ok("ad1.example".into())
        );
    }

    #[test]
    fn refusals_and_which_are_violations() {
        let (mut st, _d) = state("named.example\n", "ad9.example\n", "^ad[0-9]+\\.example$\n");
        let id = regex_id(&st);
        let ours = st.rules.sha256();
        let stale = [7_u8; 32];

        // A name the worker did not normalize: always a lie (it normalizes what it sends).
        let r = st
            .check_request("AD1.example", id)
            .expect_err("not normalized");
        assert_eq!(r, Refusal::BadName("AD1.example".into()));
        assert!(r.is_violation(Some(&ours), &ours));
        assert!(r.is_violation(None, &ours));

        // Not a regex rule of the set / a regex that does not match: a lie from a worker that
        // applied our rule set, a race from one that has not yet.
        let named = st
            .rules
            .decide("named.example")
            .map(|(rule, _)| rule.id)
            .expect("named rule");
        for r in [
            st.check_request("ad1.example", 9999)
                .expect_err("no such rule"),
            st.check_request("ad1.example", named)
                .expect_err("not a regex rule"),
            st.check_request("other.example", id)
                .expect_err("regex does not match"),
        ] {
            assert!(
                matches!(r, Refusal::NotRegexRule(_) | Refusal::NoMatch { .. }),
                "{r}"
            );
            assert!(r.is_violation(Some(&ours), &ours), "{r}");
            assert!(!r.is_violation(Some(&stale), &ours), "{r}: stale worker");
            assert!(!r.is_violation(None, &ours), "{r}: worker never reported");
        }

        // An allow rule covers the name: the worker cannot know, so it is honest.
        let r = st.check_request("ad9.example", id).expect_err("allowed");
        assert_eq!(r, Refusal::Allowed("ad9.example".into()));
        assert!(!r.is_violation(Some(&ours), &ours));

        // A full learned map is ours, not the worker's.
        let now = Instant::now();
        for i in 0..MAX_LEARNED {
            st.learn(format!("n{i}.example"), id, now).expect("room");
        }
        let r = st.learn("ad1.example".into(), id, now).expect_err("full");
        assert_eq!(r, Refusal::Full);
        assert!(!r.is_violation(Some(&ours), &ours));
        // Refreshing a name already learned needs no room.
        assert!(st.learn("n0.example".into(), id, now).is_ok());
    }

    #[test]
    fn cname_checks_find_the_first_blocked_target_unless_the_name_is_allowed() {
        let (mut st, _d) = state("||tracker.example^\n", "ok.example\n", "");
        let now = Instant::now();
        let targets = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let hit = st.check_cname(
            "www.shop.example",
            &targets(&["cdn.example", "x.tracker.example"]),
            now,
        );
        let (name, target, rule) = hit.expect("a blocked target");
        assert_eq!(
            (name.as_str(), target.as_str()),
            ("www.shop.example", "x.tracker.example")
        );
        assert_eq!(rule.text, "tracker.example");
        assert!(
            st.check_cname("ok.example", &targets(&["x.tracker.example"]), now)
                .is_none(),
            "an allow rule on the queried name wins"
        );
        assert!(
            st.check_cname("a.example", &targets(&["b.example"]), now)
                .is_none()
        );
        // A learned block counts as a blocked target until it expires.
        st.learned.insert(
            "learned.example".into(),
            Learned {
                rule_id: 1,
                expires: now + Duration::from_secs(5),
            },
        );
        assert!(
            st.check_cname("a.example", &targets(&["learned.example"]), now)
                .is_some()
        );
        let later = now + Duration::from_secs(6);
        assert!(
            st.check_cname("a.example", &targets(&["learned.example"]), later)
                .is_none()
        );
        // Names from the wire that do not normalize are skipped, never an error.
        assert!(
            st.check_cname("bad name\u{0}", &targets(&["x.tracker.example"]), now)
                .is_none()
        );
    }
}
