//! `[workers.<name>]`: account, heartbeat and binary of each worker.

use std::{collections::BTreeMap, path::PathBuf};

use palisade_ipc::messages::WorkerKind;
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, check::Checker};

/// Default heartbeat interval.
pub const DEFAULT_HEARTBEAT_MS: u32 = 250;
const HEARTBEAT_RANGE: std::ops::RangeInclusive<u32> = 10..=60_000;

/// One table per worker; a new worker kind gets its field here and its line in [`parse`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkers {
    allow_shared_account: Option<bool>,
    dhcp: Option<RawWorker>,
    dns: Option<RawWorker>,
    tls: Option<RawWorker>,
    flow: Option<RawWorker>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    user: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    heartbeat_ms: Option<Spanned<i64>>,
    path: Option<Spanned<String>>,
}

/// An account (user or group) a worker runs as: named in the configuration, or the default
/// `palisade-<worker>`. Parsing does no system lookup (a client command reads the file only
/// for its paths); `crate::users::worker_accounts` resolves it for the daemon and
/// `check-config`: a configured name that does not exist is an error at its line, while the
/// default may fall back to `nobody`/`nogroup` (only with `allow_shared_account`).
#[derive(Debug, Clone)]
pub struct AccountName {
    /// The name (or a numeric id) as written, or the default.
    pub name: String,
    /// Where the configuration names it: file, line, key. `None`: the default.
    set_at: Option<(String, usize, String)>,
}

/// Two settings are the same when they name the same account the same way (configured or
/// default), wherever the line is.
impl PartialEq for AccountName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.set_at.is_some() == other.set_at.is_some()
    }
}

impl Eq for AccountName {}

impl AccountName {
    /// The default name of a worker's account (no fallback check here).
    pub fn default_for(kind: WorkerKind) -> Self {
        Self {
            name: format!("palisade-{}", kind.name()),
            set_at: None,
        }
    }

    /// Whether the configuration names this account (no fallback then).
    pub fn is_configured(&self) -> bool {
        self.set_at.is_some()
    }

    /// A [`ConfigError::Invalid`] at the line that names this account (`None` for the default).
    pub fn error(&self, problem: impl Into<String>) -> Option<ConfigError> {
        let (origin, line, key) = self.set_at.as_ref()?;
        Some(ConfigError::Invalid {
            origin: origin.clone(),
            line: *line,
            key: key.clone(),
            problem: problem.into(),
        })
    }
}

impl std::fmt::Display for AccountName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Settings of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Account to run as.
    pub user: AccountName,
    /// Group to run as.
    pub group: AccountName,
    /// Heartbeat interval.
    pub heartbeat_ms: u32,
    /// Binary; `None` = default lookup.
    pub path: Option<PathBuf>,
}

/// `[workers]`: whether a shared account is allowed, and settings for every [`WorkerKind`].
pub(super) type Workers = (bool, BTreeMap<WorkerKind, WorkerSettings>);

/// Validates `[workers]`.
pub(super) fn parse(c: &Checker<'_>, raw: RawWorkers) -> Result<Workers, ConfigError> {
    let RawWorkers {
        allow_shared_account,
        dhcp,
        dns,
        tls,
        flow,
    } = raw;
    let mut workers = BTreeMap::new();
    for (kind, w) in [
        (WorkerKind::Dhcp, dhcp),
        (WorkerKind::Dns, dns),
        (WorkerKind::Tls, tls),
        (WorkerKind::Flow, flow),
    ] {
        workers.insert(kind, worker(c, kind, w)?);
    }
    Ok((allow_shared_account.unwrap_or(false), workers))
}

fn worker(
    c: &Checker<'_>,
    kind: WorkerKind,
    raw: Option<RawWorker>,
) -> Result<WorkerSettings, ConfigError> {
    let raw = raw.unwrap_or_default();
    let key = |k: &str| format!("workers.{}.{k}", kind.name());
    let heartbeat_ms = match raw.heartbeat_ms {
        None => DEFAULT_HEARTBEAT_MS,
        Some(v) => match u32::try_from(*v.get_ref()) {
            Ok(ms) if HEARTBEAT_RANGE.contains(&ms) => ms,
            _ => {
                return c.invalid(
                    &key("heartbeat_ms"),
                    v.span(),
                    format!(
                        "{} is outside {}..={}",
                        v.get_ref(),
                        HEARTBEAT_RANGE.start(),
                        HEARTBEAT_RANGE.end()
                    ),
                );
            }
        },
    };
    let path = match raw.path {
        None => None,
        Some(v) => Some(c.abs_path(&key("path"), Some(v), "")?),
    };
    Ok(WorkerSettings {
        user: account(c, kind, &key("user"), raw.user)?,
        group: account(c, kind, &key("group"), raw.group)?,
        heartbeat_ms,
        path,
    })
}

/// `user` or `group` of a worker: checked as a name, kept with its line.
fn account(
    c: &Checker<'_>,
    kind: WorkerKind,
    key: &str,
    value: Option<Spanned<String>>,
) -> Result<AccountName, ConfigError> {
    let Some(v) = value else {
        return Ok(AccountName::default_for(kind));
    };
    let line = c.line(v.span().start);
    let name = c.name(key, Some(v), String::new())?;
    Ok(AccountName {
        name,
        set_at: Some((c.origin.to_owned(), line, key.to_owned())),
    })
}
