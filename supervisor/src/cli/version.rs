//! `palisade version`.

use std::process::ExitCode;

use palisade_ipc::messages::{ControlRequest, ControlResponse, VersionInfo};
use serde::Serialize;

use super::{ControlArgs, Failure, FailureKind};
use crate::{control::client, daemon::version_info};

/// Show the versions of this binary and of the running daemon.
///
/// Package version, control protocol version and eBPF ABI version of each. Exits 0 when the daemon answered or is not running (the binary's versions are still
/// shown); when the caller may not ask it (exit 4), or it speaks another protocol version
/// (exit 5), the reason is shown instead of its versions.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    control: ControlArgs,
    /// Print JSON: {"binary": {"version", "protocol", "abi"}, "daemon": {...} or null,
    /// "daemon_error": {"kind", "message"} or null}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Versions {
    binary: VersionInfo,
    daemon: Option<VersionInfo>,
    daemon_error: Option<Failure>,
}

pub fn main(args: Args) -> ExitCode {
    let binary = version_info();
    let answer = args.control.socket().and_then(|socket| {
        match client::request(&socket, &ControlRequest::Version) {
            Ok(ControlResponse::Version(v)) => Ok(v),
            Ok(other) => Err(Failure::failed(format!(
                "unexpected answer from the daemon: {other:?}"
            ))),
            Err(e) => Err(Failure::from(&e)),
        }
    });
    let (daemon, daemon_error) = match answer {
        Ok(v) => (Some(v), None),
        Err(f) => (None, Some(f)),
    };
    let code = match &daemon_error {
        None => ExitCode::SUCCESS,
        Some(f) if f.kind == FailureKind::NotRunning => ExitCode::SUCCESS,
        Some(f) => ExitCode::from(f.kind.exit_code()),
    };
    if args.json {
        let printed = super::print_json(&Versions {
            binary,
            daemon,
            daemon_error,
        });
        return if printed == ExitCode::SUCCESS {
            code
        } else {
            printed
        };
    }
    println!(
        "palisade {} (protocol {}, abi {})",
        binary.version, binary.protocol, binary.abi
    );
    match (daemon, daemon_error) {
        (Some(d), _) => println!(
            "daemon   {} (protocol {}, abi {})",
            d.version, d.protocol, d.abi
        ),
        (None, Some(f)) if f.kind == FailureKind::NotRunning => {
            println!("daemon   not running: {}", f.message);
        }
        (None, Some(f)) => {
            println!("daemon   unknown");
            eprintln!("palisade: {}", f.message);
        }
        (None, None) => {}
    }
    code
}
