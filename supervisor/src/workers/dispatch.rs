//! A slot's IPC session: every frame a worker sends is size-capped, decoded
//! with a byte limit and checked against what this worker may send in its
//! current state (a violation kills it); the handshake answer and its
//! configuration (with its FDs) go back, and [`WorkerSlot::send`] carries the
//! daemon's messages.

use std::{
    os::fd::{AsFd, AsRawFd},
    time::Instant,
};

use mio::{Registry, unix::SourceFd};
use palisade_ipc::{
    codec,
    handshake::{Hello, Role},
    messages::{
        FdRole, LogLevel, SupervisorToWorker, WorkerConfig, WorkerState, WorkerToSupervisor,
    },
    transport::{self, Received},
    validation::{WorkerSession, check_worker_message},
};

use super::{
    FRAMES_PER_WAKEUP, LOG_BURST, LOG_RATE, POLL_BACKSTOP_MS, Resources, SlotEvent, WorkerSlot,
};

impl WorkerSlot {
    /// Counts a protocol violation and kills the worker (it is restarted with backoff).
    pub fn violation(&mut self, registry: &Registry, what: String) {
        self.violations += 1;
        tracing::error!(worker = self.kind.name(), violation = %what, "IPC protocol violation");
        self.kill(registry, format!("protocol violation: {what}"));
    }

    /// The IPC socket is readable: handles up to [`FRAMES_PER_WAKEUP`] queued frames; returns
    /// what the daemon must act on, and whether frames may be left (read them on the next
    /// turn: the socket will not signal again for frames already queued).
    pub fn on_readable(
        &mut self,
        registry: &Registry,
        resources: &Resources,
    ) -> (Vec<SlotEvent>, bool) {
        let mut events = Vec::new();
        let more = self.read_frames(registry, resources, &mut events);
        (events, more)
    }

    fn read_frames(
        &mut self,
        registry: &Registry,
        resources: &Resources,
        events: &mut Vec<SlotEvent>,
    ) -> bool {
        for _ in 0..FRAMES_PER_WAKEUP {
            let Some(p) = self.process.as_mut() else {
                return false;
            };
            let Some(sock) = p.sock.as_ref() else {
                return false;
            };
            let received = transport::recv_frame(sock.as_fd(), &mut self.buf);
            let (len, fds) = match received {
                Ok(Received::Frame { len, fds }) => (len, fds),
                Ok(Received::WouldBlock) => return false,
                Ok(Received::Closed) => {
                    // Exit follows through the pidfd; stop reading.
                    if let Some(sock) = p.sock.take() {
                        let _ = registry.deregister(&mut SourceFd(&sock.as_raw_fd()));
                    }
                    return false;
                }
                // The worker died with unread data queued (ECONNRESET) or
                // the socket failed: not an attack; its exit follows.
                Err(transport::TransportError::Recv(errno)) => {
                    tracing::debug!(worker = self.kind.name(), %errno, "IPC socket closed");
                    if let Some(sock) = p.sock.take() {
                        let _ = registry.deregister(&mut SourceFd(&sock.as_raw_fd()));
                    }
                    return false;
                }
                Err(e) => {
                    self.violation(registry, crate::error_chain(&e));
                    return false;
                }
            };
            if !fds.is_empty() {
                self.violation(registry, format!("sent {} file descriptors", fds.len()));
                return false;
            }
            let frame = self.buf.get(..len).unwrap_or_default().to_vec();
            if let Some(event) = self.on_frame(registry, resources, &frame) {
                events.push(event);
            }
        }
        true
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
            WorkerToSupervisor::Log { level, message } => {
                if p.log_budget.take(now).is_none() {
                    self.violation(
                        registry,
                        format!(
                            "Log flood: more than {LOG_BURST} lines at once or {LOG_RATE} a second"
                        ),
                    );
                    return None;
                }
                match level {
                    LogLevel::Error => {
                        tracing::error!(worker = kind.name(), pid = p.pid, "{message}")
                    }
                    LogLevel::Warn => {
                        tracing::warn!(worker = kind.name(), pid = p.pid, "{message}")
                    }
                    LogLevel::Info => {
                        tracing::info!(worker = kind.name(), pid = p.pid, "{message}")
                    }
                }
            }
            WorkerToSupervisor::BlockRequest { name, rule_id } => {
                return Some(SlotEvent::BlockRequest { name, rule_id });
            }
            WorkerToSupervisor::FlowBlockRequest(req) => {
                return Some(SlotEvent::FlowBlockRequest(req));
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
        self.send_with_fds(msg, &[]);
    }

    /// [`WorkerSlot::send`] with FDs (`SupervisorToWorker::Fds`, one per role).
    pub fn send_with_fds(&self, msg: &SupervisorToWorker, fds: &[std::os::fd::BorrowedFd<'_>]) {
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
                transport::send_frame(sock.as_fd(), &f, fds).map_err(|e| crate::error_chain(&e))
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
            fds: [resources.input.0, FdRole::EventSink]
                .into_iter()
                .chain(resources.extra.iter().map(|(role, _)| *role))
                .collect(),
            interfaces: resources.interfaces.clone(),
        });
        let fds: Vec<_> = [resources.input.1.as_fd(), resources.sink.as_fd()]
            .into_iter()
            .chain(resources.extra.iter().map(|(_, fd)| fd.as_fd()))
            .collect();
        let sent = codec::encode(&config)
            .map_err(|e| crate::error_chain(&e))
            .and_then(|frame| {
                transport::send_frame(sock.as_fd(), &frame, &fds)
                    .map_err(|e| crate::error_chain(&e))
            });
        match sent {
            Ok(()) => p.session = WorkerSession::AwaitReady,
            Err(e) => self.kill(registry, format!("sending configuration: {e}")),
        }
    }
}
