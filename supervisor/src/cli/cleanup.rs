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
/// Before the pins go, what the sensor left behind is logged to `<log_dir>/<worker>.json` of
/// the configuration (--config, else the installed one) by the workers' parsers, running as
/// the flow worker's account (`palisade-replay`): the records its rings still hold unread
/// (written while no daemon ran), then every flow still open in the tables, ended with its
/// `flow` event (reason `shutdown`). Flows that cannot be ended so (a table of a layout
/// before ABI 6, an invalid configuration) are counted and reported.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bpffs pin root (overrides `paths.pin_root` of the configuration)
    /// [default: /sys/fs/bpf/palisade].
    #[arg(long, value_name = "PATH")]
    pin_root: Option<PathBuf>,
    #[command(flatten)]
    control: ControlArgs,
    /// Print the result as JSON: {"pin_root", "removed": [PATH...], "ring_records_logged",
    /// "open_flows_ended",
    /// "open_flows_discarded", "open_flows_error", "clsact_filters_removed"}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Cleaned {
    pin_root: PathBuf,
    removed: Vec<PathBuf>,
    /// Records the rings of this ABI version still held unread (written while no daemon
    /// ran), logged by their workers' parsers before the rings went.
    ring_records_logged: u64,
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
    let (mut open_flows_ended, mut ring_records_logged) = (0, 0);
    match log_leftovers(args.control.config.as_deref(), &pin_root, &ends.framed) {
        Ok(records) => {
            ring_records_logged = records;
            open_flows_ended = ends.flows;
        }
        Err(e) => open_flows_error = Some(e),
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
            ring_records_logged,
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
            if ring_records_logged > 0 {
                println!("{ring_records_logged} unread record(s) of the rings logged");
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

/// Logs what the sensor left behind before its pins go: the records still unread in the
/// rings of this ABI version (`<pin_root>/v<ABI>/maps/rb_*`) and the open flows' end records
/// (`flow_ends`), through `palisade-replay --ring`, which runs the workers' parsers as the
/// flow worker's account (the root CLI parses nothing), appending to `<log_dir>/<worker>.json`
/// of the configuration (`config`, else the installed one, else the embedded default),
/// opened here as the daemon opens them. Returns the ring records logged.
fn log_leftovers(
    config: Option<&std::path::Path>,
    pin_root: &std::path::Path,
    flow_ends: &[u8],
) -> Result<u64, String> {
    use palisade_ipc::messages::WorkerKind;
    use std::os::{fd::AsRawFd, unix::process::CommandExt};
    let maps = pin_root
        .join(format!("v{}", palisade_abi::ABI_VERSION))
        .join("maps");
    let rings: Vec<(WorkerKind, std::os::fd::OwnedFd)> = WorkerKind::ALL
        .iter()
        .filter_map(|k| {
            palisade_ebpf::maps::open_pinned(&maps.join(format!("rb_{}", k.name())))
                .ok()
                .map(|fd| (*k, fd))
        })
        .collect();
    if rings.is_empty() && flow_ends.is_empty() {
        return Ok(0);
    }
    if !rings.iter().any(|(k, _)| *k == WorkerKind::Flow) {
        return Err(format!("no flow ring below {}", maps.display()));
    }
    let installed = std::path::Path::new(crate::paths::CONFIG_FILE);
    let path = config.or_else(|| installed.exists().then_some(installed));
    let cfg = crate::config::Config::load(path).map_err(|e| crate::error_chain(&e))?;
    let accounts = crate::users::worker_accounts(&cfg).map_err(|e| e.to_string())?;
    let account = accounts
        .get(&WorkerKind::Flow)
        .ok_or("no flow worker account")?;
    let gid = cfg
        .log_group
        .as_ref()
        .map(crate::config::NamedGroup::resolve)
        .transpose()
        .map_err(|e| crate::error_chain(&e))?;
    crate::daemon::event_logs::prepare_dir(&cfg.log_dir, gid)
        .map_err(|e| crate::error_chain(&e))?;
    let mut cmd = std::process::Command::new(super::replay::replay_binary());
    // Every descriptor handed over is inherited: dup() gives one without close-on-exec
    // (BPF_OBJ_GET's and open()'s have it), the memfd has none. They stay open here until
    // the child is done.
    let mut keep = Vec::new();
    for (kind, ring) in rings {
        let out = crate::daemon::event_logs::open(&cfg.log_dir, kind, gid)
            .map_err(|e| crate::error_chain(&e))?;
        let out = nix::unistd::dup(&out).map_err(|e| format!("dup: {e}"))?;
        let ring = nix::unistd::dup(&ring).map_err(|e| format!("dup: {e}"))?;
        let mut arg = format!("{}:{}:{}", kind.name(), ring.as_raw_fd(), out.as_raw_fd());
        keep.push(ring);
        keep.push(out);
        if kind == WorkerKind::Dhcp {
            // The inventory, as the DHCP worker gets it: read, and written back.
            let state =
                crate::devices::open_state(&cfg.state_dir).map_err(|e| crate::error_chain(&e))?;
            let mut extra = vec![nix::unistd::dup(&state).map_err(|e| format!("dup: {e}"))?];
            if let Some(r) = crate::devices::registry_fd(&cfg.ieee_data_dir) {
                extra.push(nix::unistd::dup(&r.fd).map_err(|e| format!("dup: {e}"))?);
            }
            for fd in extra {
                arg.push_str(&format!(":{}", fd.as_raw_fd()));
                keep.push(fd);
            }
        }
        cmd.arg("--ring").arg(arg);
    }
    if !flow_ends.is_empty() {
        let ends = super::replay::memfd_with(flow_ends)?;
        cmd.arg("--flow-ends-fd").arg(ends.as_raw_fd().to_string());
        keep.push(ends);
    }
    let out = cmd
        // Root's supplementary groups go too (std calls setgroups(0) for a root parent).
        .uid(account.user.id)
        .gid(account.group.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running palisade-replay: {e}"))?;
    drop(keep);
    let report = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("palisade-replay: {} {}", out.status, report.trim()));
    }
    // `leftovers: <worker> records N events M` per worker; the flow worker's records include
    // the ends.
    let flow_ends_n = (flow_ends.len()
        / (4 + palisade_abi::RecordHeader::SIZE + palisade_abi::FlowRecord::SIZE))
        as u64;
    let read: u64 = report
        .lines()
        .filter_map(|l| {
            l.strip_prefix("leftovers: ")?
                .split_whitespace()
                .nth(2)?
                .parse::<u64>()
                .ok()
        })
        .sum();
    Ok(read.saturating_sub(flow_ends_n))
}
