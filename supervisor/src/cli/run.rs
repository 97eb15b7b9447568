//! `palisade run`.

use std::{path::PathBuf, process::ExitCode};

use crate::{
    config::Config,
    daemon::{self, RunOptions, RunOverrides},
};

/// Start the supervisor (as root): attach, spawn workers, serve the CLI.
///
/// Flags override the configuration file, which overrides the built-in default. Start-up
/// first checks everything it can without touching the kernel (interfaces, worker accounts,
/// every list, the control socket not in use); a start that fails after that removes the
/// pins and links it created, so it leaves no enforcement half-installed (pins a previous
/// run left are kept).
///
/// On SIGTERM/SIGINT the workers stop cleanly; the pinned programs stay attached
/// (enforcement survives the supervisor) unless --detach-on-exit is given or `palisade
/// cleanup` is run. SIGHUP reloads the configuration and reopens the event logs.
/// Interfaces that appear, come back or are renamed are attached as the configuration
/// selects them (rtnetlink); links of interfaces that go are released.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (TOML) [default: /etc/palisade/palisade.toml, or the built-in
    /// configuration, which has the same settings, when that file does not exist].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Interface to attach to, by name or pattern (`eth*`, `veth?`, `lan[0-3]`; repeatable;
    /// Ethernet-type only); one not there yet is waited for. Default: every Ethernet
    /// interface that is up and not a loopback, also those that appear later.
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
    /// Detach the programs and remove the pins when stopping. Every flow still open then
    /// gets its end event (flow.reason "shutdown") before the workers stop.
    #[arg(long)]
    detach_on_exit: bool,
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
    // An explicit file must exist; the default one may be missing (then the built-in
    // configuration, the same settings, is used and a reload keeps using it).
    let default = std::path::Path::new(crate::paths::CONFIG_FILE);
    let config_path = args
        .config
        .or_else(|| default.exists().then(|| default.to_owned()));
    let mut config = match Config::load(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("palisade: {e}");
            return ExitCode::FAILURE;
        }
    };
    flags.apply(&mut config);
    let opts = RunOptions {
        config,
        config_path,
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
