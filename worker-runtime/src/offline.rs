//! Running a worker's [`Protocol`] outside the worker process: records in, EVE lines out,
//! through the same `on_record` / `on_tick` / `on_shutdown` and the same [`Sink`] as a
//! running worker. For benchmarks (`palisade-bench worker-cost`) and offline tools; no IPC,
//! no privileges involved. Messages a protocol would send to the supervisor are kept (see
//! [`Offline::take_messages`]); the caller decides what to do with them.

use std::{os::fd::OwnedFd, time::Instant};

use palisade_abi::RecordHeader;
use palisade_ipc::messages::{
    FdRole, InterfaceName, SupervisorToWorker, WorkerStats, WorkerToSupervisor,
};

use crate::{
    EventOut, Protocol, Record,
    eve::Context,
    sink::Sink,
    stats::{DROP_BAD_RECORD, Stats},
};

/// A protocol fed records directly.
#[derive(Debug)]
pub struct Offline<P: Protocol> {
    protocol: P,
    ctx: Context,
    sink: Sink,
    stats: Stats,
    outbox: Vec<WorkerToSupervisor>,
    /// Stamps are a capture file's (see [`Offline::set_file_clock`]): never re-read the host's.
    file_clock: bool,
}

impl<P: Protocol> Offline<P> {
    /// Events go to `sink` (a file, a pipe, /dev/null); `interfaces` name the ifindexes.
    pub fn new(protocol: P, sink: OwnedFd, interfaces: &[InterfaceName]) -> Self {
        let mut ctx = Context::default();
        ctx.set_interfaces(interfaces);
        ctx.refresh_clock();
        Self {
            protocol,
            ctx,
            sink: Sink::new(sink),
            stats: Stats::default(),
            outbox: Vec::new(),
            file_clock: false,
        }
    }

    fn out(&mut self) -> (&mut P, &Context, EventOut<'_>) {
        (
            &mut self.protocol,
            &self.ctx,
            EventOut {
                sink: &mut self.sink,
                stats: &mut self.stats,
                outbox: &mut self.outbox,
            },
        )
    }

    /// Hands the protocol its protocol-specific FDs, as the runtime does before the first
    /// record.
    pub fn fds(&mut self, fds: Vec<(FdRole, OwnedFd)>) -> Result<(), &'static str> {
        let (protocol, _, mut out) = self.out();
        protocol.on_fds(fds, &mut out)
    }

    /// The counters now, gauges included.
    pub fn stats(&mut self) -> WorkerStats {
        for (name, value) in self.protocol.gauges() {
            self.stats.gauge(name, value);
        }
        self.stats.snapshot()
    }

    /// The protocol (to inspect its state).
    pub fn protocol(&self) -> &P {
        &self.protocol
    }

    /// Hands the protocol a supervisor message (e.g. its policy), as the runtime does.
    pub fn message(&mut self, msg: SupervisorToWorker) -> Result<(), &'static str> {
        let (protocol, ctx, mut out) = self.out();
        protocol.on_supervisor_message(ctx, msg, &mut out)
    }

    /// One ring-buffer record (header and payload), as the kernel wrote it.
    pub fn record(&mut self, item: &[u8]) {
        self.stats.records += 1;
        match RecordHeader::read(item) {
            Ok((hdr, payload)) => {
                let (protocol, ctx, mut out) = self.out();
                protocol.on_record(ctx, &Record { hdr, payload }, &mut out);
            }
            Err(_) => self.stats.drop(DROP_BAD_RECORD, 1),
        }
    }

    /// Records carry a capture file's wall-clock stamps, and "now" is `now_ns` of that file
    /// (`palisade replay`): events get the packets' timestamps.
    pub fn set_file_clock(&mut self, now_ns: u64) {
        self.file_clock = true;
        self.ctx.set_file_clock(now_ns);
    }

    /// Time-based work (timeouts), then writes what is buffered: the end of a drain.
    pub fn tick(&mut self) {
        if !self.file_clock {
            self.ctx.refresh_clock();
        }
        let (protocol, ctx, mut out) = self.out();
        protocol.on_tick(ctx, Instant::now(), &mut out);
        self.sink.flush(&mut self.stats);
    }

    /// The messages the protocol queued for the supervisor since the last call.
    pub fn take_messages(&mut self) -> Vec<WorkerToSupervisor> {
        std::mem::take(&mut self.outbox)
    }

    /// Stops the protocol as a graceful stop would, writes everything and returns the
    /// counters.
    pub fn finish(mut self) -> WorkerStats {
        let (protocol, ctx, mut out) = self.out();
        protocol.on_shutdown(ctx, &mut out);
        self.sink.flush(&mut self.stats);
        self.stats()
    }
}
