//! Worker supervision: one [`WorkerSlot`] per worker kind, holding the
//! current process (if any), its IPC session and its history.

pub mod privdrop;
pub mod spawn;

use std::{
    collections::BTreeMap,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    path::PathBuf,
    time::{Duration, Instant},
};

use mio::{Interest, Registry, Token, unix::SourceFd};
use nix::{
    sys::wait::{WaitPidFlag, WaitStatus, waitpid},
    unistd::Pid,
};
use palisade_ipc::{
    MAX_FRAME, codec, exit_code,
    handshake::{Hello, Role},
    messages::{
        DropCount, FdRole, InterfaceName, LogLevel, SupervisorToWorker, WorkerConfig, WorkerKind,
        WorkerState, WorkerStats, WorkerStatus, WorkerToSupervisor,
    },
    transport::{self, Received},
    validation::{WorkerSession, check_worker_message},
};

use self::{privdrop::Credentials, spawn::Spawned};

/// A running worker is declared dead after this many missed heartbeats.
pub const MISSED_HEARTBEATS: u32 = 4;
/// Time a new worker has to handshake and become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a worker has to exit after `Shutdown` before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// First restart delay; doubles per consecutive failure.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest restart delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Consecutive failures after which the worker is marked failed.
pub const CRASH_LOOP_LIMIT: u32 = 8;
/// A process that ran this long resets the failure streak.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Ring-buffer poll backstop given to workers (latency bound of batched
/// kernel wake-ups).
pub const POLL_BACKSTOP_MS: u32 = 10;

/// What a worker said that the daemon (not the slot) acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotEvent {
    /// The worker became ready (send it its rules).
    Ready,
    /// The DNS worker asks to block a name matched by a regex rule.
    BlockRequest {
        /// Name as the worker sent it (unvalidated).
        name: String,
        /// Rule the worker claims matched.
        rule_id: u32,
    },
    /// The worker applied the rule set with this hash.
    RulesetApplied([u8; 32]),
    /// The DNS worker reports an answer's CNAME chain.
    CnameCheck {
        /// Queried name (unvalidated).
        name: String,
        /// CNAME targets (unvalidated).
        targets: Vec<String>,
    },
}

/// What a slot needs from the daemon to (re)start its worker.
#[derive(Debug)]
pub struct Resources {
    /// Read-write ring buffer FD (dup'ed per start).
    pub ring: OwnedFd,
    /// Event sink FD (dup'ed per start).
    pub sink: OwnedFd,
    /// Attached interfaces, for `in_iface`.
    pub interfaces: Vec<InterfaceName>,
}

/// The current process of a slot.
#[derive(Debug)]
struct Process {
    pid: u32,
    pidfd: OwnedFd,
    /// `None` once we closed our end (after a violation).
    sock: Option<OwnedFd>,
    session: WorkerSession,
    spawned_at: Instant,
    ready_at: Option<Instant>,
    last_heartbeat: Option<Instant>,
    stop_deadline: Option<Instant>,
    /// Why we killed it, if we did.
    killed_for: Option<String>,
    stats: WorkerStats,
}

/// One worker kind's supervision state.
#[derive(Debug)]
pub struct WorkerSlot {
    /// Which worker.
    pub kind: WorkerKind,
    binary: PathBuf,
    creds: Credentials,
    heartbeat: Duration,
    state: WorkerState,
    process: Option<Process>,
    restart_at: Option<Instant>,
    /// Restart immediately when the current process exits (operator asked).
    restart_requested: bool,
    failures: u32,
    restarts: u32,
    violations: u32,
    last_exit: Option<String>,
    /// Totals of processes that already ended.
    past: WorkerStats,
    buf: Vec<u8>,
}

fn sock_token(kind: WorkerKind) -> Token {
    Token(10 + 2 * kind as usize)
}
fn pidfd_token(kind: WorkerKind) -> Token {
    Token(11 + 2 * kind as usize)
}

/// Which slot and which FD a token belongs to.
pub fn token_owner(token: Token) -> Option<(WorkerKind, bool)> {
    let n = token.0.checked_sub(10)?;
    let kind = *WorkerKind::ALL.get(n / 2)?;
    Some((kind, n % 2 == 0))
}

fn add_stats(total: &mut WorkerStats, more: &WorkerStats) {
    total.records += more.records;
    total.events += more.events;
    total.bytes += more.bytes;
    let mut drops: BTreeMap<String, u64> =
        total.drops.drain(..).map(|d| (d.reason, d.count)).collect();
    for d in &more.drops {
        *drops.entry(d.reason.clone()).or_default() += d.count;
    }
    total.drops = drops
        .into_iter()
        .map(|(reason, count)| DropCount { reason, count })
        .collect();
}

fn describe_wait(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit status {code}: {}", exit_code::describe(code)),
        WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _) => {
            "killed by SIGSYS: a syscall outside its seccomp allow-list".to_owned()
        }
        WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        other => format!("{other:?}"),
    }
}

impl WorkerSlot {
    /// A slot that has not started yet.
    pub fn new(kind: WorkerKind, binary: PathBuf, creds: Credentials, heartbeat_ms: u32) -> Self {
        Self {
            kind,
            binary,
            creds,
            heartbeat: Duration::from_millis(u64::from(heartbeat_ms)),
            state: WorkerState::Backoff,
            process: None,
            restart_at: Some(Instant::now()),
            restart_requested: false,
            failures: 0,
            restarts: 0,
            violations: 0,
            last_exit: None,
            past: WorkerStats::default(),
            buf: vec![0; MAX_FRAME],
        }
    }

    /// Pid of the current process.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// Starts the worker process and registers its FDs.
    pub fn start(&mut self, registry: &Registry) {
        self.restart_at = None;
        match spawn::spawn(&self.binary, self.creds) {
            Ok(Spawned { pid, pidfd, sock }) => {
                let sock_raw = sock.as_raw_fd();
                let pidfd_raw = pidfd.as_raw_fd();
                let registered = registry
                    .register(
                        &mut SourceFd(&sock_raw),
                        sock_token(self.kind),
                        Interest::READABLE,
                    )
                    .and_then(|()| {
                        registry.register(
                            &mut SourceFd(&pidfd_raw),
                            pidfd_token(self.kind),
                            Interest::READABLE,
                        )
                    });
                if let Err(e) = registered {
                    tracing::error!(worker = self.kind.name(), error = %e, "epoll registration failed");
                }
                tracing::info!(worker = self.kind.name(), pid, uid = self.creds.uid, gid = self.creds.gid, binary = %self.binary.display(), "worker started");
                self.state = WorkerState::Starting;
                self.process = Some(Process {
                    pid,
                    pidfd,
                    sock: Some(sock),
                    session: WorkerSession::AwaitHello,
                    spawned_at: Instant::now(),
                    ready_at: None,
                    last_heartbeat: None,
                    stop_deadline: None,
                    killed_for: None,
                    stats: WorkerStats::default(),
                });
            }
            Err(e) => {
                let msg = crate::error_chain(&e);
                tracing::error!(worker = self.kind.name(), error = %msg, "worker start failed");
                self.last_exit = Some(format!("start failed: {msg}"));
                self.schedule_restart();
            }
        }
    }

    /// Kills the current process (SIGKILL) and records why. Used for
    /// protocol violations, missed heartbeats and stop timeouts.
    fn kill(&mut self, registry: &Registry, why: String) {
        let Some(p) = self.process.as_mut() else {
            return;
        };
        if p.killed_for.is_none() {
            tracing::warn!(worker = self.kind.name(), pid = p.pid, reason = %why, "killing worker");
            p.killed_for = Some(why);
        }
        // SAFETY: pidfd_send_signal on a pidfd we own; no pid reuse race.
        let sent = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                p.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<()>(),
                0,
            )
        };
        if sent != 0 {
            let e = std::io::Error::last_os_error();
            // ESRCH: it already exited; the pidfd reports that next.
            if e.raw_os_error() != Some(libc::ESRCH) {
                tracing::error!(worker = self.kind.name(), pid = p.pid, error = %e, "pidfd_send_signal(SIGKILL) failed");
            }
        }
        if let Some(sock) = p.sock.take() {
            let _ = registry.deregister(&mut SourceFd(&sock.as_raw_fd()));
        }
    }

    /// Counts a protocol violation and kills the worker (it is restarted with backoff).
    pub fn violation(&mut self, registry: &Registry, what: String) {
        self.violations += 1;
        tracing::error!(worker = self.kind.name(), violation = %what, "IPC protocol violation");
        self.kill(registry, format!("protocol violation: {what}"));
    }

    /// The IPC socket is readable: handle every queued frame; returns what
    /// the daemon must act on.
    pub fn on_readable(&mut self, registry: &Registry, resources: &Resources) -> Vec<SlotEvent> {
        let mut events = Vec::new();
        self.read_frames(registry, resources, &mut events);
        events
    }

    fn read_frames(
        &mut self,
        registry: &Registry,
        resources: &Resources,
        events: &mut Vec<SlotEvent>,
    ) {
        loop {
            let Some(p) = self.process.as_mut() else {
                return;
            };
            let Some(sock) = p.sock.as_ref() else { return };
            let received = transport::recv_frame(sock.as_fd(), &mut self.buf);
            let (len, fds) = match received {
                Ok(Received::Frame { len, fds }) => (len, fds),
                Ok(Received::WouldBlock) => return,
                Ok(Received::Closed) => {
                    // Exit follows through the pidfd; stop reading.
                    if let Some(sock) = p.sock.take() {
                        let _ = registry.deregister(&mut SourceFd(&sock.as_raw_fd()));
                    }
                    return;
                }
                // The worker died with unread data queued (ECONNRESET) or
                // the socket failed: not an attack; its exit follows.
                Err(transport::TransportError::Recv(errno)) => {
                    tracing::debug!(worker = self.kind.name(), %errno, "IPC socket closed");
                    if let Some(sock) = p.sock.take() {
                        let _ = registry.deregister(&mut SourceFd(&sock.as_raw_fd()));
                    }
                    return;
                }
                Err(e) => return self.violation(registry, crate::error_chain(&e)),
            };
            if !fds.is_empty() {
                return self.violation(registry, format!("sent {} file descriptors", fds.len()));
            }
            let frame = self.buf.get(..len).unwrap_or_default().to_vec();
            if let Some(event) = self.on_frame(registry, resources, &frame) {
                events.push(event);
            }
        }
    }

    fn on_frame(
        &mut self,
        registry: &Registry,
        resources: &Resources,
        frame: &[u8],
    ) -> Option<SlotEvent> {
        let kind = self.kind;
        let p = self.process.as_mut()?;
        if p.session == WorkerSession::AwaitHello {
            // Answer with ours whatever theirs says, so a mismatched worker
            // can report the mismatch too.
            if let Some(sock) = p.sock.as_ref() {
                let _ = transport::send_frame(
                    sock.as_fd(),
                    &Hello::ours(Role::Supervisor).encode(),
                    &[],
                );
            }
            match Hello::decode(frame) {
                Ok(Hello {
                    role: Role::Worker(k),
                    ..
                }) if k == kind => {}
                Ok(h) => {
                    self.violation(
                        registry,
                        format!(
                            "handshake as {:?}, expected the {} worker",
                            h.role,
                            kind.name()
                        ),
                    );
                    return None;
                }
                Err(e) => {
                    self.violation(registry, format!("handshake: {e}"));
                    return None;
                }
            }
            self.configure(registry, resources);
            return None;
        }
        let msg: WorkerToSupervisor = match codec::decode(frame) {
            Ok(m) => m,
            Err(e) => {
                self.violation(registry, crate::error_chain(&e));
                return None;
            }
        };
        if let Err(v) = check_worker_message(kind, p.session, &msg) {
            self.violation(registry, v.to_string());
            return None;
        }
        let now = Instant::now();
        match msg {
            WorkerToSupervisor::Ready => {
                p.session = WorkerSession::Running;
                p.ready_at = Some(now);
                p.last_heartbeat = Some(now);
                self.state = WorkerState::Running;
                tracing::info!(worker = kind.name(), pid = p.pid, "worker ready");
                return Some(SlotEvent::Ready);
            }
            WorkerToSupervisor::Heartbeat { .. } => p.last_heartbeat = Some(now),
            WorkerToSupervisor::Stats(stats) => p.stats = stats,
            WorkerToSupervisor::Log { level, message } => match level {
                LogLevel::Error => tracing::error!(worker = kind.name(), pid = p.pid, "{message}"),
                LogLevel::Warn => tracing::warn!(worker = kind.name(), pid = p.pid, "{message}"),
                LogLevel::Info => tracing::info!(worker = kind.name(), pid = p.pid, "{message}"),
            },
            WorkerToSupervisor::BlockRequest { name, rule_id } => {
                return Some(SlotEvent::BlockRequest { name, rule_id });
            }
            WorkerToSupervisor::RulesetApplied { ruleset } => {
                return Some(SlotEvent::RulesetApplied(ruleset));
            }
            WorkerToSupervisor::CnameCheck { name, targets } => {
                return Some(SlotEvent::CnameCheck { name, targets });
            }
        }
        None
    }

    /// Sends a message to the worker if it is running; failures are logged
    /// (the heartbeat deadline deals with a stuck worker).
    pub fn send(&self, msg: &SupervisorToWorker) {
        let Some(sock) = self
            .process
            .as_ref()
            .filter(|p| p.session == WorkerSession::Running)
            .and_then(|p| p.sock.as_ref())
        else {
            return;
        };
        let sent = codec::encode(msg)
            .map_err(|e| crate::error_chain(&e))
            .and_then(|f| {
                transport::send_frame(sock.as_fd(), &f, &[]).map_err(|e| crate::error_chain(&e))
            });
        if let Err(e) = sent {
            tracing::warn!(worker = self.kind.name(), error = %e, "sending to worker");
        }
    }

    fn configure(&mut self, registry: &Registry, resources: &Resources) {
        let Some(p) = self.process.as_mut() else {
            return;
        };
        let Some(sock) = p.sock.as_ref() else { return };
        let config = SupervisorToWorker::Configure(WorkerConfig {
            kind: self.kind,
            heartbeat_ms: self.heartbeat.as_millis() as u32,
            poll_backstop_ms: POLL_BACKSTOP_MS,
            fds: vec![FdRole::RingBuf, FdRole::EventSink],
            interfaces: resources.interfaces.clone(),
        });
        let sent = codec::encode(&config)
            .map_err(|e| crate::error_chain(&e))
            .and_then(|frame| {
                transport::send_frame(
                    sock.as_fd(),
                    &frame,
                    &[resources.ring.as_fd(), resources.sink.as_fd()],
                )
                .map_err(|e| crate::error_chain(&e))
            });
        match sent {
            Ok(()) => p.session = WorkerSession::AwaitReady,
            Err(e) => self.kill(registry, format!("sending configuration: {e}")),
        }
    }

    /// The pidfd is readable: reap, account, schedule the restart.
    pub fn on_exit(&mut self, registry: &Registry) {
        let Some(p) = self.process.as_ref() else {
            return;
        };
        let status = match waitpid(Pid::from_raw(p.pid as i32), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return,
            Ok(s) => s,
            Err(e) => {
                tracing::error!(worker = self.kind.name(), error = %e, "waitpid");
                return;
            }
        };
        let Some(p) = self.process.take() else { return };
        let _ = registry.deregister(&mut SourceFd(&p.pidfd.as_raw_fd()));
        if let Some(sock) = &p.sock {
            let _ = registry.deregister(&mut SourceFd(&sock.as_raw_fd()));
        }
        add_stats(&mut self.past, &p.stats);
        let exited = describe_wait(status);
        let why = match &p.killed_for {
            Some(k) => format!("{k} ({exited})"),
            None => exited,
        };
        let clean = matches!(status, WaitStatus::Exited(_, 0)) && p.killed_for.is_none();
        if self.state == WorkerState::Stopping && !self.restart_requested {
            tracing::info!(
                worker = self.kind.name(),
                pid = p.pid,
                "worker stopped: {why}"
            );
            self.last_exit = Some(why);
            return;
        }
        if self.restart_requested {
            self.restart_requested = false;
            self.failures = 0;
            self.last_exit = Some(format!("restarted by operator: {why}"));
            self.restarts += 1;
            self.state = WorkerState::Backoff;
            self.restart_at = Some(Instant::now());
            return;
        }
        if p.ready_at.is_some_and(|t| t.elapsed() >= STABLE_AFTER) {
            self.failures = 0;
        }
        if !clean {
            tracing::error!(worker = self.kind.name(), pid = p.pid, "worker died: {why}");
        }
        self.last_exit = Some(why);
        self.schedule_restart();
    }

    fn schedule_restart(&mut self) {
        self.failures += 1;
        if self.failures > CRASH_LOOP_LIMIT {
            tracing::error!(
                worker = self.kind.name(),
                failures = self.failures,
                "crash loop: worker marked failed; `palisade restart {}` retries",
                self.kind.name()
            );
            self.state = WorkerState::Failed;
            self.restart_at = None;
            return;
        }
        let delay = BACKOFF_START
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(BACKOFF_MAX);
        self.state = WorkerState::Backoff;
        self.restart_at = Some(Instant::now() + delay);
        self.restarts += 1;
    }

    /// Timers: heartbeat and readiness deadlines, stop timeouts, restarts.
    pub fn tick(&mut self, registry: &Registry, now: Instant) {
        if let Some(p) = self.process.as_ref() {
            let reason = if p.stop_deadline.is_some_and(|d| now >= d) {
                Some("did not stop in time".to_owned())
            } else if p.ready_at.is_none() && now.duration_since(p.spawned_at) >= READY_TIMEOUT {
                Some(format!("not ready after {READY_TIMEOUT:?}"))
            } else if let Some(hb) = p.last_heartbeat {
                let limit = self.heartbeat * MISSED_HEARTBEATS;
                (now.duration_since(hb) > limit).then(|| format!("missed heartbeats for {limit:?}"))
            } else {
                None
            };
            if let Some(reason) = reason
                && p.killed_for.is_none()
            {
                self.kill(registry, reason);
            }
        } else if self.restart_at.is_some_and(|t| now >= t) {
            self.start(registry);
        }
    }

    /// Asks the process to stop (drain, flush, exit). `restart`: start a new
    /// one right after. A failed slot with no process restarts at once.
    pub fn stop(&mut self, registry: &Registry, restart: bool) {
        self.restart_requested = restart;
        match self.process.as_mut() {
            Some(p) => {
                let sent = p.sock.as_ref().map(|s| {
                    codec::encode(&SupervisorToWorker::Shutdown)
                        .map_err(|e| crate::error_chain(&e))
                        .and_then(|f| {
                            transport::send_frame(s.as_fd(), &f, &[])
                                .map_err(|e| crate::error_chain(&e))
                        })
                });
                p.session = WorkerSession::Draining;
                p.stop_deadline = Some(Instant::now() + STOP_TIMEOUT);
                self.state = WorkerState::Stopping;
                if !matches!(sent, Some(Ok(()))) {
                    self.kill(registry, "stop requested".to_owned());
                }
            }
            None if restart => {
                self.failures = 0;
                self.restart_requested = false;
                self.state = WorkerState::Backoff;
                self.restart_at = Some(Instant::now());
            }
            None => {
                self.state = WorkerState::Stopping;
                self.restart_at = None;
            }
        }
    }

    /// True when no process exists and none is scheduled.
    pub fn is_down(&self) -> bool {
        self.process.is_none()
    }

    /// Earliest instant this slot needs a tick.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.process {
            Some(p) => {
                let hb = p
                    .last_heartbeat
                    .map(|t| t + self.heartbeat * MISSED_HEARTBEATS);
                let ready = p.ready_at.is_none().then_some(p.spawned_at + READY_TIMEOUT);
                [hb, ready, p.stop_deadline].into_iter().flatten().min()
            }
            None => self.restart_at,
        }
    }

    /// Status for `palisade status`.
    pub fn status(&self, now: Instant) -> WorkerStatus {
        let mut stats = self.past.clone();
        if let Some(p) = &self.process {
            add_stats(&mut stats, &p.stats);
        }
        WorkerStatus {
            kind: self.kind,
            state: self.state,
            pid: self.pid(),
            uid: self.creds.uid,
            gid: self.creds.gid,
            uptime_ms: self
                .process
                .as_ref()
                .and_then(|p| p.ready_at)
                .map(|t| now.duration_since(t).as_millis() as u64),
            restarts: self.restarts,
            violations: self.violations,
            last_heartbeat_ms_ago: self
                .process
                .as_ref()
                .and_then(|p| p.last_heartbeat)
                .map(|t| now.duration_since(t).as_millis() as u64),
            last_exit: self.last_exit.clone(),
            stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for kind in WorkerKind::ALL {
            assert_eq!(token_owner(sock_token(kind)), Some((kind, true)));
            assert_eq!(token_owner(pidfd_token(kind)), Some((kind, false)));
        }
        assert_eq!(token_owner(Token(1)), None);
        assert_eq!(token_owner(Token(100)), None);
    }

    #[test]
    fn stats_accumulate_by_reason() {
        let mut total = WorkerStats::default();
        let a = WorkerStats {
            records: 1,
            events: 1,
            bytes: 10,
            drops: vec![DropCount {
                reason: "x".into(),
                count: 2,
            }],
        };
        add_stats(&mut total, &a);
        add_stats(&mut total, &a);
        assert_eq!(total.records, 2);
        assert_eq!(
            total.drops,
            vec![DropCount {
                reason: "x".into(),
                count: 4
            }]
        );
    }
}
