//! `palisade reload`.

use std::process::ExitCode;

use palisade_ipc::messages::{ControlRequest, ControlResponse};

use super::ControlArgs;

/// Re-read, validate and apply the configuration and every list (root only).
///
/// The same as SIGHUP, and what the unit's ExecReload runs. The DNS and IP rule sets are rebuilt and swapped into the kernel atomically. If anything
/// is invalid, nothing changes and every problem is printed (exit 1). Settings that only
/// take effect after a restart are listed.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    control: ControlArgs,
    /// Print the result as JSON: {"dns_ruleset_sha256", "dns_kernel_rules",
    /// "restart_needed": [KEY...]}.
    #[arg(long)]
    json: bool,
}

pub fn main(args: Args) -> ExitCode {
    match super::ask(&args.control, args.json, &ControlRequest::Reload) {
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
        Ok(other) => super::unexpected(args.json, &other),
        Err(code) => code,
    }
}
