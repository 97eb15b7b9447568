//! Resolving configured account names to ids, with the development fallback.

use nix::unistd::{Group, User};

/// Fallback user when the configured one does not exist.
pub const FALLBACK_USER: &str = "nobody";
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

/// Resolves a user name (or numeric id), falling back to `nobody`.
pub fn resolve_user(name: &str) -> Result<Resolved, UserError> {
    let found = match name.parse::<u32>() {
        Ok(id) => User::from_uid(id.into())
            .ok()
            .flatten()
            .map(|u| (u.uid.as_raw(), u.name)),
        Err(_) => User::from_name(name)
            .ok()
            .flatten()
            .map(|u| (u.uid.as_raw(), u.name)),
    };
    let (id, used, fallback) = match found {
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
    let lookup = |n: &str| match n.parse::<u32>() {
        Ok(id) => Group::from_gid(id.into()).ok().flatten(),
        Err(_) => Group::from_name(n).ok().flatten(),
    };
    let (group, fallback) = match lookup(name) {
        Some(g) => (g, false),
        None => match FALLBACK_GROUPS.iter().find_map(|g| lookup(g)) {
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
