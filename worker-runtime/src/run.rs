//! The worker's startup contract and event loop.

use std::{
    os::fd::{AsRawFd, OwnedFd},
    process::ExitCode,
    time::{Duration, Instant},
};

use crate::{
    channel::Input,
    packet::{DROP_FLOW_TABLE_FULL, DROP_PACKET_SOCKET, PacketInput},
    ringbuf::RingBuf,
};
use mio::{Events, Interest, Poll, Token, unix::SourceFd};
use palisade_abi::RecordHeader;
use palisade_ipc::{
    exit_code,
    messages::{
        FdRole, LogLevel, SupervisorToWorker, WorkerConfig, WorkerKind, WorkerStats,
        WorkerToSupervisor,
    },
};

use crate::{
    channel::{Channel, ChannelError},
    eve::Context,
    privilege, ringbuf, seccomp,
    sink::{EventOut, Sink},
    stats::{DROP_BAD_RECORD, Stats},
};

const IPC: Token = Token(0);
const RING: Token = Token(1);

/// One ring-buffer record, header checked.
#[derive(Debug)]
pub struct Record<'a> {
    /// The decoded header.
    pub hdr: RecordHeader,
    /// Payload bytes (`hdr.payload_len` of them).
    pub payload: &'a [u8],
}

/// A protocol a worker speaks: turns records into events.
pub trait Protocol {
    /// Which worker this is.
    const KIND: WorkerKind;

    /// Whether records wait for the supervisor's first `Policy` (sent right after `Ready`):
    /// a worker whose events depend on it (regex rules, which flow events to write) does
    /// not handle a record before it has one. The ring holds them meanwhile.
    const AWAITS_POLICY: bool = false;

    /// Handles one record: emits zero or more events and counts every
    /// record it cannot turn into an event.
    fn on_record(&mut self, ctx: &Context, record: &Record<'_>, out: &mut EventOut<'_>);

    /// Called after every drain and on every timer tick, for time-based
    /// state (timeouts). Default: nothing.
    fn on_tick(&mut self, _ctx: &Context, _now: Instant, _out: &mut EventOut<'_>) {}

    /// Called once when the supervisor stops the worker, after the last drain: state that
    /// would have become events later is written or counted here. Default: nothing.
    fn on_shutdown(&mut self, _ctx: &Context, _out: &mut EventOut<'_>) {}

    /// Protocol-specific FDs from the configuration ([`FdRole::State`],
    /// [`FdRole::Registry`]), before the first record, and later ones the supervisor hands
    /// over (`SupervisorToWorker::Fds`: the IEEE registry re-read at a reload). Seccomp is in
    /// force: read them with `pread`, write with `pwrite`/`ftruncate`. `Err` if this worker
    /// takes none (the worker then exits: the supervisor is confused).
    fn on_fds(
        &mut self,
        fds: Vec<(FdRole, OwnedFd)>,
        out: &mut EventOut<'_>,
    ) -> Result<(), &'static str> {
        let _ = (fds, out);
        Err("unexpected file descriptors for this worker")
    }

    /// Levels the worker reports with its counters (`WorkerStats::gauges`), e.g. open
    /// transactions. Default: none.
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// A protocol-specific message from the supervisor (policy, verdicts).
    /// Answers and events go through `out`; `Err` if this worker does not
    /// take such messages (the worker then exits: the supervisor is confused).
    fn on_supervisor_message(
        &mut self,
        ctx: &Context,
        msg: SupervisorToWorker,
        out: &mut EventOut<'_>,
    ) -> Result<(), &'static str> {
        let _ = (ctx, msg, out);
        Err("unexpected message for this worker")
    }
}

/// Where a running worker reads its records.
#[derive(Debug)]
pub enum Source {
    /// Its mapped BPF ring buffer (eBPF capture).
    Ring(RingBuf),
    /// Its AF_PACKET socket and the record builder (capture without eBPF); boxed: the
    /// builder is large next to a ring.
    Packets(Box<PacketInput>),
}

/// A worker that passed the startup contract: unprivileged, handshaken,
/// configured, ring mapped, seccomp installed.
pub struct Started {
    /// IPC channel (non-blocking).
    pub channel: Channel,
    /// Configuration from the supervisor.
    pub config: WorkerConfig,
    /// The mapped ring buffer, or the packet sockets.
    pub input: Source,
    /// Event output.
    pub sink: Sink,
    /// Protocol-specific FDs ([`Protocol::on_fds`]).
    pub extra: Vec<(FdRole, OwnedFd)>,
    /// epoll instance with the IPC socket and the ring registered (created
    /// before seccomp: `epoll_create1` is not in the allow-list).
    pub poll: Poll,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why startup failed, with the exit status the supervisor will decode.
#[derive(Debug)]
pub struct StartupFailure {
    /// Exit status ([`palisade_ipc::exit_code`]).
    pub code: i32,
    /// Message for stderr (visible when run by hand) and, where the channel
    /// is up, for the supervisor's log.
    pub message: String,
}

fn fail(code: i32, what: &str, err: &dyn std::error::Error) -> StartupFailure {
    let mut message = format!("{what}: {err}");
    let mut source = err.source();
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    StartupFailure { code, message }
}

/// Runs the startup contract, in this order, and nothing else:
/// verify unprivileged -> harden -> FD 3 -> handshake -> configure + FDs ->
/// map the ring -> seccomp -> Ready.
pub fn startup(kind: WorkerKind) -> Result<Started, StartupFailure> {
    // 1. Refuse to parse anything with privileges.
    privilege::verify_unprivileged()
        .map_err(|e| fail(exit_code::PRIVILEGED, "refusing to run", &e))?;
    // 2. Not dumpable, SIGKILL when the supervisor dies.
    match privilege::harden() {
        Ok(true) => {}
        Ok(false) => {
            return Err(StartupFailure {
                code: exit_code::OK,
                message: "supervisor already gone".into(),
            });
        }
        Err(e) => {
            return Err(fail(
                exit_code::SETUP,
                "prctl(PR_SET_DUMPABLE/PR_SET_PDEATHSIG)",
                &e,
            ));
        }
    }
    // 3. FD 3 is our only link to the world.
    let mut channel = Channel::from_fd3().map_err(|e| fail(exit_code::USAGE, "startup", &e))?;
    // 4. Versions first.
    channel
        .handshake(kind)
        .map_err(|e| fail(exit_code::PROTOCOL, "handshake", &e))?;
    // 5. Configuration and FDs.
    let configured = channel
        .configure(kind)
        .map_err(|e| fail(exit_code::PROTOCOL, "configuration", &e))?;
    let report = |channel: &Channel, f: StartupFailure| {
        let _ = channel.send(&WorkerToSupervisor::Log {
            level: LogLevel::Error,
            message: f.message.clone(),
        });
        f
    };
    // 6. Map the ring buffer while bpf() and mmap() are still allowed (or take the packet
    // sockets: nothing to map).
    let input = match configured.input {
        Input::Ring(fd) => Source::Ring(
            ringbuf::open(fd)
                .map_err(|e| report(&channel, fail(exit_code::SETUP, "ring buffer", &e)))?,
        ),
        Input::Packets(socks) => Source::Packets(Box::new(PacketInput::new(kind, socks))),
    };
    let sink = Sink::new(configured.sink);
    channel
        .set_nonblocking()
        .map_err(|e| report(&channel, fail(exit_code::SETUP, "IPC socket", &e)))?;
    let poll = event_poll(&channel, &input)
        .map_err(|e| report(&channel, fail(exit_code::SETUP, "epoll", &e)))?;
    // 7. From here on: only the syscalls in the allow-list; nothing can be written to or
    // sent on a packet socket.
    let receive_only = match &input {
        Source::Packets(p) => p.fds(),
        Source::Ring(_) => Vec::new(),
    };
    seccomp::install(&receive_only)
        .map_err(|e| report(&channel, fail(exit_code::SETUP, "seccomp", &e)))?;
    // 8. Tell the supervisor we are ready.
    channel
        .send(&WorkerToSupervisor::Ready)
        .map_err(|e| fail(exit_code::IO, "sending Ready", &e))?;
    Ok(Started {
        channel,
        config: configured.config,
        input,
        sink,
        extra: configured.extra,
        poll,
    })
}

fn event_poll(channel: &Channel, input: &Source) -> std::io::Result<Poll> {
    let poll = Poll::new()?;
    let ipc_fd = channel.fd().as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&ipc_fd), IPC, Interest::READABLE)?;
    let fds = match input {
        Source::Ring(ring) => vec![ring.as_raw_fd()],
        Source::Packets(p) => p.fds(),
    };
    for fd in fds {
        poll.registry()
            .register(&mut SourceFd(&fd), RING, Interest::READABLE)?;
    }
    Ok(poll)
}

/// A worker's whole life: [`startup`], then the event loop until the
/// supervisor says `Shutdown` or goes away.
pub fn run<P: Protocol>(mut protocol: P) -> ExitCode {
    let started = match startup(P::KIND) {
        Ok(s) => s,
        Err(f) => {
            eprintln!("palisade-worker-{}: {}", P::KIND.name(), f.message);
            return ExitCode::from(u8::try_from(f.code).unwrap_or(1));
        }
    };
    match event_loop(&mut protocol, started) {
        Ok(()) => ExitCode::SUCCESS,
        Err(ChannelError::Closed) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(exit_code::IO as u8),
    }
}

fn event_loop<P: Protocol>(protocol: &mut P, started: Started) -> Result<(), ChannelError> {
    let Started {
        mut channel,
        config,
        mut input,
        mut sink,
        extra,
        mut poll,
    } = started;
    let mut stats = Stats::default();
    if !extra.is_empty() {
        let mut outbox = Vec::new();
        protocol
            .on_fds(
                extra,
                &mut EventOut {
                    sink: &mut sink,
                    stats: &mut stats,
                    outbox: &mut outbox,
                },
            )
            .map_err(ChannelError::BadConfig)?;
        send_outbox(&channel, &mut outbox, LogLevel::Info)?;
    }
    let mut ctx = Context::default();
    ctx.set_interfaces(&config.interfaces);
    let heartbeat = Duration::from_millis(u64::from(config.heartbeat_ms.max(10)));
    let backstop = Duration::from_millis(u64::from(config.poll_backstop_ms.clamp(1, 1000)));
    let drain_time = (heartbeat / 2).min(DRAIN_TIME_MAX);

    let io = |e: std::io::Error| {
        ChannelError::Transport(palisade_ipc::transport::TransportError::Recv(
            nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        ))
    };
    let mut events = Events::with_capacity(8);
    let mut seq = 0u64;
    let mut next_heartbeat = Instant::now();
    // Counters also go out as soon as a drain changed them (at most every STATS_EVERY), so
    // `palisade status` is not a heartbeat behind.
    let mut stats_sent = (Instant::now(), snapshot(&*protocol, &mut stats));
    let mut outbox = Vec::new();
    // The last drain hit its budget: poll again without waiting.
    let mut behind = false;
    let mut awaiting_policy = P::AWAITS_POLICY;
    // `palisade log-level LEVEL --worker W`: log lines less severe are not sent.
    let mut log_level = LogLevel::Info;

    loop {
        let now = Instant::now();
        if now >= next_heartbeat {
            seq += 1;
            channel.send(&WorkerToSupervisor::Heartbeat { seq })?;
            let snapshot = snapshot(&*protocol, &mut stats);
            channel.send(&WorkerToSupervisor::Stats(snapshot.clone()))?;
            stats_sent = (now, snapshot);
            next_heartbeat = now + heartbeat;
        }
        let timeout = if behind {
            Duration::ZERO
        } else {
            backstop.min(next_heartbeat.saturating_duration_since(now))
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout))
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            return Err(io(e));
        }
        // The supervisor's messages first: a new interface's name (sent just before its
        // programs are attached) is known before its first records are drained, and a
        // policy applies to the records drained with it.
        while let Some((msg, fds)) = channel.try_recv()? {
            match msg {
                SupervisorToWorker::Interfaces(ifaces) => ctx.set_interfaces(&ifaces),
                SupervisorToWorker::SetLogLevel(level) => {
                    log_level = level;
                    // Sent whatever the level: the operator sees the change took effect.
                    channel.send(&WorkerToSupervisor::Log {
                        level: LogLevel::Warn,
                        message: format!("log level now {}", level.name()),
                    })?;
                }
                SupervisorToWorker::Fds(_) => {
                    let mut out = EventOut {
                        sink: &mut sink,
                        stats: &mut stats,
                        outbox: &mut outbox,
                    };
                    protocol
                        .on_fds(fds, &mut out)
                        .map_err(ChannelError::BadConfig)?;
                    sink.flush(&mut stats);
                    send_outbox(&channel, &mut outbox, log_level)?;
                }
                SupervisorToWorker::Shutdown => {
                    // What is queued now, bounded (the supervisor kills a
                    // worker that takes longer than its stop timeout).
                    for _ in 0..64 {
                        if !drain(
                            protocol,
                            &mut input,
                            &mut ctx,
                            &mut sink,
                            &mut stats,
                            &mut outbox,
                            drain_time,
                        ) {
                            break;
                        }
                    }
                    let mut out = EventOut {
                        sink: &mut sink,
                        stats: &mut stats,
                        outbox: &mut outbox,
                    };
                    protocol.on_shutdown(&ctx, &mut out);
                    sink.flush(&mut stats);
                    send_outbox(&channel, &mut outbox, log_level)?;
                    channel.send(&WorkerToSupervisor::Stats(snapshot(&*protocol, &mut stats)))?;
                    return Ok(());
                }
                SupervisorToWorker::Configure(_) => {
                    return Err(ChannelError::BadConfig("Configure after startup"));
                }
                SupervisorToWorker::PacketCapture(cfg) => match &mut input {
                    // Frames that waited for it are read by the drain right below.
                    Source::Packets(p) => p.configure(&cfg),
                    Source::Ring(_) => {
                        return Err(ChannelError::BadConfig(
                            "PacketCapture for a ring-buffer worker",
                        ));
                    }
                },
                other => {
                    if matches!(
                        other,
                        SupervisorToWorker::Policy(_) | SupervisorToWorker::TlsPolicy(_)
                    ) {
                        // Records that waited for the policy are drained right below.
                        awaiting_policy = false;
                    }
                    let mut out = EventOut {
                        sink: &mut sink,
                        stats: &mut stats,
                        outbox: &mut outbox,
                    };
                    protocol
                        .on_supervisor_message(&ctx, other, &mut out)
                        .map_err(ChannelError::BadConfig)?;
                    sink.flush(&mut stats);
                    send_outbox(&channel, &mut outbox, log_level)?;
                }
            }
        }
        // Drain on every wake-up, readable or not: the kernel batches
        // wake-ups, so the timeout is the latency backstop.
        behind = !awaiting_policy
            && drain(
                protocol,
                &mut input,
                &mut ctx,
                &mut sink,
                &mut stats,
                &mut outbox,
                drain_time,
            );
        send_outbox(&channel, &mut outbox, log_level)?;
        if stats_sent.0.elapsed() >= STATS_EVERY {
            let snapshot = snapshot(&*protocol, &mut stats);
            if snapshot != stats_sent.1 {
                channel.send(&WorkerToSupervisor::Stats(snapshot.clone()))?;
                stats_sent = (Instant::now(), snapshot);
            }
        }
    }
}

/// Least time between two `Stats` messages sent because counters changed (heartbeats carry
/// them too).
const STATS_EVERY: Duration = Duration::from_millis(50);

/// Records consumed per drain at most: a worker that falls behind still
/// returns to its loop (heartbeats, supervisor messages) between batches,
/// instead of being killed as stuck while events wait in its buffer.
const DRAIN_BUDGET: usize = 4096;
/// Longest a drain runs (checked every [`TIME_CHECK_EVERY`] records): with the ring space
/// of a batch released only after its events are written, a batch must end well inside the
/// heartbeat deadline, or a worker killed as stuck would leave its successor the same batch,
/// and the same fate.
const DRAIN_TIME_MAX: Duration = Duration::from_millis(50);
/// Records between two clock reads in a drain.
const TIME_CHECK_EVERY: usize = 64;

/// Consumes up to [`DRAIN_BUDGET`] records or for up to `time` (whichever ends first), then
/// flushes the sink and releases the records' ring space. Returns true when the ring may hold
/// more.
/// The counters with the protocol's gauges at their current levels.
fn snapshot<P: Protocol>(protocol: &P, stats: &mut Stats) -> WorkerStats {
    for (name, value) in protocol.gauges() {
        stats.gauge(name, value);
    }
    stats.snapshot()
}

fn drain<P: Protocol>(
    protocol: &mut P,
    input: &mut Source,
    ctx: &mut Context,
    sink: &mut Sink,
    stats: &mut Stats,
    outbox: &mut Vec<WorkerToSupervisor>,
    time: Duration,
) -> bool {
    let ring = match input {
        Source::Ring(ring) => ring,
        Source::Packets(p) => return drain_packets(protocol, p, ctx, sink, stats, outbox),
    };
    ctx.refresh_clock();
    let deadline = Instant::now() + time;
    let mut budget = DRAIN_BUDGET;
    while budget > 0
        && (!budget.is_multiple_of(TIME_CHECK_EVERY)
            || budget == DRAIN_BUDGET
            || Instant::now() < deadline)
        && let Some(item) = ring.next_record()
    {
        budget -= 1;
        stats.records += 1;
        match RecordHeader::read(&item) {
            Ok((hdr, payload)) => {
                let record = Record { hdr, payload };
                protocol.on_record(
                    ctx,
                    &record,
                    &mut EventOut {
                        sink,
                        stats,
                        outbox,
                    },
                );
            }
            Err(_) => stats.drop(DROP_BAD_RECORD, 1),
        }
    }
    protocol.on_tick(
        ctx,
        Instant::now(),
        &mut EventOut {
            sink,
            stats,
            outbox,
        },
    );
    sink.flush(stats);
    // Only now that the batch's events are written (or counted as sink drops) does the
    // kernel get the records' space back: a worker killed before this point loses nothing.
    ring.commit();
    budget == 0 || Instant::now() >= deadline
}

/// [`drain`] for the AF_PACKET input: up to [`DRAIN_BUDGET`] frames through the record
/// builder, each record to the protocol as a ring-buffer record would go. Nothing is read
/// before the supervisor's `PacketCapture` (the socket holds the frames meanwhile).
fn drain_packets<P: Protocol>(
    protocol: &mut P,
    input: &mut PacketInput,
    ctx: &mut Context,
    sink: &mut Sink,
    stats: &mut Stats,
    outbox: &mut Vec<WorkerToSupervisor>,
) -> bool {
    if !input.configured() {
        return false;
    }
    // Records carry the frames' wall-clock receive stamps (see `packet`): the context's
    // clock is the wall clock, as replay's is the file's.
    ctx.set_file_clock(crate::packet::now_ns());
    let read = input.read(DRAIN_BUDGET, ctx.boot_now_ns(), &mut |item| {
        stats.records += 1;
        match RecordHeader::read(item) {
            Ok((hdr, payload)) => protocol.on_record(
                ctx,
                &Record { hdr, payload },
                &mut EventOut {
                    sink,
                    stats,
                    outbox,
                },
            ),
            Err(_) => stats.drop(DROP_BAD_RECORD, 1),
        }
    });
    if read.errors > 0 {
        stats.drop(DROP_PACKET_SOCKET, read.errors);
    }
    if read.flows_refused > 0 {
        stats.drop(DROP_FLOW_TABLE_FULL, read.flows_refused);
    }
    protocol.on_tick(
        ctx,
        Instant::now(),
        &mut EventOut {
            sink,
            stats,
            outbox,
        },
    );
    sink.flush(stats);
    read.frames >= DRAIN_BUDGET
}

/// Sends the queued messages, less the log lines less severe than `level`.
fn send_outbox(
    channel: &Channel,
    outbox: &mut Vec<WorkerToSupervisor>,
    level: LogLevel,
) -> Result<(), ChannelError> {
    for msg in outbox.drain(..).filter(|m| passes(m, level)) {
        channel.send(&msg)?;
    }
    Ok(())
}

/// Whether `msg` goes to the supervisor under the log level `level`.
fn passes(msg: &WorkerToSupervisor, level: LogLevel) -> bool {
    match msg {
        WorkerToSupervisor::Log { level: l, .. } => *l <= level,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_level_keeps_back_only_less_severe_lines() {
        let line = |level| WorkerToSupervisor::Log {
            level,
            message: "m".into(),
        };
        assert!(passes(&line(LogLevel::Info), LogLevel::Info));
        assert!(!passes(&line(LogLevel::Info), LogLevel::Warn));
        assert!(passes(&line(LogLevel::Warn), LogLevel::Warn));
        assert!(!passes(&line(LogLevel::Warn), LogLevel::Error));
        assert!(passes(&line(LogLevel::Error), LogLevel::Error));
        // Everything else goes whatever the level.
        assert!(passes(&WorkerToSupervisor::Ready, LogLevel::Error));
        assert!(passes(
            &WorkerToSupervisor::Heartbeat { seq: 1 },
            LogLevel::Error
        ));
    }
}
