//! The command line: one file per subcommand; clap doc comments are the help.

mod block;
mod check_config;
mod cleanup;
mod dns;
mod flows;
mod metrics;
mod reload;
mod reopen_logs;
mod restart;
mod run;
mod status;
mod version;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::control::client::ClientError;

/// Palisade: privilege-separated eBPF network sensor.
///
/// `palisade run` starts the supervisor (root): it loads and pins the eBPF
/// programs, attaches them to the interfaces and runs one unprivileged
/// worker per protocol (DHCP, DNS, TLS, flow). The other subcommands talk to
/// a running supervisor over its control socket.
///
/// Exit status: 0 success, 1 failure, 2 usage error, 3 daemon not running,
/// 4 permission denied, 5 protocol version mismatch with the daemon.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where to reach the daemon.
#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// Control socket of the daemon.
    #[arg(long, value_name = "PATH", default_value = crate::paths::CONTROL_SOCKET)]
    control_socket: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(run::Args),
    CheckConfig(check_config::Args),
    Status(status::Args),
    Restart(restart::Args),
    Reload(reload::Args),
    ReopenLogs(reopen_logs::Args),
    Metrics(metrics::Args),
    Dns(dns::Args),
    Flows(flows::Args),
    Block(block::Args),
    Version(version::Args),
    Cleanup(cleanup::Args),
}

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(a) => run::main(a),
        Command::CheckConfig(a) => check_config::main(a),
        Command::Status(a) => status::main(a),
        Command::Restart(a) => restart::main(a),
        Command::Reload(a) => reload::main(a),
        Command::ReopenLogs(a) => reopen_logs::main(a),
        Command::Metrics(a) => metrics::main(a),
        Command::Dns(a) => dns::main(a),
        Command::Flows(a) => flows::main(a),
        Command::Block(a) => block::main(a),
        Command::Version(a) => version::main(a),
        Command::Cleanup(a) => cleanup::main(a),
    }
}

/// Sends one request to the daemon; on failure prints why and returns the
/// exit status to use.
fn ask(
    control: &ControlArgs,
    req: &palisade_ipc::messages::ControlRequest,
) -> Result<palisade_ipc::messages::ControlResponse, ExitCode> {
    crate::control::client::request(&control.control_socket, req).map_err(|e| client_failure(&e))
}

/// An answer of the wrong kind (a daemon bug): says so.
fn unexpected(answer: &palisade_ipc::messages::ControlResponse) -> ExitCode {
    eprintln!("palisade: unexpected answer from the daemon: {answer:?}");
    ExitCode::FAILURE
}

/// Prints a control-socket error and maps it to the exit status.
fn client_failure(err: &ClientError) -> ExitCode {
    eprintln!("palisade: {}", crate::error_chain(err));
    ExitCode::from(err.exit_code())
}

/// Prints `value` as pretty JSON.
fn print_json<T: serde::Serialize>(value: &T) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade: rendering JSON: {e}");
            ExitCode::FAILURE
        }
    }
}
