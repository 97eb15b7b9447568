//! The DNS rule set: block lists, allow lists and regex lists, validated
//! and merged into what the kernel enforces (exact and suffix names, by
//! FNV-1a hash, see `palisade_abi::dns_name`) and what the DNS worker
//! matches (regexes, one `RegexSet`).
//!
//! Semantics, identical in the kernel and in [`RuleSet::decide`]: a name is
//! allowed when any allow rule matches it (an exact rule on the name, a
//! suffix rule on the name or a parent); otherwise it is blocked when any
//! block rule matches. Regex rules are matched by the worker, which asks the
//! supervisor to learn an exact block for the name (so the first query can
//! leak; the next is blocked in the kernel).

use std::{collections::HashMap, path::PathBuf};

use regex::RegexSetBuilder;
use sha2::{Digest, Sha256};

use super::{
    bad_lines::BadLines,
    dns_lists::{self, ListError, Match},
};

/// Compiled size limit of all regexes together (regex crate's NFA size).
pub const REGEX_SIZE_LIMIT: usize = 8 << 20;
/// Most regex patterns.
pub const MAX_REGEXES: usize = 1024;
/// Longest regex pattern.
pub const MAX_REGEX_LEN: usize = 512;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Block the name.
    Block,
    /// Allow it, whatever blocks it.
    Allow,
}

/// What to do with a blocked query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockAction {
    /// Answer NXDOMAIN from the kernel.
    Nxdomain,
    /// Drop the query.
    Drop,
    /// Nothing: the feature `dns-blocking` is switched off (`crate::features`); never from
    /// the configuration.
    Off,
}

/// How a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// A name (exact or with its subdomains).
    Name(Match),
    /// A regular expression (matched by the worker).
    Regex,
}

/// One rule, for `palisade dns test` and `blocked-hits` (a view into the
/// compact [`RuleSet`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule<'a> {
    /// Kernel rule id (1-based; 0 is "none").
    pub id: u32,
    /// Block or allow.
    pub action: Action,
    /// How it matches.
    pub kind: RuleKind,
    /// Normalized name or regex pattern.
    pub text: &'a str,
    /// File it came from (`None`: built in).
    pub file: Option<&'a std::path::Path>,
    /// Line in that file.
    pub line: u32,
}

impl Rule<'_> {
    /// `file:line`, or what the built-in rule is.
    pub fn source(&self) -> String {
        match self.file {
            Some(f) => format!("{}:{}", f.display(), self.line),
            None => "built-in (Firefox DoH canary)".to_owned(),
        }
    }
}

/// A rule as stored: 16 bytes, the text in the set's arena.
#[derive(Debug, Clone, Copy)]
struct Stored {
    start: u32,
    len: u16,
    /// Index into `files`; `u16::MAX` = built in.
    file: u16,
    line: u32,
    action: Action,
    kind: RuleKind,
}

/// Pseudo file index of built-in rules.
const BUILT_IN: u16 = u16::MAX;

/// The configured lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsLists {
    /// Block lists.
    pub blocklists: Vec<PathBuf>,
    /// Allow lists (override blocks).
    pub allowlists: Vec<PathBuf>,
    /// Regex lists (block).
    pub regex_lists: Vec<PathBuf>,
    /// Known encrypted-DNS (DoH/DoT) resolvers: names and addresses.
    pub encrypted_dns: Vec<String>,
}

/// Firefox's DoH canary: answered NXDOMAIN whenever blocking is on, so
/// browsers keep using the network's resolver (and its policy).
pub const DOH_CANARY: &str = "use-application-dns.net";

/// Encrypted-DNS resolvers known by default (`[dns] encrypted_dns_resolvers`
/// replaces the list): the big public DoH/DoT services.
pub const DEFAULT_ENCRYPTED_DNS: &[&str] = &[
    "dns.google",
    "dns64.dns.google",
    "cloudflare-dns.com",
    "one.one.one.one",
    "dns.quad9.net",
    "doh.opendns.com",
    "dns.adguard-dns.com",
    "doh.cleanbrowsing.org",
    "dns.nextdns.io",
    "doh.mullvad.net",
    "8.8.8.8",
    "8.8.4.4",
    "1.1.1.1",
    "1.0.0.1",
    "9.9.9.9",
    "149.112.112.112",
    "208.67.222.222",
    "208.67.220.220",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "2620:fe::fe",
    "2620:fe::9",
];

/// Why a rule set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuleSetError {
    /// A list file is broken.
    #[error(transparent)]
    List(#[from] ListError),
    /// Regexes of one file that do not compile or are too big (every one is counted).
    #[error(transparent)]
    Regex(BadLines),
    /// Several list files failed, in configuration order.
    #[error("{}", several(.0))]
    Several(Vec<RuleSetError>),
    /// Too many regexes, or the set exceeds the size limit.
    #[error("regex lists: {0}")]
    RegexSet(String),
    /// More rules or list files than the set can index (4 Gi rules, 65534 files).
    #[error("too many rules or list files")]
    TooMany,
}

/// A regex error on one line: the syntax error's last line (the regex crate draws the
/// pattern with a caret above it), or the message with its line breaks as spaces.
fn one_line(e: &regex::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once("\nerror: ") {
        Some((_, last)) => last.trim().to_owned(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// One error per line of text, each with its causes.
fn several(errors: &[RuleSetError]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| crate::error_chain(e)).collect();
    lines.join("\n")
}

/// A validated rule set, compact enough for a million names (about 60
/// bytes per name rule: text, record and index; see docs/dns.md).
#[derive(Debug)]
pub struct RuleSet {
    files: Vec<PathBuf>,
    /// Every rule's text, back to back.
    arena: String,
    rules: Vec<Stored>,
    /// (FNV-1a hash of the normalized name, kind) -> rule index; allow
    /// rules are read first, so they keep a name over a later block.
    names: HashMap<(u64, Match), u32>,
    regexes: regex::RegexSet,
    /// Rule index of each regex in `regexes`.
    regex_rules: Vec<u32>,
    sha256: [u8; 32],
    /// Rules that repeated an earlier one (same name and kind).
    pub duplicates: usize,
    /// Encrypted-DNS resolver names (for the DNS worker).
    pub resolver_names: Vec<String>,
    /// Encrypted-DNS resolver addresses (for the flow worker).
    pub resolver_addresses: Vec<String>,
}

/// Builds a [`RuleSet`].
struct Builder {
    set: RuleSet,
    hasher: Sha256,
}

impl Builder {
    fn push(
        &mut self,
        text: &str,
        file: u16,
        line: usize,
        action: Action,
        kind: RuleKind,
    ) -> Result<u32, RuleSetError> {
        let index = u32::try_from(self.set.rules.len()).map_err(|_| RuleSetError::TooMany)?;
        let start = u32::try_from(self.set.arena.len()).map_err(|_| RuleSetError::TooMany)?;
        self.set.arena.push_str(text);
        self.set.rules.push(Stored {
            start,
            len: u16::try_from(text.len()).unwrap_or(u16::MAX),
            file,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            action,
            kind,
        });
        // Canonical form for the rule-set hash.
        self.hasher.update([action as u8, kind.code()]);
        self.hasher.update(text.as_bytes());
        self.hasher.update(b"\n");
        Ok(index)
    }

    fn name(
        &mut self,
        name: &str,
        file: u16,
        line: usize,
        action: Action,
        kind: Match,
    ) -> Result<(), RuleSetError> {
        let key = (palisade_abi::dns_name::name_hash(name), kind);
        if self.set.names.contains_key(&key) {
            self.set.duplicates += 1;
            return Ok(());
        }
        let index = self.push(name, file, line, action, RuleKind::Name(kind))?;
        self.set.names.insert(key, index);
        Ok(())
    }
}

impl RuleKind {
    fn code(self) -> u8 {
        match self {
            Self::Name(Match::Exact) => 1,
            Self::Name(Match::Suffix) => 2,
            Self::Regex => 3,
        }
    }
}

impl RuleSet {
    /// Reads and validates every list. Nothing is applied here.
    pub fn load(lists: &DnsLists) -> Result<Self, RuleSetError> {
        let files: Vec<PathBuf> = lists
            .allowlists
            .iter()
            .chain(&lists.blocklists)
            .chain(&lists.regex_lists)
            .cloned()
            .collect();
        if files.len() >= usize::from(BUILT_IN) {
            return Err(RuleSetError::TooMany);
        }
        let mut b = Builder {
            set: Self {
                files,
                arena: String::new(),
                rules: Vec::new(),
                names: HashMap::new(),
                regexes: regex::RegexSet::empty(),
                regex_rules: Vec::new(),
                sha256: [0; 32],
                duplicates: 0,
                resolver_names: Vec::new(),
                resolver_addresses: Vec::new(),
            },
            hasher: Sha256::new(),
        };
        let mut file = 0u16;
        // Every file is read, also after a broken one: all their errors are reported.
        let mut errors = Vec::new();
        for (action, paths) in [
            (Action::Allow, &lists.allowlists),
            (Action::Block, &lists.blocklists),
        ] {
            for path in paths {
                let mut failed = None;
                let read = dns_lists::for_each_entry(path, |name, kind, line| {
                    if failed.is_none() {
                        failed = b.name(name, file, line, action, kind).err();
                    }
                });
                if let Err(e) = read {
                    errors.push(e.into());
                }
                if let Some(e) = failed {
                    return Err(e);
                }
                file += 1;
            }
        }
        if !lists.blocklists.is_empty() || !lists.regex_lists.is_empty() {
            b.name(DOH_CANARY, BUILT_IN, 0, Action::Block, Match::Suffix)?;
        }
        for resolver in &lists.encrypted_dns {
            b.hasher.update(b"resolver ");
            b.hasher.update(resolver.as_bytes());
            b.hasher.update(b"\n");
        }
        let mut patterns = Vec::new();
        for path in &lists.regex_lists {
            let entries = match dns_lists::read_regexes(path) {
                Ok(entries) => entries,
                Err(e) => {
                    errors.push(e.into());
                    file += 1;
                    continue;
                }
            };
            let mut bad = BadLines::new(path.clone());
            for (line, pattern) in entries {
                if pattern.len() > MAX_REGEX_LEN {
                    bad.push(line, || {
                        format!("regex {pattern:?}: longer than {MAX_REGEX_LEN} bytes")
                    });
                    continue;
                }
                // Compile alone first, so an error names its line.
                if let Err(e) = regex::RegexBuilder::new(&pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                {
                    bad.push(line, || format!("regex {pattern:?}: {}", one_line(&e)));
                    continue;
                }
                let index = b.push(&pattern, file, line, Action::Block, RuleKind::Regex)?;
                b.set.regex_rules.push(index);
                patterns.push(pattern);
            }
            if !bad.is_empty() {
                errors.push(RuleSetError::Regex(bad));
            }
            file += 1;
        }
        if errors.len() > 1 {
            return Err(RuleSetError::Several(errors));
        }
        if let Some(e) = errors.pop() {
            return Err(e);
        }
        if patterns.len() > MAX_REGEXES {
            return Err(RuleSetError::RegexSet(format!(
                "{} patterns, at most {MAX_REGEXES}",
                patterns.len()
            )));
        }
        b.set.regexes = RegexSetBuilder::new(&patterns)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| RuleSetError::RegexSet(e.to_string()))?;
        let (addresses, names): (Vec<String>, Vec<String>) = lists
            .encrypted_dns
            .iter()
            .cloned()
            .partition(|r| r.parse::<std::net::IpAddr>().is_ok());
        b.set.resolver_names = names;
        b.set.resolver_addresses = addresses;
        b.set.sha256 = b.hasher.finalize().into();
        b.set.arena.shrink_to_fit();
        b.set.rules.shrink_to_fit();
        Ok(b.set)
    }

    fn view(&self, index: u32) -> Option<Rule<'_>> {
        let r = self.rules.get(index as usize)?;
        let start = r.start as usize;
        Some(Rule {
            id: index + 1,
            action: r.action,
            kind: r.kind,
            text: self
                .arena
                .get(start..start + usize::from(r.len))
                .unwrap_or_default(),
            file: self.files.get(usize::from(r.file)).map(PathBuf::as_path),
            line: r.line,
        })
    }

    /// Number of rules (names and regexes).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the set holds no rule at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Name rules as (name hash, action, kind, rule id), for the kernel.
    pub fn name_rules(&self) -> impl Iterator<Item = (u64, Action, Match, u32)> + '_ {
        self.names.iter().filter_map(|(&(hash, kind), &index)| {
            self.rules
                .get(index as usize)
                .map(|r| (hash, r.action, kind, index + 1))
        })
    }

    /// A rule by kernel id.
    pub fn rule(&self, id: u32) -> Option<Rule<'_>> {
        id.checked_sub(1).and_then(|i| self.view(i))
    }

    /// SHA-256 of the canonical rule set.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Regex patterns with their rule ids, for the DNS worker.
    pub fn regexes(&self) -> Vec<(u32, String)> {
        self.regex_rules
            .iter()
            .filter_map(|i| self.view(*i))
            .map(|r| (r.id, r.text.to_owned()))
            .collect()
    }

    /// True when regex rule `rule_id` matches the normalized `name`.
    pub fn regex_matches(&self, name: &str, rule_id: u32) -> bool {
        self.regexes
            .matches(name)
            .iter()
            .any(|i| self.regex_rules.get(i).is_some_and(|r| r + 1 == rule_id))
    }

    /// Which rule decides `name` and how: the kernel's semantics for name
    /// rules, then the regexes. `None` = no rule matches.
    pub fn decide(&self, name: &str) -> Option<(Rule<'_>, Decision)> {
        let norm = palisade_abi::dns_name::normalize(name)?;
        let mut block = None;
        for (i, suffix) in palisade_abi::dns_name::suffixes(&norm).enumerate() {
            let hash = palisade_abi::dns_name::name_hash(suffix);
            let kinds: &[Match] = if i == 0 {
                &[Match::Exact, Match::Suffix]
            } else {
                &[Match::Suffix]
            };
            for kind in kinds {
                let Some(rule) = self.names.get(&(hash, *kind)).and_then(|i| self.view(*i)) else {
                    continue;
                };
                match rule.action {
                    Action::Allow => return Some((rule, Decision::Allowed)),
                    Action::Block => block = block.or(Some(rule)),
                }
            }
        }
        if let Some(rule) = block {
            return Some((rule, Decision::Blocked));
        }
        let first = self.regexes.matches(&norm).iter().next()?;
        let rule = self.regex_rules.get(first).and_then(|i| self.view(*i))?;
        Some((rule, Decision::RegexBlocked))
    }
}

/// How a name is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An allow rule matches: never blocked.
    Allowed,
    /// A name rule blocks it in the kernel from the first query.
    Blocked,
    /// A regex matches: the worker requests a learned block; the first
    /// query may reach the resolver.
    RegexBlocked,
}

/// Parses `block_action`.
pub fn parse_block_action(s: &str) -> Option<BlockAction> {
    match s {
        "nxdomain" => Some(BlockAction::Nxdomain),
        "drop" => Some(BlockAction::Drop),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(block: &str, allow: &str, regex: &str) -> (DnsLists, PathBuf) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("palisade-rules-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let w = |n: &str, t: &str| {
            let p = dir.join(n);
            std::fs::write(&p, t).expect("write");
            p
        };
        (
            DnsLists {
                blocklists: vec![w("b", block)],
                allowlists: vec![w("a", allow)],
                regex_lists: vec![w("r", regex)],
                encrypted_dns: vec![],
            },
            dir,
        )
    }

    #[test]
    fn decisions() {
        let (l, dir) = lists(
            "ads.example\n||tracker.example^\n0.0.0.0 exact.example\n",
            "ok.tracker.example\n",
            "^bad[0-9]+\\.example$\n",
        );
        let set = RuleSet::load(&l).expect("valid");
        let d = |n: &str| set.decide(n).map(|(r, d)| (r.text.to_owned(), d));
        assert_eq!(
            d("ads.example"),
            Some(("ads.example".into(), Decision::Blocked))
        );
        assert_eq!(
            d("sub.ads.example"),
            None,
            "exact rules do not cover subdomains"
        );
        assert_eq!(
            d("a.b.tracker.example"),
            Some(("tracker.example".into(), Decision::Blocked))
        );
        assert_eq!(
            d("TRACKER.example."),
            Some(("tracker.example".into(), Decision::Blocked))
        );
        assert_eq!(
            d("ok.tracker.example"),
            Some(("ok.tracker.example".into(), Decision::Allowed))
        );
        assert_eq!(
            d("bad42.example"),
            Some(("^bad[0-9]+\\.example$".into(), Decision::RegexBlocked))
        );
        assert_eq!(d("good.example"), None);
        assert_eq!(
            d("use-application-dns.net"),
            Some((DOH_CANARY.into(), Decision::Blocked)),
            "canary built in"
        );
        assert_eq!(set.rule(1).map(|r| r.action), Some(Action::Allow));
        assert!(set.rule(2).is_some_and(|r| r.source().ends_with("b:1")));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn broken_regex_names_its_line() {
        let (l, dir) = lists("", "", "# c\nfine\n(unclosed\n");
        let e = RuleSet::load(&l).expect_err("bad regex").to_string();
        assert!(
            e.ends_with("r:3: regex \"(unclosed\": unclosed group"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
        // Every bad line of every file, in configuration order.
        let (l, dir) = lists("ok.example\nbad!\nworse!\n", "", "(a\nfine\n[b\n");
        let e = RuleSet::load(&l).expect_err("bad lines").to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 4, "{e}");
        for (line, at) in lines
            .iter()
            .zip(["b:2: ", "b:3: ", "r:1: regex", "r:3: regex"])
        {
            assert!(line.contains(at), "{at} in {e}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn hash_changes_with_content() {
        let (a, d1) = lists("x.example\n", "", "");
        let (b, d2) = lists("y.example\n", "", "");
        assert_ne!(
            RuleSet::load(&a).expect("a").sha256(),
            RuleSet::load(&b).expect("b").sha256()
        );
        let _ = std::fs::remove_dir_all(d1);
        let _ = std::fs::remove_dir_all(d2);
    }
}
