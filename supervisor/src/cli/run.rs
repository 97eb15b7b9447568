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
    /// Interface to attach to (repeatable). Default: every interface that is
    /// up and not a loopback.
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

pub fn main(args: Args) -> ExitCode {
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("palisade: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.interfaces.is_empty() {
        if let Some(bad) = args.interfaces.iter().find(|i| !crate::config::valid_ifname(i)) {
            eprintln!("palisade: --interface {bad:?} is not a valid interface name");
            return ExitCode::from(2);
        }
        config.interfaces = args.interfaces;
    }
    for (flag, value, target) in [
        ("--control-socket", args.control_socket, &mut config.control_socket),
        ("--pin-root", args.pin_root, &mut config.pin_root),
        ("--log-dir", args.log_dir, &mut config.log_dir),
    ] {
        if let Some(v) = value {
            if !v.is_absolute() {
                eprintln!("palisade: {flag} {} is not an absolute path", v.display());
                return ExitCode::from(2);
            }
            *target = v;
        }
    }
    let opts = daemon::RunOptions { config, foreground: args.foreground, detach_on_exit: args.detach_on_exit };
    match daemon::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", crate::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
