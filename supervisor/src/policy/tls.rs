//! The TLS policy: JA3, JA4 and SNI rules from the `[tls] rules` files and from `palisade
//! tls rules add` (persisted in `<state_dir>/tls-rules.json`), the rule set the TLS worker
//! applies (it matches the hellos: the supervisor parses no packet), and the connections it
//! asks to cut, checked against the rules and the kernel's flow table before they are
//! written to `pal_flow_block`.
//!
//! Rule file lines: `KIND VALUE [block] [# comment]`, KIND one of `ja3`, `ja4`, `sni`,
//! `sni-suffix`, `sni-regex`; `#` starts a comment line. Every bad line is reported
//! ([`BadLines`]); a file with one is refused whole (the running rules stay).

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    path::{Path, PathBuf},
};

use palisade_abi::{FLOW_BLOCK_MAX, FlowBlock, FlowKey, MAP_FLOW_BLOCK, MAP_FLOW_BLOCK_ACTIVE};
use palisade_ebpf::flow_block;
use palisade_ipc::messages::{
    FlowBlockInfo, FlowBlockRequest, TlsRule, TlsRuleInfo, TlsRuleKind, TlsRuleList, TlsRuleSpec,
    TlsWorkerPolicy,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    bad_lines::BadLines,
    dns::REGEX_SIZE_LIMIT,
    ip::{StateError, write_state_file},
};
use crate::{
    config::TlsConfig,
    ebpf::maps::{KernelError, Maps, on},
};

/// The runtime rules' file in the state directory.
pub const STATE_FILE: &str = "tls-rules.json";
/// Ids of runtime rules start here (list rules count from 1).
pub const RUNTIME_ID_BASE: u32 = 1_000_000;
/// Longest rule value (a domain name is at most 253 characters; patterns and fingerprints
/// are shorter in practice).
pub const MAX_VALUE_LEN: usize = 253;
/// Longest comment.
pub const MAX_COMMENT_LEN: usize = 256;
/// Most rules in force: the rule set travels to the TLS worker in one IPC frame.
pub const MAX_RULES: usize = 1000;

/// Why the rules could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum TlsPolicyError {
    /// A rule file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Bad lines in a rule file.
    #[error(transparent)]
    BadLines(#[from] BadLines),
    /// Problems in several files, each reported.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Several(Vec<TlsPolicyError>),
    /// More rules than the worker's frame holds.
    #[error("{0} TLS rules in force, at most {MAX_RULES}")]
    TooMany(usize),
    /// A rule given at run time is invalid.
    #[error("{0}")]
    Invalid(String),
    /// `tls rules remove` of a rule no runtime rule is.
    #[error("no runtime TLS rule {kind} {value:?}")]
    NoSuchRule {
        /// Its kind.
        kind: &'static str,
        /// Its value.
        value: String,
    },
    /// The runtime rule file.
    #[error(transparent)]
    State(#[from] StateError),
}

/// One rule in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its id (alerts, block requests).
    pub id: u32,
    /// The rule, normalized.
    pub spec: TlsRuleSpec,
    /// `cli` or `FILE:LINE`.
    pub source: String,
}

/// What a ClientHello showed, for matching.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The rule kind the value is for.
    pub kind: TlsRuleKind,
    /// The JA3 hash, JA4 or SNI (as the worker reported it).
    pub value: &'a str,
}

/// Checks and normalizes a rule: JA3 hashes and names lower case, suffixes without their
/// leading dot, patterns compiled (with the DNS policy's size limits).
pub fn validate(spec: &TlsRuleSpec) -> Result<TlsRuleSpec, String> {
    let value = spec.value.trim();
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        return Err(format!("value must be 1 to {MAX_VALUE_LEN} characters"));
    }
    if let Some(c) = &spec.comment
        && (c.len() > MAX_COMMENT_LEN || c.chars().any(char::is_control))
    {
        return Err(format!(
            "comment must be at most {MAX_COMMENT_LEN} characters, without control characters"
        ));
    }
    let value = match spec.kind {
        TlsRuleKind::Ja3 => {
            if value.len() != 32 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{value:?} is not a JA3 hash (32 hex digits)"));
            }
            value.to_ascii_lowercase()
        }
        TlsRuleKind::Ja4 => {
            let parts: Vec<&str> = value.split('_').collect();
            let ok = parts.len() == 3
                && parts.first().is_some_and(|a| a.len() == 10)
                && parts.iter().skip(1).all(|p| p.len() == 12)
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(format!(
                    "{value:?} is not a JA4 fingerprint (a_b_c: 10, 12 and 12 characters)"
                ));
            }
            value.to_ascii_lowercase()
        }
        TlsRuleKind::Sni | TlsRuleKind::SniSuffix => {
            let name = value.strip_prefix('.').unwrap_or(value);
            palisade_abi::dns_name::normalize(name)
                .ok_or_else(|| format!("{value:?} is not a domain name"))?
        }
        TlsRuleKind::SniRegex => {
            compile(value).map_err(|e| format!("{value:?}: {e}"))?;
            value.to_owned()
        }
    };
    Ok(TlsRuleSpec {
        kind: spec.kind,
        value,
        block: spec.block,
        comment: spec.comment.clone(),
    })
}

fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Whether `observed` matches the rule `spec` (normalized); `regex` is the rule's compiled
/// pattern for `sni-regex`. The same semantics as the TLS worker's.
pub fn matches(spec: &TlsRuleSpec, regex: Option<&regex::Regex>, observed: Observed<'_>) -> bool {
    let seen = observed.value.to_ascii_lowercase();
    let sni = matches!(
        spec.kind,
        TlsRuleKind::Sni | TlsRuleKind::SniSuffix | TlsRuleKind::SniRegex
    );
    let same_field = observed.kind == spec.kind
        || (sni
            && matches!(
                observed.kind,
                TlsRuleKind::Sni | TlsRuleKind::SniSuffix | TlsRuleKind::SniRegex
            ));
    if !same_field {
        return false;
    }
    match spec.kind {
        TlsRuleKind::Ja3 | TlsRuleKind::Ja4 | TlsRuleKind::Sni => seen == spec.value,
        TlsRuleKind::SniSuffix => {
            seen == spec.value
                || seen
                    .strip_suffix(spec.value.as_str())
                    .is_some_and(|head| head.ends_with('.'))
        }
        TlsRuleKind::SniRegex => regex.is_some_and(|r| r.is_match(&seen)),
    }
}

/// Parses one rule file line: `None` for blank and comment lines.
pub fn parse_line(line: &str) -> Option<Result<TlsRuleSpec, String>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut words = line.split_whitespace();
    let kind_word = words.next().unwrap_or_default();
    let Some(kind) = TlsRuleKind::from_name(kind_word) else {
        return Some(Err(format!(
            "{kind_word:?} is not a rule kind (ja3, ja4, sni, sni-suffix, sni-regex)"
        )));
    };
    let Some(value) = words.next() else {
        return Some(Err(format!("{kind_word} without a value")));
    };
    let mut block = false;
    let mut comment = None;
    let rest: Vec<&str> = words.collect();
    let mut i = 0;
    if rest.first() == Some(&"block") {
        block = true;
        i = 1;
    }
    if let Some(word) = rest.get(i) {
        if let Some(first) = word.strip_prefix('#') {
            let text = std::iter::once(first)
                .chain(rest.iter().skip(i + 1).copied())
                .collect::<Vec<_>>()
                .join(" ");
            let text = text.trim().to_owned();
            comment = (!text.is_empty()).then_some(text);
        } else {
            return Some(Err(format!(
                "{word:?} after the value: only \"block\" and a # comment may follow"
            )));
        }
    }
    Some(validate(&TlsRuleSpec {
        kind,
        value: value.to_owned(),
        block,
        comment,
    }))
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    next_id: u32,
    rules: Vec<StateRule>,
}

#[derive(Serialize, Deserialize)]
struct StateRule {
    id: u32,
    kind: String,
    value: String,
    block: bool,
    comment: Option<String>,
}

/// The rules in force: list rules, then runtime rules.
#[derive(Debug)]
pub struct TlsRules {
    lists: Vec<Rule>,
    runtime: Vec<Rule>,
    next_id: u32,
    path: PathBuf,
    regexes: HashMap<u32, regex::Regex>,
}

/// Reads the rule files: every rule, or every problem of every file.
pub fn load_lists(paths: &[PathBuf]) -> Result<Vec<Rule>, TlsPolicyError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let text = match crate::paths::read_input_file(path) {
            Ok(t) => t,
            Err(source) => {
                errors.push(TlsPolicyError::Read {
                    path: path.clone(),
                    source,
                });
                continue;
            }
        };
        let mut bad = BadLines::new(path.clone());
        for (n, line) in text.lines().enumerate() {
            match parse_line(line) {
                None => {}
                Some(Ok(spec)) => out.push(Rule {
                    id: u32::try_from(out.len() + 1).unwrap_or(u32::MAX),
                    spec,
                    source: format!("{}:{}", path.display(), n + 1),
                }),
                Some(Err(problem)) => bad.push(n + 1, || problem),
            }
        }
        if !bad.is_empty() {
            errors.push(bad.into());
        }
    }
    if errors.len() == 1 {
        return Err(errors.remove(0));
    }
    if !errors.is_empty() {
        return Err(TlsPolicyError::Several(errors));
    }
    if out.len() > MAX_RULES {
        return Err(TlsPolicyError::TooMany(out.len()));
    }
    Ok(out)
}

impl TlsRules {
    /// The rules of `config`'s files and of the runtime file in `state_dir`.
    pub fn load(config: &TlsConfig, state_dir: &Path) -> Result<Self, TlsPolicyError> {
        let mut rules = Self::lists(config)?;
        rules.path = state_dir.join(STATE_FILE);
        rules.read_state()?;
        rules.compile_all();
        if rules.len() > MAX_RULES {
            return Err(TlsPolicyError::TooMany(rules.len()));
        }
        Ok(rules)
    }

    /// The rules of `config`'s files only (offline replay, when the runtime file cannot be
    /// read).
    pub fn lists_only(config: &TlsConfig) -> Result<Self, TlsPolicyError> {
        let mut rules = Self::lists(config)?;
        rules.compile_all();
        Ok(rules)
    }

    /// The list rules, no runtime file, regexes not compiled yet.
    fn lists(config: &TlsConfig) -> Result<Self, TlsPolicyError> {
        Ok(Self {
            lists: load_lists(&config.rules)?,
            runtime: Vec::new(),
            next_id: RUNTIME_ID_BASE,
            path: PathBuf::new(),
            regexes: HashMap::new(),
        })
    }

    fn read_state(&mut self) -> Result<(), TlsPolicyError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(StateError::Io {
                    op: "read",
                    path: self.path.clone(),
                    source,
                }
                .into());
            }
        };
        let corrupt = |problem: String| StateError::Corrupt {
            path: self.path.clone(),
            problem,
        };
        let file: StateFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if file.version != 1 {
            return Err(corrupt(format!("version {}", file.version)).into());
        }
        self.next_id = file.next_id.max(RUNTIME_ID_BASE);
        for r in file.rules {
            let kind = TlsRuleKind::from_name(&r.kind)
                .ok_or_else(|| corrupt(format!("rule kind {:?}", r.kind)))?;
            let spec = validate(&TlsRuleSpec {
                kind,
                value: r.value,
                block: r.block,
                comment: r.comment,
            })
            .map_err(corrupt)?;
            if r.id < RUNTIME_ID_BASE {
                return Err(corrupt(format!("rule id {} below the runtime range", r.id)).into());
            }
            self.next_id = self.next_id.max(r.id.saturating_add(1));
            self.runtime.push(Rule {
                id: r.id,
                spec,
                source: "cli".into(),
            });
        }
        Ok(())
    }

    fn save(&self) -> Result<(), StateError> {
        let file = StateFile {
            version: 1,
            next_id: self.next_id,
            rules: self
                .runtime
                .iter()
                .map(|r| StateRule {
                    id: r.id,
                    kind: r.spec.kind.name().to_owned(),
                    value: r.spec.value.clone(),
                    block: r.spec.block,
                    comment: r.spec.comment.clone(),
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            problem: e.to_string(),
        })?;
        write_state_file(&self.path, &(text + "\n"))
    }

    fn compile_all(&mut self) {
        self.regexes = self
            .iter()
            .filter(|r| r.spec.kind == TlsRuleKind::SniRegex)
            .filter_map(|r| compile(&r.spec.value).ok().map(|re| (r.id, re)))
            .collect();
    }

    /// Replaces the list rules (reload); runtime rules stay.
    pub fn set_lists(&mut self, lists: Vec<Rule>) -> Result<(), TlsPolicyError> {
        if lists.len() + self.runtime.len() > MAX_RULES {
            return Err(TlsPolicyError::TooMany(lists.len() + self.runtime.len()));
        }
        self.lists = lists;
        self.compile_all();
        Ok(())
    }

    /// Every rule, list rules first.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.lists.iter().chain(&self.runtime)
    }

    /// Rules in force.
    pub fn len(&self) -> usize {
        self.lists.len() + self.runtime.len()
    }

    /// Rules from the list files.
    pub fn list_len(&self) -> usize {
        self.lists.len()
    }

    /// Whether no rule is in force.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rule `id`.
    pub fn get(&self, id: u32) -> Option<&Rule> {
        self.iter().find(|r| r.id == id)
    }

    /// SHA-256 of the rule set (ids, kinds, values, block flags; not comments).
    pub fn sha256(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for r in self.iter() {
            h.update(r.id.to_le_bytes());
            h.update([r.spec.kind as u8, u8::from(r.spec.block)]);
            h.update((r.spec.value.len() as u32).to_le_bytes());
            h.update(r.spec.value.as_bytes());
        }
        h.finalize().into()
    }

    /// The rule set as the TLS worker applies it.
    pub fn worker_policy(&self) -> TlsWorkerPolicy {
        TlsWorkerPolicy {
            ruleset: self.sha256(),
            rules: self
                .iter()
                .map(|r| TlsRule {
                    id: r.id,
                    kind: r.spec.kind,
                    value: r.spec.value.clone(),
                    block: r.spec.block,
                })
                .collect(),
        }
    }

    /// `palisade tls rules add`: a new runtime rule (or the block flag and comment of the
    /// runtime rule with the same kind and value updated), saved before it is in force.
    pub fn add(&mut self, spec: &TlsRuleSpec) -> Result<Rule, TlsPolicyError> {
        let spec = validate(spec).map_err(TlsPolicyError::Invalid)?;
        let before = (self.runtime.clone(), self.next_id);
        let existing = self
            .runtime
            .iter_mut()
            .find(|r| r.spec.kind == spec.kind && r.spec.value == spec.value);
        let rule = if let Some(r) = existing {
            r.spec = spec;
            r.clone()
        } else {
            if self.len() >= MAX_RULES {
                return Err(TlsPolicyError::TooMany(self.len() + 1));
            }
            let rule = Rule {
                id: self.next_id,
                spec,
                source: "cli".into(),
            };
            self.next_id = self.next_id.saturating_add(1);
            self.runtime.push(rule.clone());
            rule
        };
        if let Err(e) = self.save() {
            (self.runtime, self.next_id) = before;
            return Err(e.into());
        }
        self.compile_all();
        Ok(rule)
    }

    /// `palisade tls rules remove`: the runtime rule of this kind and value.
    pub fn remove(&mut self, spec: &TlsRuleSpec) -> Result<Rule, TlsPolicyError> {
        let wanted = validate(spec).map_err(TlsPolicyError::Invalid)?;
        let Some(i) = self
            .runtime
            .iter()
            .position(|r| r.spec.kind == wanted.kind && r.spec.value == wanted.value)
        else {
            return Err(TlsPolicyError::NoSuchRule {
                kind: wanted.kind.name(),
                value: wanted.value,
            });
        };
        let rule = self.runtime.remove(i);
        if let Err(e) = self.save() {
            self.runtime.insert(i, rule);
            return Err(e.into());
        }
        self.compile_all();
        Ok(rule)
    }

    /// Whether `observed` matches rule `rule`.
    pub fn rule_matches(&self, rule: &Rule, observed: Observed<'_>) -> bool {
        matches(&rule.spec, self.regexes.get(&rule.id), observed)
    }
}

/// Why a flow-block request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum BlockRefusal {
    /// The claim is not backed by the rules: a worker that applies them would not send it.
    #[error("{0}")]
    Unbacked(String),
    /// The request is sound but cannot be carried out now (table full, kernel error, no
    /// such flow any more).
    #[error("{0}")]
    NotNow(String),
}

/// The TLS policy in force: rules, block lifetime, and what it cut.
#[derive(Debug)]
pub struct TlsPolicy {
    /// The rules.
    pub rules: TlsRules,
    /// How long a cut connection stays cut (ns).
    pub block_ttl_ns: u64,
    /// Connections each rule cut since start.
    pub blocks_by_rule: BTreeMap<u32, u64>,
    /// Entries the kernel map held at the last sweep.
    pub active: u32,
    /// Sound requests that could not be carried out (map full, flow gone, kernel error).
    pub refused: u64,
    /// The rule set hash the TLS worker last said it applies.
    pub worker_ruleset: Option<[u8; 32]>,
    /// Whether the rules are in force (the `tls-rules` feature): when not, the worker
    /// applies an empty rule set and no connection is cut.
    pub enforcing: bool,
    /// When lapsed blocks were last looked for.
    last_sweep: Option<std::time::Instant>,
}

impl TlsPolicy {
    /// The policy of `config`, with the blocks a previous run left in the kernel counted.
    pub fn load(config: &TlsConfig, state_dir: &Path) -> Result<Self, TlsPolicyError> {
        Ok(Self {
            rules: TlsRules::load(config, state_dir)?,
            block_ttl_ns: u64::from(config.block_ttl_secs) * 1_000_000_000,
            blocks_by_rule: BTreeMap::new(),
            active: 0,
            refused: 0,
            worker_ruleset: None,
            enforcing: true,
            last_sweep: None,
        })
    }

    /// The rule set the TLS worker is to apply: the rules, or none while switched off.
    pub fn worker_policy(&self) -> TlsWorkerPolicy {
        if self.enforcing {
            self.rules.worker_policy()
        } else {
            TlsWorkerPolicy {
                ruleset: Sha256::digest([]).into(),
                rules: Vec::new(),
            }
        }
    }

    /// The SHA-256 of [`Self::worker_policy`]'s rule set (what the worker must report).
    pub fn ruleset_in_force(&self) -> [u8; 32] {
        self.worker_policy().ruleset
    }

    /// Lets every connection the rules cut go (`tls-rules` switched off): the flow-block
    /// map emptied, its generation 0.
    pub fn lift_all(&mut self, maps: &dyn Maps) -> Result<usize, KernelError> {
        let fd = maps.fd(MAP_FLOW_BLOCK)?;
        let blocks = flow_block::dump(fd).map_err(on(MAP_FLOW_BLOCK))?;
        for (key, _) in &blocks {
            flow_block::remove(fd, key).map_err(on(MAP_FLOW_BLOCK))?;
        }
        flow_block::set_generation(maps.fd(MAP_FLOW_BLOCK_ACTIVE)?, 0)
            .map_err(on(MAP_FLOW_BLOCK_ACTIVE))?;
        self.active = 0;
        Ok(blocks.len())
    }

    /// Checks a worker's request to cut a connection and writes the block: the rule must
    /// exist, block, and match what the worker saw; the kernel must track the flow
    /// (`flow_known`). `now_ns` is the boot clock.
    pub fn block_request(
        &mut self,
        maps: &dyn Maps,
        flow_known: impl Fn(&FlowKey) -> Result<bool, KernelError>,
        req: &FlowBlockRequest,
        now_ns: u64,
    ) -> Result<FlowKey, BlockRefusal> {
        let unbacked = |why: String| BlockRefusal::Unbacked(why);
        if !self.enforcing {
            // Sent before the worker had the empty rule set: not its fault.
            return Err(BlockRefusal::NotNow("tls-rules is switched off".into()));
        }
        let rule = self
            .rules
            .get(req.rule_id)
            .ok_or_else(|| unbacked(format!("no TLS rule {}", req.rule_id)))?;
        if !rule.spec.block {
            return Err(unbacked(format!("TLS rule {} does not block", rule.id)));
        }
        let observed = Observed {
            kind: rule.spec.kind,
            value: &req.observed,
        };
        if !self.rules.rule_matches(rule, observed) {
            return Err(unbacked(format!(
                "{:?} does not match TLS rule {} ({} {:?})",
                req.observed,
                rule.id,
                rule.spec.kind.name(),
                rule.spec.value
            )));
        }
        let rule_id = rule.id;
        let (key, _) = FlowKey::normalized(req.ip_version, req.l4_proto, req.src, req.dst);
        match flow_known(&key) {
            Ok(true) => {}
            Ok(false) => {
                return Err(BlockRefusal::NotNow(
                    "the kernel does not track this connection (ended already?)".into(),
                ));
            }
            Err(e) => return Err(BlockRefusal::NotNow(crate::error_chain(&e))),
        }
        if self.active >= FLOW_BLOCK_MAX {
            self.sweep(maps, now_ns, false);
            if self.active >= FLOW_BLOCK_MAX {
                return Err(BlockRefusal::NotNow(format!(
                    "flow-block map full ({FLOW_BLOCK_MAX} connections)"
                )));
            }
        }
        let block = FlowBlock {
            expires_ns: now_ns.saturating_add(self.block_ttl_ns),
            hello_ns: req.hello_ns,
            created_ns: now_ns,
            rule_id,
            ..FlowBlock::default()
        };
        let write = || -> Result<(), KernelError> {
            flow_block::insert(maps.fd(MAP_FLOW_BLOCK)?, &key, &block).map_err(on(MAP_FLOW_BLOCK))
        };
        write().map_err(|e| BlockRefusal::NotNow(crate::error_chain(&e)))?;
        *self.blocks_by_rule.entry(rule_id).or_default() += 1;
        self.sweep(maps, now_ns, true);
        Ok(key)
    }

    /// Deletes lapsed blocks and gives the map a new generation if it changed (`changed`:
    /// the caller changed it): 0 when empty, else one the flows have not seen, so each
    /// flow looks itself up again once. Returns the blocks in force.
    pub fn sweep(
        &mut self,
        maps: &dyn Maps,
        now_ns: u64,
        changed: bool,
    ) -> Vec<(FlowKey, FlowBlock)> {
        let run = || -> Result<Vec<(FlowKey, FlowBlock)>, KernelError> {
            let fd = maps.fd(MAP_FLOW_BLOCK)?;
            let mut live = Vec::new();
            let mut changed = changed;
            for (key, block) in flow_block::dump(fd).map_err(on(MAP_FLOW_BLOCK))? {
                if block.expires_ns <= now_ns {
                    flow_block::remove(fd, &key).map_err(on(MAP_FLOW_BLOCK))?;
                    changed = true;
                } else {
                    live.push((key, block));
                }
            }
            let active = maps.fd(MAP_FLOW_BLOCK_ACTIVE)?;
            let current = flow_block::generation(active).map_err(on(MAP_FLOW_BLOCK_ACTIVE))?;
            let next = if live.is_empty() {
                0
            } else if changed || current == 0 {
                current.wrapping_add(1).max(1)
            } else {
                current
            };
            if next != current {
                flow_block::set_generation(active, next).map_err(on(MAP_FLOW_BLOCK_ACTIVE))?;
            }
            Ok(live)
        };
        match run() {
            Ok(live) => {
                self.active = u32::try_from(live.len()).unwrap_or(u32::MAX);
                live
            }
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "sweeping the flow-block map");
                Vec::new()
            }
        }
    }

    /// Deletes lapsed blocks, at most once a second and only while there are some.
    pub fn expire(&mut self, maps: &dyn Maps, now: std::time::Instant) {
        if self.active == 0
            || self
                .last_sweep
                .is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        self.sweep(maps, crate::flows::boot_now_ns(), false);
    }

    /// `palisade tls rules list`.
    pub fn list(&mut self, maps: &dyn Maps, now_ns: u64, limit: u32) -> TlsRuleList {
        let limit = limit as usize;
        let live = self.sweep(maps, now_ns, false);
        let endpoint = |addr: &[u8; 16], port: u16, v4: bool| {
            let ip = if v4 {
                IpAddr::from([addr[0], addr[1], addr[2], addr[3]])
            } else {
                IpAddr::from(*addr)
            };
            std::net::SocketAddr::new(ip, port).to_string()
        };
        TlsRuleList {
            total_rules: u32::try_from(self.rules.len()).unwrap_or(u32::MAX),
            rules: self
                .rules
                .iter()
                .take(limit)
                .map(|r| self.info(r))
                .collect(),
            total_blocks: u32::try_from(live.len()).unwrap_or(u32::MAX),
            blocks: live
                .iter()
                .take(limit)
                .map(|(k, b)| FlowBlockInfo {
                    rule_id: b.rule_id,
                    proto: if k.l4_proto == 6 { "TCP" } else { "UDP" }.into(),
                    a: endpoint(&k.addr_lo, k.port_lo, k.ip_version == 4),
                    b: endpoint(&k.addr_hi, k.port_hi, k.ip_version == 4),
                    latency_us: b.created_ns.saturating_sub(b.hello_ns) / 1000,
                    expires_in_secs: b.expires_ns.saturating_sub(now_ns) / 1_000_000_000,
                })
                .collect(),
        }
    }

    /// A rule as `tls rules` shows it.
    pub fn info(&self, r: &Rule) -> TlsRuleInfo {
        TlsRuleInfo {
            id: r.id,
            spec: r.spec.clone(),
            source: r.source.clone(),
            blocks: self.blocks_by_rule.get(&r.id).copied().unwrap_or(0),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn spec(kind: TlsRuleKind, value: &str) -> TlsRuleSpec {
        TlsRuleSpec {
            kind,
            value: value.into(),
            block: false,
            comment: None,
        }
    }

    fn seen(kind: TlsRuleKind, value: &str) -> Observed<'_> {
        Observed { kind, value }
    }

    #[test]
    fn lines_parse_every_kind_and_refuse_what_is_wrong() {
        let r = parse_line("ja3 E7D705A3286E19EA42F587B344EE6865 block # known bad")
            .unwrap()
            .unwrap();
        assert_eq!(r.kind, TlsRuleKind::Ja3);
        assert_eq!(r.value, "e7d705a3286e19ea42f587b344ee6865");
        assert!(r.block);
        assert_eq!(r.comment.as_deref(), Some("known bad"));
        let r = parse_line("sni-suffix .Example.COM").unwrap().unwrap();
        assert_eq!(
            (r.kind, r.value.as_str(), r.block),
            (TlsRuleKind::SniSuffix, "example.com", false)
        );
        let r = parse_line("ja4 t13d1516h2_8daaf6152771_e5627efa2ab1")
            .unwrap()
            .unwrap();
        assert_eq!(r.kind, TlsRuleKind::Ja4);
        assert!(
            parse_line("sni-regex ^c2-[0-9]+\\.example\\.net$ block")
                .unwrap()
                .is_ok()
        );
        assert!(parse_line("   # only a comment").is_none());
        assert!(parse_line("").is_none());
        for bad in [
            "ja3 abc",
            "ja4 t13d_x_y",
            "sni bad..name",
            "sni-regex (unclosed",
            "tls x",
            "sni",
            "sni a.example drop",
        ] {
            assert!(parse_line(bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_follows_each_kind() {
        let suffix = validate(&spec(TlsRuleKind::SniSuffix, "example.com")).unwrap();
        assert!(matches(
            &suffix,
            None,
            seen(TlsRuleKind::Sni, "example.com")
        ));
        assert!(matches(
            &suffix,
            None,
            seen(TlsRuleKind::Sni, "A.Example.com")
        ));
        assert!(!matches(
            &suffix,
            None,
            seen(TlsRuleKind::Sni, "badexample.com")
        ));
        let exact = validate(&spec(TlsRuleKind::Sni, "a.example.com")).unwrap();
        assert!(!matches(
            &exact,
            None,
            seen(TlsRuleKind::Sni, "b.a.example.com")
        ));
        let re = validate(&spec(TlsRuleKind::SniRegex, "^c2-[0-9]+\\.")).unwrap();
        let compiled = compile(&re.value).unwrap();
        assert!(matches(
            &re,
            Some(&compiled),
            seen(TlsRuleKind::Sni, "c2-17.example.net")
        ));
        assert!(!matches(
            &re,
            Some(&compiled),
            seen(TlsRuleKind::Sni, "www.example.net")
        ));
        let ja3 = validate(&spec(TlsRuleKind::Ja3, "E7D705A3286E19EA42F587B344EE6865")).unwrap();
        assert!(matches(
            &ja3,
            None,
            seen(TlsRuleKind::Ja3, "e7d705a3286e19ea42f587b344ee6865")
        ));
        assert!(!matches(
            &ja3,
            None,
            seen(TlsRuleKind::Sni, "e7d705a3286e19ea42f587b344ee6865")
        ));
    }

    #[test]
    fn runtime_rules_persist_and_lists_report_every_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("rules.txt");
        std::fs::write(
            &list,
            "sni a.example\nja3 nope\nsni b.example block\nsni-regex (\n",
        )
        .unwrap();
        let cfg = TlsConfig {
            rules: vec![list.clone()],
            ..TlsConfig::default()
        };
        let e = TlsRules::load(&cfg, dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("rules.txt:2:") && e.contains("rules.txt:4:"),
            "{e}"
        );
        std::fs::write(&list, "sni a.example\nsni b.example block\n").unwrap();
        let mut rules = TlsRules::load(&cfg, dir.path()).unwrap();
        assert_eq!(rules.len(), 2);
        let mut add = spec(TlsRuleKind::Ja3, "e7d705a3286e19ea42f587b344ee6865");
        add.block = true;
        let r = rules.add(&add).unwrap();
        assert_eq!(r.id, RUNTIME_ID_BASE);
        let hash = rules.sha256();
        let again = TlsRules::load(&cfg, dir.path()).unwrap();
        assert_eq!(again.len(), 3);
        assert_eq!(
            again.sha256(),
            hash,
            "the runtime rule came back from its file"
        );
        assert!(
            rules.remove(&spec(TlsRuleKind::Sni, "a.example")).is_err(),
            "list rules stay"
        );
        rules.remove(&add).unwrap();
        assert_eq!(TlsRules::load(&cfg, dir.path()).unwrap().len(), 2);
    }
}
