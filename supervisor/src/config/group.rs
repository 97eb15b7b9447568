//! A group the configuration names and the daemon needs to exist (`paths.log_group`).
//!
//! Parsing stays free of system lookups, so that a command that reads the configuration
//! only for the control socket's path does not fail on a group it never uses; the daemon
//! (start-up, reload) and `check-config` resolve the group, and an unknown group is then a
//! configuration error that still names the file, the line and the key.

use nix::unistd::Group;

use super::ConfigError;

/// A group name from the configuration, with where it was written.
#[derive(Debug, Clone)]
pub struct NamedGroup {
    /// The name (or a numeric gid) as written.
    pub name: String,
    origin: String,
    line: usize,
    key: &'static str,
}

/// Two settings are the same when they name the same group, wherever it was written.
impl PartialEq for NamedGroup {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for NamedGroup {}

impl NamedGroup {
    pub(super) fn new(name: String, origin: &str, line: usize, key: &'static str) -> Self {
        Self {
            name,
            origin: origin.to_owned(),
            line,
            key,
        }
    }

    /// Looks the group up (by name, or by number when it is all digits): its gid, or a
    /// [`ConfigError::Invalid`] at the line that names it.
    pub fn resolve(&self) -> Result<u32, ConfigError> {
        let found = match self.name.parse::<u32>() {
            Ok(gid) => Group::from_gid(gid.into()),
            Err(_) => Group::from_name(&self.name),
        };
        let problem = match found {
            Ok(Some(g)) => return Ok(g.gid.as_raw()),
            Ok(None) => format!("group {:?} does not exist", self.name),
            Err(e) => format!("looking up group {:?}: {e}", self.name),
        };
        Err(ConfigError::Invalid {
            origin: self.origin.clone(),
            line: self.line,
            key: self.key.to_owned(),
            problem,
        })
    }
}
