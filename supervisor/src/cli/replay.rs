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
/// Exit status: 0 success, 1 the file cannot be read, 2 usage error.
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
}

/// `palisade-replay`: next to this binary, else the packaged location.
fn replay_binary() -> PathBuf {
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
    let err = cmd.exec();
    eprintln!("palisade replay: cannot run {}: {err}", bin.display());
    ExitCode::FAILURE
}
