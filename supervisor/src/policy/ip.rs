//! The IP policy as the supervisor holds it: rules from list files
//! (`[ip] blocklists`), rules added at run time (`palisade block add`,
//! persisted in `<state_dir>/ip-rules.json`), and what of both the kernel
//! must enforce. No kernel calls here (`ip_kernel` writes the maps).
//!
//! One prefix, one kernel entry: a list rule is permanent, so it shadows a
//! runtime rule of the same CIDR (the runtime rule is kept, listed as not in
//! the kernel, and takes over if a reload drops the list entry). List rules
//! are numbered from 1 in list order (the first entry of a duplicated prefix
//! wins); runtime rules from [`RUNTIME_ID_BASE`], ids kept across restarts.

use std::{
    collections::{BTreeMap, HashSet},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use palisade_abi::IpRule;
use palisade_ebpf::ip_policy::{Family, Prefix};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ip_lists::{self, IpListError};

/// First id of runtime rules (list rules count up from 1).
pub const RUNTIME_ID_BASE: u32 = 0x8000_0000;
/// Most runtime rules (each trie is created with this much spare room).
pub const MAX_RUNTIME_RULES: u32 = 65_536;
/// Name of the runtime rule file in the state directory.
pub const STATE_FILE: &str = "ip-rules.json";
/// Longest accepted TTL (10 years).
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Longest comment kept.
pub const MAX_COMMENT: usize = 200;

/// A rule from a list file.
#[derive(Debug, Clone)]
pub struct ListRule {
    /// Rule id.
    pub id: u32,
    /// The prefix.
    pub prefix: Prefix,
    /// Index into [`IpRuleSet::files`].
    pub file: u32,
    /// Line in that file.
    pub line: u32,
    /// Trailing comment of the line: `len` bytes at `at` in [`IpRuleSet::comments`]
    /// (one arena instead of a million small allocations).
    comment: (u32, u32),
}

/// Every list rule, validated.
#[derive(Debug, Default)]
pub struct IpRuleSet {
    /// The list files, in configuration order.
    pub files: Vec<PathBuf>,
    /// Unique prefixes, in list order; `rules[i].id == i + 1`.
    pub rules: Vec<ListRule>,
    /// (prefix, index in `rules`), sorted by prefix: [`IpRuleSet::get`] by binary search
    /// (24 bytes per rule, half of a hash map's).
    index: Vec<(Prefix, u32)>,
    /// Every list comment, back to back.
    comments: String,
    /// Entries dropped because an earlier entry had the same prefix.
    pub duplicates: usize,
    /// Entries whose host bits were cleared.
    pub normalised: usize,
    sha256: [u8; 32],
}

impl IpRuleSet {
    /// Reads and validates every list; any error refuses the whole set.
    pub fn load(paths: &[PathBuf]) -> Result<Self, IpListError> {
        let mut set = Self {
            files: paths.to_vec(),
            ..Self::default()
        };
        let mut hash = Sha256::new();
        let mut seen: HashSet<Prefix> = HashSet::new();
        // Every file is read, also after a broken one: all their errors are reported.
        let mut errors = Vec::new();
        for (file, path) in paths.iter().enumerate() {
            let list = match ip_lists::load(path) {
                Ok(list) => list,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if !errors.is_empty() {
                continue;
            }
            set.normalised += list.normalised;
            for entry in list.entries {
                hash.update(entry.prefix.to_string().as_bytes());
                hash.update(b"\n");
                let next = u32::try_from(set.rules.len()).unwrap_or(u32::MAX);
                if next.saturating_add(1) >= RUNTIME_ID_BASE {
                    break; // 2^31 list rules: far beyond any kernel budget
                }
                if !seen.insert(entry.prefix) {
                    set.duplicates += 1;
                    continue;
                }
                let comment = entry.comment.as_deref().unwrap_or_default();
                let at = u32::try_from(set.comments.len()).unwrap_or(u32::MAX);
                set.comments.push_str(comment);
                set.rules.push(ListRule {
                    id: next + 1,
                    prefix: entry.prefix,
                    file: u32::try_from(file).unwrap_or(u32::MAX),
                    line: u32::try_from(entry.line).unwrap_or(u32::MAX),
                    comment: (at, u32::try_from(comment.len()).unwrap_or(0)),
                });
            }
        }
        drop(seen);
        if errors.len() > 1 {
            return Err(IpListError::Several(errors));
        }
        if let Some(e) = errors.pop() {
            return Err(e);
        }
        set.index = set
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.prefix, u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        set.index.sort_unstable_by_key(|&(p, _)| p);
        set.comments.shrink_to_fit();
        set.sha256 = hash.finalize().into();
        Ok(set)
    }

    /// The list rule of exactly `prefix`.
    pub fn get(&self, prefix: &Prefix) -> Option<&ListRule> {
        let at = self.index.binary_search_by_key(prefix, |&(p, _)| p).ok()?;
        self.index
            .get(at)
            .and_then(|&(_, i)| self.rules.get(i as usize))
    }

    /// The trailing comment of a rule's line.
    pub fn comment(&self, rule: &ListRule) -> Option<&str> {
        let (at, len) = (rule.comment.0 as usize, rule.comment.1 as usize);
        self.comments
            .get(at..at.saturating_add(len))
            .filter(|c| !c.is_empty())
    }

    /// The rule with `id`.
    pub fn by_id(&self, id: u32) -> Option<&ListRule> {
        id.checked_sub(1)
            .and_then(|i| self.rules.get(i as usize))
            .filter(|r| r.id == id)
    }

    /// `FILE:LINE` of a rule.
    pub fn source(&self, rule: &ListRule) -> String {
        let file = self
            .files
            .get(rule.file as usize)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!("{file}:{}", rule.line)
    }

    /// SHA-256 of the prefixes in list order.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }
}

/// A rule added at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeRule {
    /// Rule id (>= [`RUNTIME_ID_BASE`]).
    pub id: u32,
    /// The prefix.
    pub prefix: Prefix,
    /// Operator's comment.
    pub comment: Option<String>,
    /// Unix seconds of expiry; `None` = never.
    pub expires_unix: Option<u64>,
}

/// What the kernel must do for one prefix after a runtime change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChange {
    /// Store this rule for the prefix.
    Set(Prefix, IpRule),
    /// Remove the prefix.
    Delete(Prefix),
    /// Nothing (a list rule shadows the prefix).
    None,
}

/// Runtime-rule file errors.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing the file failed.
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not what this version writes.
    #[error(
        "{path}: not a valid runtime rule file ({problem}); fix or remove it (its rules are lost then)"
    )]
    Corrupt { path: PathBuf, problem: String },
}

/// A refused runtime request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The CIDR does not parse.
    #[error("{cidr:?}: {problem}")]
    Cidr {
        cidr: String,
        problem: palisade_ebpf::ip_policy::PrefixError,
    },
    /// TTL zero or too long.
    #[error("TTL must be between 1 s and {} days", MAX_TTL.as_secs() / 86_400)]
    Ttl,
    /// Comment too long or with control characters.
    #[error("comment must be at most {MAX_COMMENT} bytes without control characters")]
    Comment,
    /// Too many runtime rules.
    #[error("{MAX_RUNTIME_RULES} runtime rules already: remove some or put them in a list file")]
    Full,
    /// No runtime rule for the CIDR.
    #[error("no runtime rule for {0} (list rules are removed by editing the list and reloading)")]
    NotFound(String),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    next_id: u32,
    rules: Vec<StateRule>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateRule {
    id: u32,
    cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_unix: Option<u64>,
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The IP policy state.
#[derive(Debug)]
pub struct IpState {
    /// List rules.
    pub lists: IpRuleSet,
    /// Runtime rules by prefix.
    pub runtime: BTreeMap<Prefix, RuntimeRule>,
    next_id: u32,
    path: PathBuf,
    /// False while the feature `ip-blocking` is switched off (`crate::features`): the kernel
    /// then holds no prefix; the rules stay here.
    pub enforcing: bool,
}

impl IpState {
    /// Loads the runtime rules of `state_dir` (none if the file does not exist).
    pub fn open(lists: IpRuleSet, state_dir: &Path) -> Result<Self, StateError> {
        let path = state_dir.join(STATE_FILE);
        let mut state = Self {
            lists,
            runtime: BTreeMap::new(),
            next_id: RUNTIME_ID_BASE,
            path,
            enforcing: true,
        };
        let text = match std::fs::read_to_string(&state.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(state),
            Err(source) => {
                return Err(StateError::Io {
                    op: "read",
                    path: state.path.clone(),
                    source,
                });
            }
        };
        let corrupt = |problem: String| StateError::Corrupt {
            path: state.path.clone(),
            problem,
        };
        let file: StateFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if file.version != 1 {
            return Err(corrupt(format!("version {}", file.version)));
        }
        state.next_id = file.next_id.max(RUNTIME_ID_BASE);
        for r in file.rules {
            let (prefix, _) =
                Prefix::parse(&r.cidr).map_err(|e| corrupt(format!("{:?}: {e}", r.cidr)))?;
            if r.id < RUNTIME_ID_BASE {
                return Err(corrupt(format!("rule id {} below the runtime range", r.id)));
            }
            state.next_id = state.next_id.max(r.id.saturating_add(1));
            state.runtime.insert(
                prefix,
                RuntimeRule {
                    id: r.id,
                    prefix,
                    comment: r.comment,
                    expires_unix: r.expires_unix,
                },
            );
        }
        Ok(state)
    }

    /// Replaces the list rules (reload); runtime rules stay.
    pub fn set_lists(&mut self, lists: IpRuleSet) {
        self.lists = lists;
    }

    /// Writes the runtime rules ([`write_state_file`]).
    pub fn save(&self) -> Result<(), StateError> {
        let file = StateFile {
            version: 1,
            next_id: self.next_id,
            rules: self
                .runtime
                .values()
                .map(|r| StateRule {
                    id: r.id,
                    cidr: r.prefix.to_string(),
                    comment: r.comment.clone(),
                    expires_unix: r.expires_unix,
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            problem: e.to_string(),
        })?;
        write_state_file(&self.path, &(text + "\n"))
    }

    /// The kernel value of a runtime rule (`None` if expired already).
    fn runtime_value(rule: &RuntimeRule, now_unix: u64, boot_ns: u64) -> Option<IpRule> {
        let expires = match rule.expires_unix {
            None => 0,
            Some(at) if at <= now_unix => return None,
            Some(at) => boot_ns.saturating_add((at - now_unix).saturating_mul(1_000_000_000)),
        };
        Some(IpRule::new(rule.id, rule.prefix.len(), expires))
    }

    /// Every prefix the kernel must hold, per family: list rules, then runtime rules no list
    /// rule shadows and that have not expired.
    /// None while [`IpState::enforcing`] is off.
    pub fn kernel_entries(&self, now_unix: u64, boot_ns: u64) -> [Vec<(Prefix, IpRule)>; 2] {
        let mut out = [Vec::new(), Vec::new()];
        if !self.enforcing {
            return out;
        }
        for r in &self.lists.rules {
            let slot = usize::from(r.prefix.family() == Family::V6);
            if let Some(v) = out.get_mut(slot) {
                v.push((r.prefix, IpRule::new(r.id, r.prefix.len(), 0)));
            }
        }
        for r in self.runtime.values() {
            if self.lists.get(&r.prefix).is_some() {
                continue;
            }
            if let (Some(value), Some(v)) = (
                Self::runtime_value(r, now_unix, boot_ns),
                out.get_mut(usize::from(r.prefix.family() == Family::V6)),
            ) {
                v.push((r.prefix, value));
            }
        }
        out
    }

    /// Adds (or updates) a runtime rule. Returns it and the kernel change; the caller
    /// applies the change, then [`IpState::save`]s.
    pub fn add(
        &mut self,
        cidr: &str,
        ttl: Option<Duration>,
        comment: Option<String>,
        now_unix: u64,
        boot_ns: u64,
    ) -> Result<(RuntimeRule, KernelChange), RequestError> {
        let (prefix, _) = Prefix::parse(cidr.trim()).map_err(|problem| RequestError::Cidr {
            cidr: cidr.to_owned(),
            problem,
        })?;
        if ttl.is_some_and(|t| t.is_zero() || t > MAX_TTL) {
            return Err(RequestError::Ttl);
        }
        if comment
            .as_deref()
            .is_some_and(|c| c.len() > MAX_COMMENT || c.chars().any(char::is_control))
        {
            return Err(RequestError::Comment);
        }
        let expires_unix = ttl.map(|t| now_unix.saturating_add(t.as_secs().max(1)));
        let id = match self.runtime.get(&prefix) {
            Some(existing) => existing.id,
            None => {
                if self.runtime.len() >= MAX_RUNTIME_RULES as usize {
                    return Err(RequestError::Full);
                }
                let id = self.next_id;
                self.next_id = self.next_id.saturating_add(1);
                id
            }
        };
        let rule = RuntimeRule {
            id,
            prefix,
            comment,
            expires_unix,
        };
        self.runtime.insert(prefix, rule.clone());
        let change = if self.lists.get(&prefix).is_some() {
            KernelChange::None
        } else {
            Self::runtime_value(&rule, now_unix, boot_ns)
                .map_or(KernelChange::Delete(prefix), |v| {
                    KernelChange::Set(prefix, v)
                })
        };
        Ok((rule, change))
    }

    /// Removes the runtime rule of a CIDR.
    pub fn remove(&mut self, cidr: &str) -> Result<(RuntimeRule, KernelChange), RequestError> {
        let (prefix, _) = Prefix::parse(cidr.trim()).map_err(|problem| RequestError::Cidr {
            cidr: cidr.to_owned(),
            problem,
        })?;
        let rule = self
            .runtime
            .remove(&prefix)
            .ok_or_else(|| RequestError::NotFound(prefix.to_string()))?;
        Ok((rule, self.change_after_removal(prefix)))
    }

    fn change_after_removal(&self, prefix: Prefix) -> KernelChange {
        if self.lists.get(&prefix).is_some() {
            KernelChange::None
        } else {
            KernelChange::Delete(prefix)
        }
    }

    /// Removes runtime rules whose expiry has passed; returns them with their kernel change.
    pub fn expire(&mut self, now_unix: u64) -> Vec<(RuntimeRule, KernelChange)> {
        let due: Vec<Prefix> = self
            .runtime
            .values()
            .filter(|r| r.expires_unix.is_some_and(|at| at <= now_unix))
            .map(|r| r.prefix)
            .collect();
        due.into_iter()
            .filter_map(|p| {
                let rule = self.runtime.remove(&p)?;
                Some((rule, self.change_after_removal(p)))
            })
            .collect()
    }

    /// The runtime rule with `id`.
    pub fn runtime_by_id(&self, id: u32) -> Option<&RuntimeRule> {
        self.runtime.values().find(|r| r.id == id)
    }
}

/// Writes a state file of the supervisor (runtime rules): a temporary file (0600), fsync,
/// rename over `path`, fsync of the directory; the directory is created if missing.
pub fn write_state_file(path: &Path, text: &str) -> Result<(), StateError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| StateError::Io { op, path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(io("mkdir", dir))?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("open", &tmp))?;
    f.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io("rename", &tmp))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    fn lists(dir: &Path, text: &str) -> IpRuleSet {
        let p = dir.join("l.txt");
        std::fs::write(&p, text).expect("write");
        IpRuleSet::load(&[p]).expect("valid")
    }

    #[test]
    fn list_rules_dedupe_and_number() {
        let dir = tempfile::tempdir().expect("tmp");
        let set = lists(
            dir.path(),
            "10.0.0.0/8\n10.1.0.0/8 ; same prefix\n2001:db8::/32 ; SBL7\n",
        );
        assert_eq!(set.rules.len(), 2);
        assert_eq!(set.duplicates, 1);
        assert_eq!(set.normalised, 1);
        assert_eq!(set.rules[1].id, 2);
        assert_eq!(
            set.by_id(2).map(|r| r.prefix.to_string()),
            Some("2001:db8::/32".into())
        );
        assert!(set.source(&set.rules[1]).ends_with("l.txt:3"));
        assert_eq!(set.comment(&set.rules[0]), None);
        assert_eq!(set.comment(&set.rules[1]), Some("SBL7"));
        let (p, _) = Prefix::parse("2001:db8::/32").expect("valid");
        assert_eq!(set.get(&p).map(|r| r.id), Some(2));
        let (q, _) = Prefix::parse("10.0.0.0/9").expect("valid");
        assert!(set.get(&q).is_none());
    }

    #[test]
    fn runtime_rules_persist_shadow_and_expire() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut st = IpState::open(lists(dir.path(), "192.0.2.0/24\n"), dir.path()).expect("open");
        let (r, change) = st
            .add(
                "198.51.100.9",
                Some(Duration::from_secs(60)),
                Some("t".into()),
                1000,
                5_000,
            )
            .expect("add");
        assert_eq!(r.id, RUNTIME_ID_BASE);
        let prefix = r.prefix;
        assert_eq!(
            change,
            KernelChange::Set(prefix, IpRule::new(r.id, 32, 5_000 + 60_000_000_000))
        );
        // The same CIDR as a list rule: kept, but the list rule is what the kernel holds.
        let (_, change) = st.add("192.0.2.0/24", None, None, 1000, 0).expect("add");
        assert_eq!(change, KernelChange::None);
        // Updating keeps the id.
        let (again, _) = st.add("198.51.100.9/32", None, None, 1000, 0).expect("add");
        assert_eq!(again.id, r.id);
        st.save().expect("save");

        let st2 = IpState::open(lists(dir.path(), "192.0.2.0/24\n"), dir.path()).expect("reopen");
        assert_eq!(st2.runtime.len(), 2);
        let [v4, v6] = st2.kernel_entries(1000, 0);
        assert_eq!(v4.len(), 2, "list rule + unshadowed runtime rule");
        assert!(v6.is_empty());

        let mut st3 = st2;
        st3.add(
            "203.0.113.0/24",
            Some(Duration::from_secs(5)),
            None,
            1000,
            0,
        )
        .expect("add");
        let gone = st3.expire(1005);
        assert_eq!(gone.len(), 1);
        assert!(matches!(gone[0].1, KernelChange::Delete(_)));
        assert!(matches!(
            st3.remove("192.0.2.0/24").expect("remove").1,
            KernelChange::None
        ));
        assert!(st3.remove("192.0.2.0/24").is_err());
        assert!(st3.add("bad", None, None, 0, 0).is_err());
        assert!(
            st3.add("10.0.0.0/8", Some(Duration::ZERO), None, 0, 0)
                .is_err()
        );
    }

    #[test]
    fn corrupt_state_file_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(STATE_FILE), "{\"version\": 1").expect("write");
        let e = IpState::open(IpRuleSet::default(), dir.path()).expect_err("corrupt");
        assert!(e.to_string().contains("ip-rules.json"), "{e}");
    }
}
