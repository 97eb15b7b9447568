//! `palisade reopen-logs`.

use std::process::ExitCode;

use palisade_ipc::messages::{ControlRequest, ControlResponse};

use super::ControlArgs;

/// Reopen the event log files `<log_dir>/<protocol>.json` (root only; also
/// done on SIGHUP), e.g. from logrotate's postrotate.
///
/// Each worker flushes into the old file and hands over to a successor that
/// writes to a freshly opened one; records arriving meanwhile wait in the
/// ring buffer, so no event is lost. Nothing to do with `--foreground`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    control: ControlArgs,
}

pub fn main(args: Args) -> ExitCode {
    match super::ask(&args.control, &ControlRequest::ReopenLogs) {
        Ok(ControlResponse::LogsReopened(kinds)) if kinds.is_empty() => {
            println!("nothing to reopen: the daemon writes events to stdout (--foreground)");
            ExitCode::SUCCESS
        }
        Ok(ControlResponse::LogsReopened(kinds)) => {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            println!("reopened: {}", names.join(", "));
            ExitCode::SUCCESS
        }
        Ok(other) => super::unexpected(&other),
        Err(code) => code,
    }
}
