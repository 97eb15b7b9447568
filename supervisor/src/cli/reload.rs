//! `palisade reload`.

use std::process::ExitCode;

use palisade_ipc::messages::{ControlRequest, ControlResponse};

use super::ControlArgs;

/// Re-read the configuration file and every list, validate all of it, and
/// apply it (root only; same as SIGHUP).
///
/// The DNS rule set is rebuilt and swapped into the kernel atomically. If
/// anything is invalid, nothing changes and the errors are printed (exit 1).
/// Settings that only take effect after a restart are listed.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    control: ControlArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn main(args: Args) -> ExitCode {
    match super::ask(&args.control, &ControlRequest::Reload) {
        Ok(ControlResponse::Reloaded(r)) => {
            if args.json {
                return super::print_json(&r);
            }
            println!(
                "reloaded: {} DNS name rules in the kernel, rule set {}",
                r.dns_kernel_rules, r.dns_ruleset_sha256
            );
            if !r.restart_needed.is_empty() {
                println!(
                    "changed, effective after a restart: {}",
                    r.restart_needed.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Ok(other) => super::unexpected(&other),
        Err(code) => code,
    }
}
