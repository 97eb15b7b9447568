//! `palisade log-level`.

use std::process::ExitCode;

use clap::ValueEnum;
use palisade_ipc::messages::{
    ControlRequest, ControlResponse, LOG_FILTER_MAX, LogLevelChange, WorkerKind,
};

use super::ControlArgs;

/// Change the daemon's log level at run time (root only).
///
/// Without --worker, LEVEL replaces the supervisor's log filter: a level (error, warn,
/// info, debug, trace) or any directive `PALISADE_LOG` takes, such as
/// `info,palisade::control=debug`. With --worker, the worker sends only lines at LEVEL or
/// more severe (error, warn or info; workers write no debug lines); a restarted worker
/// keeps it. Either lasts until the daemon stops: at start the supervisor's filter is
/// `PALISADE_LOG` (default info) and every worker's is info. API: `POST /v1/log-level`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The level (or, for the supervisor, a filter directive).
    #[arg(value_name = "LEVEL", value_parser = parse_level)]
    level: String,
    /// Change this worker's level instead of the supervisor's.
    #[arg(long, value_enum, value_name = "WORKER")]
    worker: Option<Worker>,
    #[command(flatten)]
    control: ControlArgs,
    /// Print the result as JSON: {"level", "worker"} (worker null for the supervisor).
    #[arg(long)]
    json: bool,
}

/// What `--worker` takes.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Worker {
    Dhcp,
    Dns,
    Tls,
    Flow,
}

fn parse_level(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > LOG_FILTER_MAX {
        return Err(format!("a level of 1 to {LOG_FILTER_MAX} bytes"));
    }
    Ok(s.to_owned())
}

pub fn main(args: Args) -> ExitCode {
    let worker = args.worker.map(|w| match w {
        Worker::Dhcp => WorkerKind::Dhcp,
        Worker::Dns => WorkerKind::Dns,
        Worker::Tls => WorkerKind::Tls,
        Worker::Flow => WorkerKind::Flow,
    });
    let req = ControlRequest::LogLevel(LogLevelChange {
        level: args.level,
        worker,
    });
    match super::ask(&args.control, args.json, &req) {
        Ok(ControlResponse::LogLevelSet(r)) if args.json => super::print_json(&r),
        Ok(ControlResponse::LogLevelSet(r)) => {
            let who = r.worker.map_or("supervisor", WorkerKind::name);
            println!("{who} log level: {}", r.level);
            ExitCode::SUCCESS
        }
        Ok(other) => super::unexpected(args.json, &other),
        Err(code) => code,
    }
}
