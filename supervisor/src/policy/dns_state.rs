//! The daemon's DNS policy: the rule set in force, names learned from
//! regex verdicts, and the checks applied to the DNS worker's requests.
//! Kernel writes go through [`super::dns_kernel`].

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use palisade_ipc::messages::{
    DnsPolicyStatus, DnsTestReport, RegexRule, SupervisorToWorker, WorkerKind, WorkerPolicy,
};

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
        }
    }

    /// The message that gives the DNS and flow workers their policy.
    pub fn worker_message(&self) -> SupervisorToWorker {
        SupervisorToWorker::Policy(WorkerPolicy {
            ruleset: self.rules.sha256(),
            regexes: self
                .rules
                .regexes()
                .into_iter()
                .map(|(id, pattern)| RegexRule { id, pattern })
                .collect(),
            encrypted_dns_names: self.rules.resolver_names.clone(),
            encrypted_dns_addresses: self.rules.resolver_addresses.clone(),
        })
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
            },
            ruleset_sha256: hex::encode(self.rules.sha256()),
            worker_ruleset_sha256: self.worker_rulesets.get(&WorkerKind::Dns).map(hex::encode),
            refused_requests: self.refused,
        }
    }
}
