//! Worker supervision: one [`WorkerSlot`] per worker kind, holding the
//! current process (if any), its IPC session and its history.
//!
//! - here: the slot, its process, the poll tokens and the timing constants;
//! - [`lifecycle`]: start, stop, kill, reap, restart with backoff and the crash-loop limit;
//! - [`dispatch`]: the IPC session: handshake, configuration, every message a
//!   worker sends (checked against what it may send now) and what we send it;
//! - [`health`]: deadlines (readiness, heartbeats, stop), and the `status` view;
//! - [`spawn`] and [`privdrop`]: fork, drop privileges, exec.
//!
//! What a worker asks of the daemon (a verdict to write, its rules to send)
//! leaves the slot as a [`SlotEvent`]; the daemon acts on it
//! (`daemon::workers`). A new message from workers is a `WorkerToSupervisor`
//! variant (ipc-protocol), its arm in `dispatch::on_frame`, and, if the daemon
//! acts on it, a [`SlotEvent`] variant.

mod dispatch;
mod health;
mod lifecycle;
pub mod privdrop;
pub mod spawn;

use std::{
    os::fd::OwnedFd,
    path::PathBuf,
    time::{Duration, Instant},
};

use mio::Token;
use palisade_ipc::{
    MAX_FRAME,
    messages::{FdRole, InterfaceName, WorkerKind, WorkerState, WorkerStats},
    validation::WorkerSession,
};

use self::privdrop::Credentials;

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
/// Consecutive failures after which the worker is marked failed (and retried every
/// [`BACKOFF_MAX`] from then on).
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
    /// The TLS worker asks to cut a connection whose hello matched a blocking rule
    /// (validated for bounds only).
    FlowBlockRequest(palisade_ipc::messages::FlowBlockRequest),
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
    /// Where records come from: the read-write ring buffer FD ([`FdRole::RingBuf`]) or
    /// the AF_PACKET socket ([`FdRole::PacketSocket`]), passed (dup'ed) at every start.
    pub input: (FdRole, OwnedFd),
    /// Event sink FD (dup'ed per start).
    pub sink: OwnedFd,
    /// Attached interfaces, for `in_iface`.
    pub interfaces: Vec<InterfaceName>,
    /// Protocol-specific FDs (the DHCP worker's state file and IEEE registry memfd).
    pub extra: Vec<(FdRole, OwnedFd)>,
    /// SHA-256 of the IEEE registry in `extra` (a reload hands over a changed one).
    pub registry_sha256: Option<[u8; 32]>,
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
    /// `Log` frames it may send ([`LOG_RATE`] a second, [`LOG_BURST`] at once); a worker
    /// beyond that floods the supervisor's log: a violation.
    log_budget: crate::ratelimit::TokenBucket,
}

/// Sustained `Log` frames a second a worker may send (workers log rarely: start-up problems,
/// configuration they cannot apply).
pub const LOG_RATE: u32 = 20;
/// `Log` frames a worker may send at once.
pub const LOG_BURST: u32 = 200;
/// Frames read from one worker per wake-up: a worker that floods valid messages cannot hold
/// the event loop (the rest is read on the next turn, without waiting).
pub const FRAMES_PER_WAKEUP: usize = 256;

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
    /// `palisade log-level LEVEL --worker W`: sent to every process of this slot once it
    /// is ready (a restarted worker keeps it), until the daemon stops.
    pub log_level: palisade_ipc::messages::LogLevel,
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
            log_level: palisade_ipc::messages::LogLevel::Info,
        }
    }

    /// Pid of the current process.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// True once the worker finished its handshake and heartbeats.
    pub fn is_running(&self) -> bool {
        self.state == WorkerState::Running
    }

    /// True when no process exists and none is scheduled.
    pub fn is_down(&self) -> bool {
        self.process.is_none()
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
}
