//! `palisade-replay`: what `palisade replay` runs (see `palisade replay --help`).

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use palisade_replay::{Options, open_out, packet::Kinds, replay};

/// Replays a pcap or pcapng file through Palisade's parsers and writes EVE JSON events.
#[derive(Debug, Parser)]
#[command(name = "palisade replay")]
struct Args {
    /// The capture file (pcap or pcapng).
    #[arg(required_unless_present = "flow_records_fd")]
    file: Option<PathBuf>,
    /// Protocols, comma separated: dns, dhcp, tls (TLS handshakes and QUIC Initials), flow
    /// (default: all of them).
    #[arg(long, value_delimiter = ',', default_value = "dns,dhcp,tls,flow")]
    proto: Vec<String>,
    /// Write events to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print counters to standard error at the end.
    #[arg(long)]
    stats: bool,
    /// A descriptor holding the settings `palisade replay --config` read from the
    /// configuration (set by it; not for direct use).
    #[arg(long, hide = true)]
    settings_fd: Option<i32>,
    /// A descriptor of flow end records made from a flow table that went away, framed as
    /// the settings are (set by `palisade cleanup`; not for direct use): their events are
    /// written to --out-fd, on the host's clocks.
    #[arg(long, hide = true, requires = "out_fd", conflicts_with = "file")]
    flow_records_fd: Option<i32>,
    /// Write the events to this inherited descriptor (with --flow-records-fd).
    #[arg(long, hide = true)]
    out_fd: Option<i32>,
}

/// Takes ownership of an inherited descriptor that the parent opened for this process.
fn inherited(fd: i32, what: &str) -> Result<std::os::fd::OwnedFd, String> {
    if fd < 3 {
        return Err(format!("--{what} {fd}: not a descriptor passed for it"));
    }
    // SAFETY: the parent opened this descriptor for this process and nothing else here uses
    // it; it is owned (and closed) from now on. fstat rejects a descriptor that is not open.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    nix::sys::stat::fstat(&owned).map_err(|e| format!("--{what} {fd}: {e}"))?;
    Ok(owned)
}

/// `--flow-records-fd`: the end records of a flow table that went away, to `--out-fd`.
fn flow_records(records: i32, out: i32) -> ExitCode {
    let run = || -> Result<palisade_ipc::messages::WorkerStats, String> {
        let input = std::fs::File::from(inherited(records, "flow-records-fd")?);
        let out = inherited(out, "out-fd")?;
        let interfaces: Vec<_> = nix::net::if_::if_nameindex()
            .map(|list| {
                list.iter()
                    .map(|i| palisade_ipc::messages::InterfaceName {
                        ifindex: i.index(),
                        name: i.name().to_string_lossy().into_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        palisade_replay::flow_records(input, out, &interfaces, u64::from(u32::MAX))
    };
    match run() {
        Ok(stats) => {
            eprintln!("flow: {stats:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade replay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let (Some(records), Some(out)) = (args.flow_records_fd, args.out_fd) {
        return flow_records(records, out);
    }
    let Some(file) = args.file else {
        return ExitCode::from(2); // clap requires it without --flow-records-fd
    };
    let mut kinds = Kinds::default();
    for p in &args.proto {
        match p.as_str() {
            "dns" => kinds.dns = true,
            "dhcp" => kinds.dhcp = true,
            "flow" => kinds.flow = true,
            "tls" => kinds.tls = true,
            other => {
                eprintln!("palisade replay: unknown protocol {other:?} (dns, dhcp, tls, flow)");
                return ExitCode::from(2);
            }
        }
    }
    let out = match open_out(args.out.as_deref()) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("palisade replay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut opts = Options {
        kinds,
        ..Options::default()
    };
    if let Some(fd) = args.settings_fd {
        if fd < 3 {
            eprintln!("palisade replay: --settings-fd {fd}: not a settings descriptor");
            return ExitCode::from(2);
        }
        // SAFETY: `palisade replay` opened this descriptor for this process and nothing
        // else here uses it; it is owned (and closed) from now on.
        let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        if let Err(e) = palisade_replay::read_settings(file, &mut opts) {
            eprintln!("palisade replay: {e}");
            return ExitCode::FAILURE;
        }
    }
    match replay(&file, out, opts) {
        Ok(s) => {
            if args.stats {
                eprintln!("packets {} records {}", s.packets, s.records);
                for (name, st) in &s.workers {
                    eprintln!("{name}: {st:?}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade replay: {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}
