//! `palisade reopen-logs`.

use std::process::ExitCode;

use palisade_ipc::messages::{ControlRequest, ControlResponse, WorkerKind};
use serde::Serialize;

use super::ControlArgs;

/// Reopen the event log files after rotation (root only).
///
/// The files are `<log_dir>/<protocol>.json`; SIGHUP reopens them too, and the packaged
/// logrotate configuration runs this in postrotate. Each worker flushes into the old file and hands over to a successor that
/// writes to a freshly opened one; records arriving meanwhile wait in the
/// ring buffer, so no event is lost. Nothing to do with `--foreground`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    control: ControlArgs,
    /// Print the result as JSON: {"reopened": [WORKER...]} (empty when the daemon writes
    /// events to stdout).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Reopened {
    reopened: Vec<WorkerKind>,
}

pub fn main(args: Args) -> ExitCode {
    match super::ask(&args.control, args.json, &ControlRequest::ReopenLogs) {
        Ok(ControlResponse::LogsReopened(kinds)) if args.json => {
            super::print_json(&Reopened { reopened: kinds })
        }
        Ok(ControlResponse::LogsReopened(kinds)) if kinds.is_empty() => {
            println!("nothing to reopen: the daemon writes events to stdout (--foreground)");
            ExitCode::SUCCESS
        }
        Ok(ControlResponse::LogsReopened(kinds)) => {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            println!("reopened: {}", names.join(", "));
            ExitCode::SUCCESS
        }
        Ok(other) => super::unexpected(args.json, &other),
        Err(code) => code,
    }
}
