//! What `palisade run` hands the daemon: the configuration after the
//! command-line overrides, and the overrides themselves (a reload re-reads
//! the file and applies them again). The CLI builds these; the daemon owns them.

use std::path::PathBuf;

use crate::config::Config;

/// Options of `palisade run` after merging flags and config.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Validated configuration (flags applied).
    pub config: Config,
    /// The file it came from (`None`: the embedded default), re-read on reload.
    pub config_path: Option<PathBuf>,
    /// The command-line overrides, applied again on reload.
    pub flags: RunOverrides,
    /// Events to stdout instead of files.
    pub foreground: bool,
    /// Remove pins (detach) on exit.
    pub detach_on_exit: bool,
}

/// Command-line settings that override the configuration file (kept so a
/// reload applies them again).
#[derive(Debug, Clone, Default)]
pub struct RunOverrides {
    /// `--interface` (repeatable); empty: the file's.
    pub interfaces: Vec<String>,
    /// `--control-socket`.
    pub control_socket: Option<PathBuf>,
    /// `--pin-root`.
    pub pin_root: Option<PathBuf>,
    /// `--log-dir`.
    pub log_dir: Option<PathBuf>,
}

impl RunOverrides {
    /// Checks the flags themselves (a usage error, before any file is read).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(bad) = self
            .interfaces
            .iter()
            .find(|i| !crate::config::valid_ifname(i))
        {
            return Err(format!("--interface {bad:?} is not a valid interface name"));
        }
        if let Some(Err(e)) = self
            .interfaces
            .iter()
            .filter(|i| crate::interfaces::is_glob(i))
            .map(|i| crate::interfaces::check_glob(i))
            .find(Result::is_err)
        {
            return Err(format!("--interface {e}"));
        }
        for (flag, value) in [
            ("--control-socket", &self.control_socket),
            ("--pin-root", &self.pin_root),
            ("--log-dir", &self.log_dir),
        ] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_absolute()) {
                return Err(format!("{flag} {} is not an absolute path", v.display()));
            }
        }
        if let Some(dir) = self
            .log_dir
            .as_ref()
            .filter(|d| crate::paths::is_shared_dir(d))
        {
            return Err(format!(
                "--log-dir {} is a directory other software shares; the daemon sets the group and mode of this one: give it a directory of its own",
                dir.display()
            ));
        }
        Ok(())
    }

    /// Applies the overrides to a loaded configuration.
    pub fn apply(&self, config: &mut Config) {
        if !self.interfaces.is_empty() {
            config.interfaces.clone_from(&self.interfaces);
        }
        for (value, target) in [
            (&self.control_socket, &mut config.control_socket),
            (&self.pin_root, &mut config.pin_root),
            (&self.log_dir, &mut config.log_dir),
        ] {
            if let Some(v) = value {
                target.clone_from(v);
            }
        }
    }
}
