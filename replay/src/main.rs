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
    match replay(
        &args.file,
        out,
        Options {
            kinds,
            ..Options::default()
        },
    ) {
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
