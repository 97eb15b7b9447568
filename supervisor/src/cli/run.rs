//! `palisade run`.

use std::{path::PathBuf, process::ExitCode};

use crate::{config::Config, daemon};

/// Start the supervisor (as root): attach, spawn workers, serve the CLI.
///
/// Flags override the configuration file, which overrides the built-in
/// default. On SIGTERM/SIGINT the workers stop cleanly; the pinned programs
/// stay attached (enforcement survives the supervisor) unless
/// --detach-on-exit is given or `palisade cleanup` is run.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (TOML). Default: the built-in configuration
    /// (the same as the packaged /etc/palisade/palisade.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Interface to attach to (repeatable; Ethernet-type only). Default:
    /// every Ethernet interface that is up and not a loopback.
    #[arg(long = "interface", short = 'i', value_name = "IF")]
    interfaces: Vec<String>,
    /// Write all events to stdout as JSON lines instead of <log_dir>/<protocol>.json.
    #[arg(long)]
    foreground: bool,
    /// Control socket path (overrides paths.control_socket).
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// bpffs pin root (overrides paths.pin_root).
    #[arg(long, value_name = "PATH")]
    pin_root: Option<PathBuf>,
    /// Event log directory (overrides paths.log_dir).
    #[arg(long, value_name = "PATH")]
    log_dir: Option<PathBuf>,
    /// Detach the programs and remove the pins when stopping.
    #[arg(long)]
    detach_on_exit: bool,
}

/// Command-line settings that override the configuration file (kept so a
/// reload applies them again).
#[derive(Debug, Clone, Default)]
pub struct RunOverrides {
    interfaces: Vec<String>,
    control_socket: Option<PathBuf>,
    pin_root: Option<PathBuf>,
    log_dir: Option<PathBuf>,
}

impl RunOverrides {
    fn validate(&self) -> Result<(), String> {
        if let Some(bad) = self
            .interfaces
            .iter()
            .find(|i| !crate::config::valid_ifname(i))
        {
            return Err(format!("--interface {bad:?} is not a valid interface name"));
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

pub fn main(args: Args) -> ExitCode {
    let flags = RunOverrides {
        interfaces: args.interfaces,
        control_socket: args.control_socket,
        pin_root: args.pin_root,
        log_dir: args.log_dir,
    };
    if let Err(e) = flags.validate() {
        eprintln!("palisade: {e}");
        return ExitCode::from(2);
    }
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("palisade: {e}");
            return ExitCode::FAILURE;
        }
    };
    flags.apply(&mut config);
    let opts = daemon::RunOptions {
        config,
        config_path: args.config,
        flags,
        foreground: args.foreground,
        detach_on_exit: args.detach_on_exit,
    };
    match daemon::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", crate::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
