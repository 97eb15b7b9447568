//! TLS rules as the worker applies them: JA3, JA4 and SNI (exact, suffix, regex) matched
//! against every ClientHello, TCP or QUIC. The supervisor sends the rules
//! (`SupervisorToWorker::TlsPolicy`) and checks every block request against its own copy
//! with the same semantics (`palisade::policy::tls::matches`): names compared in lower case,
//! a suffix matching the name itself or any name under it.

use palisade_ipc::messages::{TlsRule, TlsRuleKind, TlsWorkerPolicy};

/// Compiled program size limit for patterns (as the supervisor's check).
const SIZE_LIMIT: usize = 8 << 20;

/// The rules in force.
#[derive(Debug, Default)]
pub struct TlsRules {
    rules: Vec<(TlsRule, Option<regex::Regex>)>,
    ruleset: [u8; 32],
}

/// What a hello showed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen<'a> {
    /// Its JA3 hash.
    pub ja3: Option<&'a str>,
    /// Its JA4.
    pub ja4: Option<&'a str>,
    /// Its SNI, lower case.
    pub sni: Option<&'a str>,
}

impl TlsRules {
    /// Replaces the rules. Fails only if a pattern does not compile, which the supervisor
    /// already ruled out.
    pub fn apply(&mut self, policy: TlsWorkerPolicy) -> Result<(), regex::Error> {
        let mut rules = Vec::with_capacity(policy.rules.len());
        for r in policy.rules {
            let re = (r.kind == TlsRuleKind::SniRegex)
                .then(|| {
                    regex::RegexBuilder::new(&r.value)
                        .size_limit(SIZE_LIMIT)
                        .dfa_size_limit(SIZE_LIMIT)
                        .build()
                })
                .transpose()?;
            rules.push((r, re));
        }
        self.rules = rules;
        self.ruleset = policy.ruleset;
        Ok(())
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every rule the hello matches, with the value that matched it.
    pub fn matching<'s>(&self, seen: Seen<'s>) -> Vec<(&TlsRule, &'s str)> {
        let mut out = Vec::new();
        for (rule, re) in &self.rules {
            let value = match rule.kind {
                TlsRuleKind::Ja3 => seen.ja3,
                TlsRuleKind::Ja4 => seen.ja4,
                TlsRuleKind::Sni | TlsRuleKind::SniSuffix | TlsRuleKind::SniRegex => seen.sni,
            };
            let Some(value) = value else { continue };
            let hit = match rule.kind {
                TlsRuleKind::Ja3 | TlsRuleKind::Ja4 | TlsRuleKind::Sni => {
                    value.eq_ignore_ascii_case(&rule.value)
                }
                TlsRuleKind::SniSuffix => {
                    value.eq_ignore_ascii_case(&rule.value)
                        || value.len() > rule.value.len()
                            && value
                                .get(value.len() - rule.value.len()..)
                                .is_some_and(|t| t.eq_ignore_ascii_case(&rule.value))
                            && value.as_bytes().get(value.len() - rule.value.len() - 1)
                                == Some(&b'.')
                }
                TlsRuleKind::SniRegex => re.as_ref().is_some_and(|r| r.is_match(value)),
            };
            if hit {
                out.push((rule, value));
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn rule(id: u32, kind: TlsRuleKind, value: &str, block: bool) -> TlsRule {
        TlsRule {
            id,
            kind,
            value: value.into(),
            block,
        }
    }

    #[test]
    fn each_kind_matches_as_the_supervisor_checks() {
        let mut r = TlsRules::default();
        r.apply(TlsWorkerPolicy {
            ruleset: [1; 32],
            rules: vec![
                rule(
                    1,
                    TlsRuleKind::Ja3,
                    "e7d705a3286e19ea42f587b344ee6865",
                    true,
                ),
                rule(2, TlsRuleKind::SniSuffix, "example.com", false),
                rule(3, TlsRuleKind::SniRegex, "^c2-[0-9]+\\.", true),
                rule(4, TlsRuleKind::Sni, "exact.example.org", false),
                rule(
                    5,
                    TlsRuleKind::Ja4,
                    "t13d1516h2_8daaf6152771_e5627efa2ab1",
                    false,
                ),
            ],
        })
        .unwrap();
        let ids = |seen| {
            r.matching(seen)
                .iter()
                .map(|(r, _)| r.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(Seen {
                ja3: Some("e7d705a3286e19ea42f587b344ee6865"),
                sni: Some("a.example.com"),
                ..Seen::default()
            }),
            [1, 2]
        );
        assert_eq!(
            ids(Seen {
                sni: Some("example.com"),
                ..Seen::default()
            }),
            [2]
        );
        assert!(
            ids(Seen {
                sni: Some("badexample.com"),
                ..Seen::default()
            })
            .is_empty()
        );
        assert_eq!(
            ids(Seen {
                sni: Some("c2-9.evil.net"),
                ..Seen::default()
            }),
            [3]
        );
        assert!(
            ids(Seen {
                sni: Some("x.exact.example.org"),
                ..Seen::default()
            })
            .is_empty()
        );
        assert_eq!(
            ids(Seen {
                ja4: Some("t13d1516h2_8daaf6152771_e5627efa2ab1"),
                ..Seen::default()
            }),
            [5]
        );
    }
}
