//! `palisade restart`.

use std::process::ExitCode;

use palisade_ipc::messages::{ControlRequest, ControlResponse, RestartTarget, WorkerKind};

use super::ControlArgs;

/// Restart one worker (dhcp, dns, tls, flow) or all of them (root only).
///
/// The worker drains its ring buffer and exits; a new process starts at
/// once. A worker marked failed after a crash loop is retried.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `dhcp`, `dns`, `tls`, `flow` or `all`.
    #[arg(value_name = "WORKER|all")]
    target: String,
    #[command(flatten)]
    control: ControlArgs,
}

pub fn main(args: Args) -> ExitCode {
    let target = match args.target.as_str() {
        "all" => RestartTarget::All,
        name => match WorkerKind::from_name(name) {
            Some(k) => RestartTarget::One(k),
            None => {
                eprintln!(
                    "palisade: unknown worker {name:?}: expected dhcp, dns, tls, flow or all"
                );
                return ExitCode::from(2);
            }
        },
    };
    match super::ask(&args.control, &ControlRequest::Restart(target)) {
        Ok(ControlResponse::Restarted(kinds)) => {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            println!("restarting: {}", names.join(", "));
            ExitCode::SUCCESS
        }
        Ok(other) => super::unexpected(&other),
        Err(code) => code,
    }
}
