//! `palisade restart`.

use std::process::ExitCode;

use clap::ValueEnum;
use palisade_ipc::messages::{ControlRequest, ControlResponse, RestartTarget, WorkerKind};
use serde::Serialize;

use super::ControlArgs;

/// Restart one worker (dhcp, dns, tls, flow) or all of them (root only).
///
/// The worker drains its ring buffer and exits; a new process starts at
/// once. A worker marked failed after a crash loop is retried.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The worker to restart, or all of them.
    #[arg(value_enum, value_name = "WORKER")]
    target: Target,
    #[command(flatten)]
    control: ControlArgs,
    /// Print the result as JSON: {"restarting": [WORKER...]}.
    #[arg(long)]
    json: bool,
}

/// What `restart` takes.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Target {
    Dhcp,
    Dns,
    Tls,
    Flow,
    All,
}

#[derive(Serialize)]
struct Restarting {
    restarting: Vec<WorkerKind>,
}

pub fn main(args: Args) -> ExitCode {
    let target = match args.target {
        Target::Dhcp => RestartTarget::One(WorkerKind::Dhcp),
        Target::Dns => RestartTarget::One(WorkerKind::Dns),
        Target::Tls => RestartTarget::One(WorkerKind::Tls),
        Target::Flow => RestartTarget::One(WorkerKind::Flow),
        Target::All => RestartTarget::All,
    };
    match super::ask(&args.control, args.json, &ControlRequest::Restart(target)) {
        Ok(ControlResponse::Restarted(kinds)) if args.json => {
            super::print_json(&Restarting { restarting: kinds })
        }
        Ok(ControlResponse::Restarted(kinds)) => {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            println!("restarting: {}", names.join(", "));
            ExitCode::SUCCESS
        }
        Ok(other) => super::unexpected(args.json, &other),
        Err(code) => code,
    }
}
