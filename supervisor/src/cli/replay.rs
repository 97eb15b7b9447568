//! `palisade replay`: runs `palisade-replay` (the replay crate), which holds the parsers.
//! The `palisade` binary itself stays free of packet parsers (ARCHITECTURE.md: the root
//! supervisor never parses attacker bytes), so this command only finds that binary and
//! hands it the arguments.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use crate::paths;

/// Replay a capture file (pcap or pcapng) through Palisade's parsers, offline.
///
/// Reads FILE (pcap or pcapng; Ethernet with up to two VLAN tags, Linux cooked v1 and v2,
/// raw IP, BSD loopback), builds from each packet the records the kernel program builds live
/// (DNS and DHCP payloads, TLS handshakes followed across segments, QUIC Initials, flow
/// starts and ends with their counters) and runs them through
/// the workers' own parsers, in this process: the EVE JSON events are those a live sensor
/// writes, with the packets' timestamps. Flows still open at the end of the file end there
/// (closed TCP flows with reason fin or rst, the others with timeout). Needs no privilege:
/// run it as an ordinary user. Policies (DNS, TLS, IP rules) are not applied: replay
/// observes only.
///
/// With `--config`, the configuration's settings are applied as the daemon applies them to
/// its workers: `[flow]` timeouts, update interval and start events, `[dhcp]
/// transaction_timeout_s`, the DNS lists' regex rules and encrypted-DNS resolvers (alerts),
/// and the TLS rules of its lists and of the runtime file in `paths.state_dir` when it can
/// be read (alerts; nothing is cut). Without it, the built-in defaults.
///
/// Exit status: 0 success, 1 the file cannot be read (or the configuration is invalid), 2
/// usage error.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The capture file.
    file: PathBuf,
    /// Protocols to run, comma separated: dns, dhcp, tls (TLS and QUIC), flow [default: all].
    #[arg(long, value_name = "LIST")]
    proto: Option<String>,
    /// Write the events to this file [default: standard output].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print counters (packets, records, per worker) to standard error at the end.
    #[arg(long)]
    stats: bool,
    /// Apply this configuration's worker settings and rules (see above).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The messages the daemon would send the workers under `path`'s configuration, each
/// framed as a little-endian `u32` length and the IPC encoding (what `palisade-replay
/// --settings-fd` reads).
fn settings(path: &Path) -> Result<Vec<u8>, String> {
    use palisade_ipc::messages::{PacketCaptureConfig, SupervisorToWorker, WorkerPolicy};
    let cfg = crate::config::Config::load(Some(path)).map_err(|e| crate::error_chain(&e))?;
    let rules =
        crate::policy::dns::RuleSet::load(&cfg.dns.lists).map_err(|e| crate::error_chain(&e))?;
    let dns = crate::policy::dns_state::DnsState::new(rules, cfg.dns.block_action);
    let tls = match crate::policy::tls::TlsRules::load(&cfg.tls, &cfg.state_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "palisade replay: runtime TLS rules not applied ({}): the lists' only",
                crate::error_chain(&e)
            );
            crate::policy::tls::TlsRules::lists_only(&cfg.tls)
                .map_err(|e| crate::error_chain(&e))?
        }
    };
    let messages = [
        SupervisorToWorker::PacketCapture(PacketCaptureConfig {
            idle_ns: u64::from(cfg.flow.idle_timeout_s) * 1_000_000_000,
            tcp_idle_ns: u64::from(cfg.flow.tcp_idle_timeout_s) * 1_000_000_000,
            update_ns: u64::from(cfg.flow.update_interval_s) * 1_000_000_000,
            max_flows: 0,
        }),
        SupervisorToWorker::Policy(WorkerPolicy {
            flow_start_events: cfg.flow.start_events,
            dhcp_transaction_timeout_s: cfg.dhcp.transaction_timeout_s,
            ..dns.worker_policy()
        }),
        SupervisorToWorker::TlsPolicy(tls.worker_policy()),
    ];
    let mut out = Vec::new();
    for m in &messages {
        let frame = palisade_ipc::codec::encode(m).map_err(|e| e.to_string())?;
        out.extend_from_slice(&u32::try_from(frame.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    Ok(out)
}

/// A memfd holding `bytes`, inherited by the program this process becomes.
pub(super) fn memfd_with(bytes: &[u8]) -> Result<std::os::fd::OwnedFd, String> {
    let fd = nix::sys::memfd::memfd_create(
        c"palisade-replay-settings",
        nix::sys::memfd::MFdFlags::empty(),
    )
    .map_err(|e| format!("memfd_create: {e}"))?;
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, bytes).map_err(|e| format!("settings: {e}"))?;
    std::io::Seek::rewind(&mut file).map_err(|e| format!("settings: {e}"))?;
    Ok(file.into())
}

/// `palisade-replay`: next to this binary, else the packaged location.
pub(super) fn replay_binary() -> PathBuf {
    let file = "palisade-replay";
    if let Some(sibling) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(file)))
        && sibling.exists()
    {
        return sibling;
    }
    Path::new(paths::LIBEXEC_DIR).join(file)
}

pub fn main(args: Args) -> ExitCode {
    let bin = replay_binary();
    let mut cmd = Command::new(&bin);
    cmd.arg(&args.file);
    if let Some(p) = &args.proto {
        cmd.arg("--proto").arg(p);
    }
    if let Some(o) = &args.out {
        cmd.arg("--out").arg(o);
    }
    if args.stats {
        cmd.arg("--stats");
    }
    // Kept open through the exec (no CLOEXEC).
    let _settings = match args
        .config
        .as_deref()
        .map(|c| settings(c).and_then(|b| memfd_with(&b)))
    {
        None => None,
        Some(Ok(fd)) => {
            cmd.arg("--settings-fd")
                .arg(std::os::fd::AsRawFd::as_raw_fd(&fd).to_string());
            Some(fd)
        }
        Some(Err(e)) => {
            eprintln!("palisade replay: --config: {e}");
            return ExitCode::FAILURE;
        }
    };
    let err = cmd.exec();
    eprintln!("palisade replay: cannot run {}: {err}", bin.display());
    ExitCode::FAILURE
}
