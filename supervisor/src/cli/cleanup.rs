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
///
/// Flows still open in the removed tables end with their `flow` event (reason `shutdown`),
/// written to `<log_dir>/flow.json` of the configuration by the flow worker's parser,
/// running as the flow worker's account (`palisade-replay`). Flows that cannot be ended so
/// (a table of a layout before ABI 6, an invalid configuration) are counted and reported.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bpffs pin root (overrides `paths.pin_root` of the configuration)
    /// [default: /sys/fs/bpf/palisade].
    #[arg(long, value_name = "PATH")]
    pin_root: Option<PathBuf>,
    #[command(flatten)]
    control: ControlArgs,
    /// Print the result as JSON: {"pin_root", "removed": [PATH...], "open_flows_ended",
    /// "open_flows_discarded", "open_flows_error", "clsact_filters_removed"}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Cleaned {
    pin_root: PathBuf,
    removed: Vec<PathBuf>,
    /// Flows the removed tables still held, ended with their event (reason `shutdown`).
    open_flows_ended: u64,
    /// Flows the removed tables still held that got no event (see `open_flows_error`).
    open_flows_discarded: u64,
    /// Why flows were discarded (absent when none was).
    #[serde(skip_serializing_if = "Option::is_none")]
    open_flows_error: Option<String>,
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
    // clsact filters are not pinned: found by name on every interface.
    let clsact_filters_removed = match crate::ebpf::clsact::remove_everywhere() {
        Ok(n) => n,
        Err(e) => {
            return Failure::failed(format!("removing Palisade's clsact filters: {e}"))
                .report(args.json);
        }
    };
    // Detached first, so that no packet changes the flow tables once they are read.
    if let Err(e) = pin::detach_all(&pin_root) {
        return Failure::failed(crate::error_chain(&e)).report(args.json);
    }
    // The open flows' events before their tables go.
    let ends = crate::flows::end_records_pinned(&pin_root);
    let mut open_flows_error = ends.errors.first().cloned();
    let mut open_flows_ended = 0;
    if ends.flows > 0 {
        match write_flow_ends(args.control.config.as_deref(), &ends.framed) {
            Ok(()) => open_flows_ended = ends.flows,
            Err(e) => open_flows_error = Some(e),
        }
    }
    let open_flows_discarded = ends.flows - open_flows_ended + ends.left;
    if open_flows_discarded == 0 {
        open_flows_error = None;
    } else if open_flows_error.is_none() {
        open_flows_error = Some("tables of a layout before ABI 6 are not read".into());
    }
    match pin::remove_all(&pin_root) {
        Ok(removed) if args.json => super::print_json(&Cleaned {
            pin_root,
            removed,
            open_flows_ended,
            open_flows_discarded,
            open_flows_error,
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
            if open_flows_ended > 0 {
                println!(
                    "{open_flows_ended} open flow(s) ended with their event (reason shutdown)"
                );
            }
            if let (n @ 1.., Some(why)) = (open_flows_discarded, &open_flows_error) {
                println!("{n} open flow(s) discarded without an event: {why}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => Failure::failed(crate::error_chain(&e)).report(args.json),
    }
}

/// Writes the flows' end events: `palisade-replay --flow-records-fd` runs the flow worker's
/// parser over `framed` as the flow worker's account (the root CLI parses nothing), appending
/// to `<log_dir>/flow.json` of the configuration (`config`, else the installed one, else the
/// embedded default), opened here as the daemon opens it.
fn write_flow_ends(config: Option<&std::path::Path>, framed: &[u8]) -> Result<(), String> {
    use std::os::{fd::AsRawFd, unix::process::CommandExt};
    let installed = std::path::Path::new(crate::paths::CONFIG_FILE);
    let path = config.or_else(|| installed.exists().then_some(installed));
    let cfg = crate::config::Config::load(path).map_err(|e| crate::error_chain(&e))?;
    let accounts = crate::users::worker_accounts(&cfg).map_err(|e| e.to_string())?;
    let account = accounts
        .get(&palisade_ipc::messages::WorkerKind::Flow)
        .ok_or("no flow worker account")?;
    let gid = cfg
        .log_group
        .as_ref()
        .map(crate::config::NamedGroup::resolve)
        .transpose()
        .map_err(|e| crate::error_chain(&e))?;
    let sink = crate::daemon::event_logs::prepare_dir(&cfg.log_dir, gid)
        .and_then(|()| {
            crate::daemon::event_logs::open(
                &cfg.log_dir,
                palisade_ipc::messages::WorkerKind::Flow,
                gid,
            )
        })
        .map_err(|e| crate::error_chain(&e))?;
    // Both inherited: dup() leaves close-on-exec off, the memfd has it off.
    let sink = nix::unistd::dup(&sink).map_err(|e| format!("dup: {e}"))?;
    let records = super::replay::memfd_with(framed)?;
    let out = std::process::Command::new(super::replay::replay_binary())
        .arg("--flow-records-fd")
        .arg(records.as_raw_fd().to_string())
        .arg("--out-fd")
        .arg(sink.as_raw_fd().to_string())
        // Root's supplementary groups go too (std calls setgroups(0) for a root parent).
        .uid(account.user.id)
        .gid(account.group.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running palisade-replay: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "palisade-replay: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
