//! `palisade version`.

use std::process::ExitCode;

use palisade_ipc::messages::{ControlRequest, ControlResponse};
use serde::Serialize;

use super::ControlArgs;
use crate::{control::client, daemon::version_info};

/// Show the binary's version, IPC protocol version and eBPF ABI version,
/// and those of the running daemon when one answers.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    control: ControlArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Versions {
    binary: palisade_ipc::messages::VersionInfo,
    daemon: Option<palisade_ipc::messages::VersionInfo>,
}

pub fn main(args: Args) -> ExitCode {
    let binary = version_info();
    let daemon = match client::request(&args.control.control_socket, &ControlRequest::Version) {
        Ok(ControlResponse::Version(v)) => Some(v),
        _ => None,
    };
    if args.json {
        return super::print_json(&Versions { binary, daemon });
    }
    println!(
        "palisade {} (protocol {}, abi {})",
        binary.version, binary.protocol, binary.abi
    );
    match daemon {
        Some(d) => println!(
            "daemon   {} (protocol {}, abi {})",
            d.version, d.protocol, d.abi
        ),
        None => println!(
            "daemon   not reachable on {}",
            args.control.control_socket.display()
        ),
    }
    ExitCode::SUCCESS
}
