//! `palisade cleanup`.

use std::{path::PathBuf, process::ExitCode};

use serde::Serialize;

use super::{ControlArgs, Failure, FailureKind};
use crate::{
    control::client::{self, Probe},
    ebpf::pin,
};

/// Detach Palisade's programs and remove its pins (root, daemon stopped).
///
/// Every ABI version below the pin root goes. Refuses while a daemon answers on the
/// control socket. The pin root is --pin-root, else `paths.pin_root` of the configuration
/// (--config), else /sys/fs/bpf/palisade. The package's removal scripts run this.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bpffs pin root (overrides `paths.pin_root` of the configuration)
    /// [default: /sys/fs/bpf/palisade].
    #[arg(long, value_name = "PATH")]
    pin_root: Option<PathBuf>,
    #[command(flatten)]
    control: ControlArgs,
    /// Print the result as JSON: {"pin_root", "removed": [PATH...], "open_flows_discarded",
    /// "clsact_filters_removed"}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Cleaned {
    pin_root: PathBuf,
    removed: Vec<PathBuf>,
    /// Flows the removed tables still held. No daemon runs (cleanup refuses otherwise), so
    /// no worker could write their end records: they are counted here instead.
    open_flows_discarded: u64,
    /// Palisade's clsact filters removed (kernels without TCX, `tc_attach = "clsact"`).
    clsact_filters_removed: usize,
}

pub fn main(args: Args) -> ExitCode {
    if !nix::unistd::geteuid().is_root() {
        return Failure {
            kind: FailureKind::PermissionDenied,
            message: "cleanup must run as root (it detaches programs and removes pins)".into(),
        }
        .report(args.json);
    }
    let paths = match args.control.paths() {
        Ok(p) => p,
        Err(f) => return f.report(args.json),
    };
    let pin_root = args.pin_root.unwrap_or(paths.pin_root);
    let socket = paths.control_socket;
    match client::probe(&socket) {
        Probe::Absent => {}
        Probe::Live => {
            return Failure::failed(format!(
                "a daemon is running on {}; stop it first (or use `palisade run --detach-on-exit`)",
                socket.display()
            ))
            .report(args.json);
        }
        Probe::Denied => {
            return Failure {
                kind: FailureKind::PermissionDenied,
                message: format!(
                    "permission denied on {}: cannot tell whether a daemon is running",
                    socket.display()
                ),
            }
            .report(args.json);
        }
    }
    let open_flows_discarded: u64 = std::fs::read_dir(&pin_root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| pin::open_flows(&e.path()))
                .sum()
        })
        .unwrap_or(0);
    // clsact filters are not pinned: found by name on every interface.
    let clsact_filters_removed = match crate::ebpf::clsact::remove_everywhere() {
        Ok(n) => n,
        Err(e) => {
            return Failure::failed(format!("removing Palisade's clsact filters: {e}"))
                .report(args.json);
        }
    };
    match pin::remove_all(&pin_root) {
        Ok(removed) if args.json => super::print_json(&Cleaned {
            pin_root,
            removed,
            open_flows_discarded,
            clsact_filters_removed,
        }),
        Ok(removed) if removed.is_empty() && clsact_filters_removed == 0 => {
            println!("nothing pinned below {}", pin_root.display());
            ExitCode::SUCCESS
        }
        Ok(removed) => {
            for r in removed {
                println!("removed {}", r.display());
            }
            if clsact_filters_removed > 0 {
                println!("removed {clsact_filters_removed} clsact filter(s)");
            }
            if open_flows_discarded > 0 {
                println!(
                    "{open_flows_discarded} open flow(s) discarded without an end record (no daemon ran to log them; `palisade run --detach-on-exit` ends them with one)"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => Failure::failed(crate::error_chain(&e)).report(args.json),
    }
}
