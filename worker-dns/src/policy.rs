//! User-space policy of the DNS worker: regex domain rules, matched here
//! (in the unprivileged worker) because the kernel cannot run them, and the
//! names of known encrypted-DNS resolvers. A regex match becomes a block
//! request to the supervisor, which checks it against its own rule set
//! before it writes the kernel's learned-block map. CNAME chains are sent
//! to the supervisor for the same reason (the name rules live there).

use std::collections::HashSet;

use palisade_ipc::messages::RegexRule;
use regex::RegexSetBuilder;

/// Names already requested, at most; the set is cleared when full (a name
/// asked twice costs the supervisor one more check, nothing else).
const MAX_REQUESTED: usize = 4096;
/// Same limit as the supervisor's validation.
const SIZE_LIMIT: usize = 8 << 20;

/// The regex rules in force.
#[derive(Debug, Default)]
pub struct RegexPolicy {
    set: Option<regex::RegexSet>,
    ids: Vec<u32>,
    ruleset: [u8; 32],
    requested: HashSet<String>,
}

impl RegexPolicy {
    /// Replaces the rules. Fails only if a pattern does not compile, which
    /// the supervisor already ruled out.
    pub fn apply(&mut self, ruleset: [u8; 32], rules: &[RegexRule]) -> Result<(), regex::Error> {
        let set = RegexSetBuilder::new(rules.iter().map(|r| r.pattern.as_str()))
            .size_limit(SIZE_LIMIT)
            .dfa_size_limit(SIZE_LIMIT)
            .build()?;
        self.set = (!rules.is_empty()).then_some(set);
        self.ids = rules.iter().map(|r| r.id).collect();
        self.ruleset = ruleset;
        self.requested.clear();
        Ok(())
    }

    /// SHA-256 of the rule set applied.
    pub fn ruleset(&self) -> [u8; 32] {
        self.ruleset
    }

    /// The first rule matching the normalized `name`, and whether a block
    /// request should be sent (not requested recently).
    pub fn check(&mut self, name: &str) -> Option<(u32, bool)> {
        let set = self.set.as_ref()?;
        let index = set.matches(name).iter().next()?;
        let id = *self.ids.get(index)?;
        if self.requested.len() >= MAX_REQUESTED {
            self.requested.clear();
        }
        let fresh = self.requested.insert(name.to_owned());
        Some((id, fresh))
    }
}

/// Names of encrypted-DNS resolvers; a name matches itself and its
/// subdomains.
#[derive(Debug, Default)]
pub struct ResolverNames {
    names: HashSet<String>,
}

impl ResolverNames {
    /// Replaces the names (invalid ones are skipped: the supervisor
    /// validated them).
    pub fn set(&mut self, names: &[String]) {
        self.names = names
            .iter()
            .filter_map(|n| palisade_abi::dns_name::normalize(n))
            .collect();
    }

    /// True when the normalized `name` or a parent is a resolver name.
    pub fn matches(&self, name: &str) -> bool {
        palisade_abi::dns_name::suffixes(name).any(|s| self.names.contains(s))
    }
}

/// CNAME chains already reported, so a popular name is not sent every time.
#[derive(Debug, Default)]
pub struct Reported {
    seen: HashSet<String>,
}

impl Reported {
    /// True the first time `name` is seen (until the set is cleared when full).
    pub fn first(&mut self, name: &str) -> bool {
        if self.seen.len() >= MAX_REQUESTED {
            self.seen.clear();
        }
        self.seen.insert(name.to_owned())
    }

    /// Forgets everything (a new rule set may decide differently).
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_and_deduplicates() {
        let mut p = RegexPolicy::default();
        assert_eq!(p.check("x.example"), None, "no rules, no match");
        p.apply(
            [7; 32],
            &[
                RegexRule {
                    id: 3,
                    pattern: "^ads[0-9]+\\.".into(),
                },
                RegexRule {
                    id: 9,
                    pattern: "track".into(),
                },
            ],
        )
        .expect("compiles");
        assert_eq!(p.check("ads12.example"), Some((3, true)));
        assert_eq!(p.check("ads12.example"), Some((3, false)), "requested once");
        assert_eq!(p.check("a.tracker.example"), Some((9, true)));
        assert_eq!(p.check("fine.example"), None);
        assert_eq!(p.ruleset(), [7; 32]);
        p.apply([0; 32], &[]).expect("empty");
        assert_eq!(p.check("ads12.example"), None);
    }

    #[test]
    fn resolver_names_match_subdomains() {
        let mut r = ResolverNames::default();
        r.set(&["dns.google".into(), "Cloudflare-DNS.com.".into()]);
        assert!(r.matches("dns.google"));
        assert!(r.matches("mozilla.cloudflare-dns.com"));
        assert!(!r.matches("google"));
        assert!(!r.matches("notdns.google"));
    }
}
