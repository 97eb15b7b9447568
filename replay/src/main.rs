//! `palisade-replay`: what `palisade replay` runs (see `palisade replay --help`).

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use palisade_replay::{Options, open_out, packet::Kinds, replay};

/// Replays a pcap or pcapng file through Palisade's parsers and writes EVE JSON events.
#[derive(Debug, Parser)]
#[command(name = "palisade replay")]
struct Args {
    /// The capture file (pcap or pcapng).
    #[arg(required_unless_present = "ring")]
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
    /// What a sensor left behind, from `palisade cleanup` (not for direct use): a worker
    /// (dns, dhcp, tls, flow), the inherited descriptor of its ring buffer and that of its
    /// event log, `KIND:RING_FD:OUT_FD`, for dhcp also `:STATE_FD[:REGISTRY_FD]`; repeated.
    /// The rings' unread records are logged on the host's clocks.
    #[arg(
        long,
        hide = true,
        value_name = "KIND:RING_FD:OUT_FD",
        conflicts_with = "file"
    )]
    ring: Vec<String>,
    /// With --ring: the end records made for the flows still open (framed as the settings
    /// are), logged by the flow worker after its ring.
    #[arg(long, hide = true, requires = "ring")]
    flow_ends_fd: Option<i32>,
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

/// `--ring` (and `--flow-ends-fd`): what a sensor left behind, to its event logs.
fn leftovers(rings: &[String], flow_ends: Option<i32>) -> ExitCode {
    let run = || -> Result<Vec<(&'static str, palisade_ipc::messages::WorkerStats)>, String> {
        use palisade_ipc::messages::FdRole;
        let mut list = Vec::new();
        let mut dhcp_extra = Vec::new();
        for r in rings {
            let mut parts = r.split(':');
            let (Some(kind), Some(ring), Some(out)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("--ring {r}: expected KIND:RING_FD:OUT_FD"));
            };
            let fd = |s: &str| {
                s.parse::<i32>()
                    .map_err(|_| format!("--ring {r}: {s}: not a descriptor"))
            };
            list.push((
                kind.to_owned(),
                inherited(fd(ring)?, "ring")?,
                inherited(fd(out)?, "ring")?,
            ));
            for (role, part) in [FdRole::State, FdRole::Registry]
                .into_iter()
                .zip(parts.by_ref())
            {
                if kind != "dhcp" {
                    return Err(format!(
                        "--ring {r}: extra descriptors are the DHCP worker's"
                    ));
                }
                dhcp_extra.push((role, inherited(fd(part)?, "ring")?));
            }
            if parts.next().is_some() {
                return Err(format!("--ring {r}: too many descriptors"));
            }
        }
        let ends = flow_ends
            .map(|fd| inherited(fd, "flow-ends-fd").map(std::fs::File::from))
            .transpose()?;
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
        palisade_replay::leftovers(list, dhcp_extra, ends, &interfaces, u64::from(u32::MAX))
    };
    match run() {
        Ok(stats) => {
            // One line per worker for `palisade cleanup`: records read, events written.
            for (name, st) in stats {
                eprintln!(
                    "leftovers: {name} records {} events {}",
                    st.records, st.events
                );
            }
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
    if !args.ring.is_empty() {
        return leftovers(&args.ring, args.flow_ends_fd);
    }
    let Some(file) = args.file else {
        return ExitCode::from(2); // clap requires it without --ring
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
