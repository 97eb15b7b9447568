//! `palisade metrics`.

use std::process::ExitCode;

use palisade_ipc::messages::{ControlRequest, ControlResponse};

use super::ControlArgs;

/// Print the daemon's counters in Prometheus text format (workers, drops by
/// reason, kernel counters, DNS policy). For node exporter's textfile
/// collector, e.g. from a timer:
/// `palisade metrics > /var/lib/prometheus/node-exporter/palisade.prom`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    control: ControlArgs,
}

pub fn main(args: Args) -> ExitCode {
    match super::ask(&args.control, &ControlRequest::Status) {
        Ok(ControlResponse::Status(report)) => {
            print!("{}", crate::metrics::render(&report));
            ExitCode::SUCCESS
        }
        Ok(other) => super::unexpected(&other),
        Err(code) => code,
    }
}
