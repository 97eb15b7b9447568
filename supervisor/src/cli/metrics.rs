//! `palisade metrics`.

use std::process::ExitCode;

use palisade_ipc::messages::{ControlRequest, ControlResponse};

use super::ControlArgs;

/// Print the daemon's counters in Prometheus text format.
///
/// Workers, drops by reason, kernel counters, DNS and IP policy, flow table. For node
/// exporter's textfile
/// collector, e.g. from a timer:
/// `palisade metrics > /var/lib/prometheus/node-exporter/palisade.prom`.
///
/// The same exposition is `GET /metrics` on the control socket (`curl --unix-socket
/// /run/palisade/control.sock http://localhost/metrics`); the same counters as JSON:
/// `palisade status --json`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    control: ControlArgs,
}

pub fn main(args: Args) -> ExitCode {
    match super::ask(&args.control, false, &ControlRequest::Status) {
        Ok(ControlResponse::Status(report)) => {
            print!("{}", crate::metrics::render(&report));
            ExitCode::SUCCESS
        }
        Ok(other) => super::unexpected(false, &other),
        Err(code) => code,
    }
}
