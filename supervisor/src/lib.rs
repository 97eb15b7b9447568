//! The Palisade supervisor daemon (`palisade run`) and its operator CLI, as a library: the
//! `palisade` binary (`main.rs`) is [`main`], and the fuzz targets (`fuzz/`) reach the
//! loaders of configuration and lists, and the control protocol's authorisation, through it.
//! It is not a stable API.

pub mod capture;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod devices;
pub mod ebpf;
pub mod features;
pub mod flows;
pub mod interfaces;
pub mod metrics;
pub mod netlink;
pub mod paths;
pub mod policy;
pub mod ratelimit;
pub mod trace;
pub mod users;
pub mod workers;

use std::process::ExitCode;

use clap::Parser;

/// Renders an error with its whole `source()` chain on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Replaces the process's log filter (`palisade log-level`); installed by [`main`].
type SetFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;
static LOG_FILTER: std::sync::OnceLock<SetFilter> = std::sync::OnceLock::new();

/// Replaces the log filter with `directives` (`EnvFilter` syntax, as `PALISADE_LOG`).
pub fn set_log_filter(directives: &str) -> Result<(), String> {
    let set = LOG_FILTER
        .get()
        .ok_or_else(|| "logging is not set up".to_owned())?;
    set(directives)
}

/// The `palisade` command: parses the command line, sets up logging, runs the subcommand.
pub fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_filter_reloading();
    let handle = builder.reload_handle();
    builder.init();
    let _ = LOG_FILTER.set(Box::new(move |directives: &str| {
        let filter =
            tracing_subscriber::EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    }));
    cli::dispatch(args)
}
