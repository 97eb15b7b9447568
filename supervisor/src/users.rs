//! Resolving configured account names to ids, with the development fallback, and the
//! workers' accounts as `palisade run` uses them ([`worker_accounts`], also what
//! `palisade check-config` checks).

use std::collections::BTreeMap;

use nix::unistd::{Group, User};
use palisade_ipc::messages::WorkerKind;

use crate::config::{AccountName, Config};

/// Fallback user when the configured one does not exist.
pub const FALLBACK_USER: &str = "nobody";
/// The uid of `nobody`, the fallback account: shared with unrelated daemons.
pub const NOBODY_UID: u32 = 65534;
/// Fallback groups, tried in order (Debian: nogroup; Fedora: nobody).
pub const FALLBACK_GROUPS: &[&str] = &["nogroup", "nobody"];

/// Resolution failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Neither the account nor the fallback exists.
    #[error("neither user {wanted:?} nor the fallback {FALLBACK_USER:?} exists")]
    NoUser { wanted: String },
    /// Neither the group nor a fallback exists.
    #[error("neither group {wanted:?} nor a fallback ({FALLBACK_GROUPS:?}) exists")]
    NoGroup { wanted: String },
    /// The account resolves to root.
    #[error("{what} {name:?} is root (id 0); workers never run as root")]
    Root { what: &'static str, name: String },
}

/// A resolved id and whether the fallback was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Numeric id.
    pub id: u32,
    /// Name actually used.
    pub name: String,
    /// True when the configured name did not exist.
    pub fallback: bool,
}

/// A user by name or numeric id: (uid, name).
fn lookup_user(name: &str) -> Option<(u32, String)> {
    match name.parse::<u32>() {
        Ok(id) => User::from_uid(id.into()).ok().flatten(),
        Err(_) => User::from_name(name).ok().flatten(),
    }
    .map(|u| (u.uid.as_raw(), u.name))
}

/// A group by name or numeric id.
fn lookup_group(name: &str) -> Option<Group> {
    match name.parse::<u32>() {
        Ok(id) => Group::from_gid(id.into()).ok().flatten(),
        Err(_) => Group::from_name(name).ok().flatten(),
    }
}

/// Resolves a user name (or numeric id), falling back to `nobody`.
pub fn resolve_user(name: &str) -> Result<Resolved, UserError> {
    let (id, used, fallback) = match lookup_user(name) {
        Some((id, n)) => (id, n, false),
        None => match User::from_name(FALLBACK_USER).ok().flatten() {
            Some(u) => (u.uid.as_raw(), u.name, true),
            None => {
                return Err(UserError::NoUser {
                    wanted: name.to_owned(),
                });
            }
        },
    };
    if id == 0 {
        return Err(UserError::Root {
            what: "user",
            name: used,
        });
    }
    Ok(Resolved {
        id,
        name: used,
        fallback,
    })
}

/// Resolves a group name (or numeric id), falling back to `nogroup`/`nobody`.
pub fn resolve_group(name: &str) -> Result<Resolved, UserError> {
    let (group, fallback) = match lookup_group(name) {
        Some(g) => (g, false),
        None => match FALLBACK_GROUPS.iter().find_map(|g| lookup_group(g)) {
            Some(g) => (g, true),
            None => {
                return Err(UserError::NoGroup {
                    wanted: name.to_owned(),
                });
            }
        },
    };
    if group.gid.as_raw() == 0 {
        return Err(UserError::Root {
            what: "group",
            name: group.name,
        });
    }
    Ok(Resolved {
        id: group.gid.as_raw(),
        name: group.name,
        fallback,
    })
}

/// Looks up a group id by name without fallback (the control group).
pub fn group_id(name: &str) -> Option<u32> {
    Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// Adds `gids` to this process's supplementary groups (`setgroups`, which needs
/// CAP_SETGID). The supervisor gives files it owns to these groups (the control socket,
/// the event logs), and the owner of a file may change its group to one it is a member of
/// without CAP_CHOWN, which the unit does not grant. A failure is logged: the change of
/// group that follows then fails with its own, clearer error (unless the process holds
/// CAP_CHOWN, as a root shell does).
pub fn join_groups(gids: &[u32]) {
    let joined = nix::unistd::getgroups().and_then(|mut groups| {
        let before = groups.len();
        for gid in gids.iter().map(|g| nix::unistd::Gid::from_raw(*g)) {
            if !groups.contains(&gid) {
                groups.push(gid);
            }
        }
        if groups.len() == before {
            return Ok(());
        }
        nix::unistd::setgroups(&groups)
    });
    if let Err(e) = joined {
        tracing::warn!(?gids, error = %e, "joining the control and log groups (setgroups)");
    }
}

/// The user and group a worker runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerAccount {
    /// The user.
    pub user: Resolved,
    /// The group.
    pub group: Resolved,
}

/// Why a worker's account cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// An account the configuration names does not exist: an error at its line. A configured
    /// name is never replaced by the `nobody` fallback (that is for the default
    /// `palisade-<worker>` on a development machine).
    #[error(transparent)]
    Missing(crate::config::ConfigError),
    /// Neither the default account nor the fallback exists, or an account is root.
    #[error("worker {worker}")]
    User {
        worker: &'static str,
        #[source]
        source: UserError,
    },
    /// A worker would run as an account others share.
    #[error(
        "worker {worker} would run as {user} (uid {uid}), an account {why}: any process of that uid could signal or ptrace it. Create the worker accounts (the package does; or `systemd-sysusers packaging/palisade.sysusers`, or `scripts/deps`), or set `[workers] allow_shared_account = true` to accept this (development only)"
    )]
    Shared {
        worker: &'static str,
        user: String,
        uid: u32,
        why: &'static str,
    },
}

/// Every account problem of a configuration, in worker order.
#[derive(Debug)]
pub struct AccountErrors(pub Vec<AccountError>);

impl std::fmt::Display for AccountErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|e| crate::error_chain(e)).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for AccountErrors {}

/// User or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Of {
    User,
    Group,
}

/// A configured account must exist; the default falls back (see [`AccountName`]).
fn resolve_account(
    account: &AccountName,
    of: Of,
    worker: &'static str,
) -> Result<Resolved, AccountError> {
    let what = match of {
        Of::User => "user",
        Of::Group => "group",
    };
    let Some(missing) = account.error(format!("{what} {:?} does not exist", account.name)) else {
        // The default palisade-<worker>: the development fallback applies.
        let resolved = match of {
            Of::User => resolve_user(&account.name),
            Of::Group => resolve_group(&account.name),
        };
        return resolved.map_err(|source| AccountError::User { worker, source });
    };
    let found = match of {
        Of::User => lookup_user(&account.name),
        Of::Group => lookup_group(&account.name).map(|g| (g.gid.as_raw(), g.name)),
    };
    match found {
        Some((0, name)) => Err(AccountError::User {
            worker,
            source: UserError::Root { what, name },
        }),
        Some((id, name)) => Ok(Resolved {
            id,
            name,
            fallback: false,
        }),
        None => Err(AccountError::Missing(missing)),
    }
}

/// Every worker's user and group as `palisade run` resolves them, and the same checks:
/// a configured account that does not exist is an error (at its line); a missing default
/// account falls back to `nobody`/`nogroup`; and an account shared with other processes
/// (the fallback, `nobody` itself, or another worker's) is refused unless
/// `[workers] allow_shared_account = true`. Every problem is reported, not just the first.
pub fn worker_accounts(
    config: &Config,
) -> Result<BTreeMap<WorkerKind, WorkerAccount>, AccountErrors> {
    let mut accounts = BTreeMap::new();
    let mut errors = Vec::new();
    let mut uids: BTreeMap<WorkerKind, u32> = BTreeMap::new();
    for (kind, settings) in &config.workers {
        let worker = kind.name();
        let user = resolve_account(&settings.user, Of::User, worker);
        let group = resolve_account(&settings.group, Of::Group, worker);
        let (user, group) = match (user, group) {
            (Ok(u), Ok(g)) => (u, g),
            (u, g) => {
                errors.extend(u.err());
                errors.extend(g.err());
                continue;
            }
        };
        let shared_with = uids.values().any(|uid| *uid == user.id);
        let why = if user.fallback {
            Some("shared with other processes (the fallback for a missing account)")
        } else if user.id == NOBODY_UID {
            Some("shared with other processes (nobody)")
        } else if shared_with {
            Some("another worker runs as too")
        } else {
            None
        };
        uids.insert(*kind, user.id);
        if let Some(why) = why {
            if !config.allow_shared_account {
                errors.push(AccountError::Shared {
                    worker,
                    user: user.name.clone(),
                    uid: user.id,
                    why,
                });
                continue;
            }
            tracing::warn!(worker, user = %user.name, group = %group.name, "worker runs as an account {why} (allow_shared_account = true); create palisade-{worker} for isolation");
        }
        accounts.insert(*kind, WorkerAccount { user, group });
    }
    if errors.is_empty() {
        Ok(accounts)
    } else {
        Err(AccountErrors(errors))
    }
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    /// The problems `worker_accounts` finds with `text`, those of `worker` only (the
    /// others' default accounts may be missing on this machine).
    fn problems_of(worker: &str, text: &str) -> Vec<String> {
        let config = Config::parse("t.toml", text).expect("parses");
        match worker_accounts(&config) {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.iter()
                    .map(|e| crate::error_chain(e))
                    .filter(|e| {
                        e.starts_with(&format!("worker {worker}"))
                            || e.contains(&format!("workers.{worker}."))
                    })
                    .collect()
            }
        }
    }

    #[test]
    fn a_configured_account_must_exist() {
        let missing = format!("palisade-no-such-user-{}", std::process::id());
        let text = format!(
            "[workers.dns]\nuser = \"{missing}\"\n[workers.tls]\n\ngroup = \"{missing}\"\n"
        );
        assert_eq!(
            problems_of("dns", &text),
            vec![format!(
                "t.toml:2: workers.dns.user: user \"{missing}\" does not exist"
            )]
        );
        assert_eq!(
            problems_of("tls", &text),
            vec![format!(
                "t.toml:5: workers.tls.group: group \"{missing}\" does not exist"
            )]
        );
        // Not even with allow_shared_account: the fallback is for the default name only.
        let text = format!(
            "[workers]\nallow_shared_account = true\n[workers.flow]\nuser = \"{missing}\"\n"
        );
        assert_eq!(problems_of("flow", &text).len(), 1);
        // Root is refused whether configured by name or by number.
        for root in ["root", "0"] {
            let p = problems_of("dhcp", &format!("[workers.dhcp]\nuser = \"{root}\"\n"));
            assert!(p.len() == 1 && p[0].contains("is root (id 0)"), "{p:?}");
        }
    }

    #[test]
    fn shared_accounts_are_refused_unless_allowed() {
        let p = problems_of("dns", "[workers.dns]\nuser = \"nobody\"\n");
        assert!(
            p.len() == 1 && p[0].starts_with("worker dns would run as nobody"),
            "{p:?}"
        );
        let p = problems_of(
            "dns",
            "[workers]\nallow_shared_account = true\n[workers.dns]\nuser = \"nobody\"\n",
        );
        assert!(p.is_empty(), "{p:?}");
    }
}
