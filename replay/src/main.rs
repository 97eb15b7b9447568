//! `palisade-replay`: what `palisade replay` runs (see `palisade replay --help`).

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use palisade_replay::{Options, open_out, packet::Kinds, replay};

/// Replays a pcap or pcapng file through Palisade's parsers and writes EVE JSON events.
#[derive(Debug, Parser)]
#[command(name = "palisade replay")]
struct Args {
    /// The capture file (pcap or pcapng).
    file: PathBuf,
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
}

fn main() -> ExitCode {
    let args = Args::parse();
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
    match replay(&args.file, out, opts) {
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
            eprintln!("palisade replay: {}: {e}", args.file.display());
            ExitCode::FAILURE
        }
    }
}
