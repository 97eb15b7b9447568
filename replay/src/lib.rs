//! Offline analysis (`palisade replay`): a pcap or pcapng file through the same record
//! builder as the kernel's (see [`packet`]) and the same worker parsers, in process
//! ([`palisade_worker_runtime::offline::Offline`]), with the packets' timestamps.
//!
//! Why in process and not in the workers: replay needs no privilege (it opens one file the
//! invoking user can read and writes one output), so there is no privilege to separate;
//! the parsers are the workers' own `Protocol` implementations, only the transport (ring
//! buffer, IPC) is left out. Run it as an ordinary user: `palisade replay` refuses root
//! unless told otherwise (see `main.rs`).

pub mod file;
/// The record builder (crate `palisade-record-builder`, shared with the workers' AF_PACKET
/// input).
pub use palisade_record_builder as packet;

use std::{
    fs::File,
    io::{self, Read, Write},
    os::fd::OwnedFd,
    path::Path,
};

use palisade_abi::{
    KIND_ARP, KIND_DHCP, KIND_DNS, KIND_FLOW_END, KIND_FLOW_START, KIND_FLOW_UPDATE, KIND_ND,
    KIND_QUIC, KIND_RA, KIND_TLS,
};
use palisade_ipc::messages::{
    InterfaceName, SupervisorToWorker, TlsWorkerPolicy, WorkerPolicy, WorkerStats,
};
use palisade_worker_runtime::offline::Offline;

use crate::packet::{Builder, Kinds, Timeouts};

/// How far the workers' clock jumps at the end of the file: past every worker timeout.
const END_OF_FILE_NS: u64 = 86_400_000_000_000;

/// What to replay and where the events go.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Worker protocols to run.
    pub kinds: Kinds,
    /// Flow timeouts (the sweeper's).
    pub timeouts: Timeouts,
    /// What the daemon would send the workers (`palisade replay --config`): the user-space
    /// policy (DNS regexes, encrypted-DNS resolvers, flow start events, DHCP transaction
    /// timeout) to the DNS, DHCP and flow workers, the TLS rules to the TLS worker.
    pub policy: Option<WorkerPolicy>,
    /// The TLS rules (alerts; replay cuts nothing).
    pub tls_policy: Option<TlsWorkerPolicy>,
}

/// Reads the settings `palisade replay --config` wrote for this process (a sealed memfd
/// of frames, each a little-endian `u32` length and a [`SupervisorToWorker`] in the IPC
/// encoding) into `opts`. At most a handful of frames of [`palisade_ipc::MAX_FRAME`] each.
pub fn read_settings(from: impl Read, opts: &mut Options) -> Result<(), String> {
    let mut bytes = Vec::new();
    from.take(8 * (palisade_ipc::MAX_FRAME as u64 + 4))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the settings: {e}"))?;
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("settings: a frame length cut short")?;
        let len = u32::from_le_bytes(*len) as usize;
        let frame = tail.get(..len).ok_or("settings: a frame cut short")?;
        rest = tail.get(len..).unwrap_or_default();
        match palisade_ipc::codec::decode::<SupervisorToWorker>(frame)
            .map_err(|e| format!("settings: {e}"))?
        {
            SupervisorToWorker::PacketCapture(c) => {
                opts.timeouts = Timeouts {
                    idle_ns: c.idle_ns,
                    tcp_idle_ns: c.tcp_idle_ns,
                    update_ns: c.update_ns,
                };
            }
            SupervisorToWorker::Policy(p) => opts.policy = Some(p),
            SupervisorToWorker::TlsPolicy(p) => opts.tls_policy = Some(p),
            other => return Err(format!("settings: unexpected message {other:?}")),
        }
    }
    Ok(())
}

/// Counters of one replay.
#[derive(Debug, Default)]
pub struct Summary {
    /// Frames read from the file.
    pub packets: u64,
    /// Records built (all kinds).
    pub records: u64,
    /// Per worker: name and its counters.
    pub workers: Vec<(&'static str, WorkerStats)>,
}

struct Workers {
    dns: Option<Offline<palisade_worker_dns::worker::Dns>>,
    dhcp: Option<Offline<palisade_worker_dhcp::worker::Dhcp>>,
    tls: Option<Offline<palisade_worker_tls::worker::Tls>>,
    flow: Option<Offline<palisade_worker_flow::worker::Flow>>,
}

impl Workers {
    /// Stops every worker as a graceful stop would; their counters, by name.
    fn finish(self) -> Vec<(&'static str, WorkerStats)> {
        let mut out = Vec::new();
        if let Some(o) = self.dns {
            out.push(("dns", o.finish()));
        }
        if let Some(o) = self.dhcp {
            out.push(("dhcp", o.finish()));
        }
        if let Some(o) = self.tls {
            out.push(("tls", o.finish()));
        }
        if let Some(o) = self.flow {
            out.push(("flow", o.finish()));
        }
        out
    }
}

fn dup(fd: &OwnedFd) -> io::Result<OwnedFd> {
    fd.try_clone()
}

/// Replays `path`, writing EVE lines to `out`.
pub fn replay(path: &Path, out: OwnedFd, opts: Options) -> Result<Summary, file::Error> {
    let mut reader = file::Reader::open(path)?;
    let ifaces: Vec<InterfaceName> = reader.interfaces();
    let make = |on: bool| -> io::Result<Option<OwnedFd>> {
        if on { dup(&out).map(Some) } else { Ok(None) }
    };
    let mut w = Workers {
        dns: make(opts.kinds.dns)?.map(|fd| Offline::new(Default::default(), fd, &ifaces)),
        dhcp: make(opts.kinds.dhcp)?.map(|fd| Offline::new(Default::default(), fd, &ifaces)),
        tls: make(opts.kinds.tls)?.map(|fd| Offline::new(Default::default(), fd, &ifaces)),
        flow: make(opts.kinds.flow)?.map(|fd| Offline::new(Default::default(), fd, &ifaces)),
    };
    drop(out);
    // The settings before the first record, as a live worker gets them before its first.
    let policy = |msg: &Option<WorkerPolicy>| msg.clone().map(SupervisorToWorker::Policy);
    let refused = |e: &str| io::Error::new(io::ErrorKind::InvalidData, e.to_owned());
    if let Some(m) = policy(&opts.policy) {
        if let Some(o) = w.dns.as_mut() {
            o.message(m.clone()).map_err(refused)?;
        }
        if let Some(o) = w.dhcp.as_mut() {
            o.message(m.clone()).map_err(refused)?;
        }
        if let Some(o) = w.flow.as_mut() {
            o.message(m).map_err(refused)?;
        }
    }
    if let (Some(p), Some(o)) = (&opts.tls_policy, w.tls.as_mut()) {
        o.message(SupervisorToWorker::TlsPolicy(p.clone()))
            .map_err(refused)?;
    }
    // Stamps are the file's from the first record on.
    tick_clock(&mut w, 0);
    let mut builder = Builder::new(opts.kinds, opts.timeouts);
    let mut records = 0u64;
    let mut last_ns = 0u64;
    let mut since_tick = 0u32;
    while let Some(frame) = reader.next_frame()? {
        last_ns = last_ns.max(frame.ts_ns);
        builder.frame(&frame, &mut |k, r| route(&mut w, &mut records, k, r));
        since_tick += 1;
        // A drain's worth: the workers' timeouts run and their buffers are written.
        if since_tick == 4096 {
            since_tick = 0;
            tick(&mut w, last_ns);
        }
    }
    builder.finish(last_ns, &mut |k, r| route(&mut w, &mut records, k, r));
    tick(&mut w, last_ns);
    // The end of the file is the end of time: what a live worker reports after a timeout
    // (unanswered DNS queries, incomplete DHCP transactions, TCP streams) is reported now.
    tick(&mut w, last_ns.saturating_add(END_OF_FILE_NS));
    Ok(Summary {
        packets: builder.packets,
        records,
        workers: w.finish(),
    })
}

/// What a sensor left behind when its pins go (`palisade cleanup`), logged by the workers'
/// parsers on the host's clocks as live workers would: for each worker (`dns`, `dhcp`,
/// `tls`, `flow`), the records still unread in its ring buffer (written while no daemon
/// ran: queries, hellos, the sweeper's flow ends) and where its events go; then
/// `flow_ends`, the end records made for the flows still open (`u32` little-endian length,
/// then one record as [`palisade_abi::flow_record`] makes it; at most `max`), through the
/// flow worker. `extra` are the DHCP worker's state file and registry, as the daemon hands
/// them over (its inventory is read, and written back with what the records add). Returns
/// each worker's counters.
pub fn leftovers(
    rings: Vec<(String, OwnedFd, OwnedFd)>,
    dhcp_extra: Vec<(palisade_ipc::messages::FdRole, OwnedFd)>,
    flow_ends: Option<impl Read>,
    interfaces: &[InterfaceName],
    max: u64,
) -> Result<Vec<(&'static str, WorkerStats)>, String> {
    const RECORD: usize = palisade_abi::RecordHeader::SIZE + palisade_abi::FlowRecord::SIZE;
    let mut w = Workers {
        dns: None,
        dhcp: None,
        tls: None,
        flow: None,
    };
    let mut readers = Vec::new();
    for (kind, ring, out) in rings {
        let ring = palisade_worker_runtime::ringbuf::open(ring)
            .map_err(|e| format!("the {kind} ring: {e}"))?;
        match kind.as_str() {
            "dns" => w.dns = Some(Offline::new(Default::default(), out, interfaces)),
            "dhcp" => w.dhcp = Some(Offline::new(Default::default(), out, interfaces)),
            "tls" => w.tls = Some(Offline::new(Default::default(), out, interfaces)),
            "flow" => w.flow = Some(Offline::new(Default::default(), out, interfaces)),
            other => return Err(format!("{other}: not a worker (dns, dhcp, tls, flow)")),
        }
        readers.push((kind, ring));
    }
    if let Some(dhcp) = w.dhcp.as_mut() {
        dhcp.fds(dhcp_extra)
            .map_err(|e| format!("the DHCP worker's files: {e}"))?;
    }
    for (kind, mut ring) in readers {
        let mut n = 0u32;
        while let Some(item) = ring.next_record() {
            match kind.as_str() {
                "dns" => w.dns.as_mut().map(|o| o.record(&item)),
                "dhcp" => w.dhcp.as_mut().map(|o| o.record(&item)),
                "tls" => w.tls.as_mut().map(|o| o.record(&item)),
                _ => w.flow.as_mut().map(|o| o.record(&item)),
            };
            n += 1;
            if n.is_multiple_of(4096) {
                ring.commit();
                live_tick(&mut w);
            }
        }
        ring.commit();
    }
    if let Some(input) = flow_ends {
        let flow = w
            .flow
            .as_mut()
            .ok_or("flow ends without the flow worker's output")?;
        let mut input = io::BufReader::new(input.take(max.saturating_mul(RECORD as u64 + 4)));
        let mut buf = [0u8; RECORD];
        loop {
            let mut len = [0u8; 4];
            match input.read_exact(&mut len) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(format!("reading the flow ends: {e}")),
            }
            if u32::from_le_bytes(len) as usize != RECORD {
                return Err(format!(
                    "a record of {} bytes: not a flow record",
                    u32::from_le_bytes(len)
                ));
            }
            input
                .read_exact(&mut buf)
                .map_err(|e| format!("reading the flow ends: {e}"))?;
            flow.record(&buf);
        }
    }
    live_tick(&mut w);
    Ok(w.finish())
}

/// Time-based work and writes, on the host's clocks.
fn live_tick(w: &mut Workers) {
    if let Some(o) = w.dns.as_mut() {
        o.tick();
    }
    if let Some(o) = w.dhcp.as_mut() {
        o.tick();
    }
    if let Some(o) = w.tls.as_mut() {
        o.tick();
    }
    if let Some(o) = w.flow.as_mut() {
        o.tick();
    }
}

/// Hands a record to the worker that reads its kind (its ring buffer's reader, live).
fn route(w: &mut Workers, records: &mut u64, kind: u16, rec: &[u8]) {
    *records += 1;
    match kind {
        KIND_DNS => w.dns.as_mut().map(|o| o.record(rec)),
        KIND_DHCP | KIND_ARP | KIND_ND | KIND_RA => w.dhcp.as_mut().map(|o| o.record(rec)),
        KIND_TLS | KIND_QUIC => w.tls.as_mut().map(|o| o.record(rec)),
        KIND_FLOW_START | KIND_FLOW_END | KIND_FLOW_UPDATE => {
            w.flow.as_mut().map(|o| o.record(rec))
        }
        _ => None,
    };
}

fn tick_clock(w: &mut Workers, now_ns: u64) {
    if let Some(o) = w.dns.as_mut() {
        o.set_file_clock(now_ns);
    }
    if let Some(o) = w.dhcp.as_mut() {
        o.set_file_clock(now_ns);
    }
    if let Some(o) = w.tls.as_mut() {
        o.set_file_clock(now_ns);
    }
    if let Some(o) = w.flow.as_mut() {
        o.set_file_clock(now_ns);
    }
}

fn tick(w: &mut Workers, now_ns: u64) {
    if let Some(o) = w.dns.as_mut() {
        o.set_file_clock(now_ns);
        o.tick();
    }
    if let Some(o) = w.dhcp.as_mut() {
        o.set_file_clock(now_ns);
        o.tick();
    }
    if let Some(o) = w.tls.as_mut() {
        o.set_file_clock(now_ns);
        o.tick();
    }
    if let Some(o) = w.flow.as_mut() {
        o.set_file_clock(now_ns);
        o.tick();
    }
}

/// Opens `--out` (or standard output) for the events.
pub fn open_out(path: Option<&Path>) -> io::Result<OwnedFd> {
    match path {
        Some(p) => Ok(File::create(p)?.into()),
        None => {
            io::stdout().flush()?;
            io::stdout().as_fd_owned()
        }
    }
}

trait StdoutFd {
    fn as_fd_owned(&self) -> io::Result<OwnedFd>;
}

impl StdoutFd for io::Stdout {
    fn as_fd_owned(&self) -> io::Result<OwnedFd> {
        use std::os::fd::AsFd;
        self.as_fd().try_clone_to_owned()
    }
}
