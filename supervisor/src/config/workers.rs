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

/// Settings of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Account name to run as (resolved at spawn, `nobody` fallback).
    pub user: String,
    /// Group name to run as (`nogroup` fallback).
    pub group: String,
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
        user: c.name(&key("user"), raw.user, format!("palisade-{}", kind.name()))?,
        group: c.name(
            &key("group"),
            raw.group,
            format!("palisade-{}", kind.name()),
        )?,
        heartbeat_ms,
        path,
    })
}
