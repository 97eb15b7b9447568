//! A slot's process lifecycle: start, stop on request, kill (violations,
//! missed deadlines), reap its exit, and restart with exponential backoff up
//! to the crash-loop limit.

use std::{
    os::fd::{AsFd, AsRawFd},
    time::Instant,
};

use mio::{Interest, Registry, unix::SourceFd};
use nix::{
    sys::wait::{WaitPidFlag, WaitStatus, waitpid},
    unistd::Pid,
};
use palisade_ipc::{
    codec, exit_code,
    messages::{SupervisorToWorker, WorkerState, WorkerStats},
    transport,
    validation::WorkerSession,
};

use super::{
    BACKOFF_MAX, BACKOFF_START, CRASH_LOOP_LIMIT, Process, STABLE_AFTER, STOP_TIMEOUT, WorkerSlot,
    health::add_stats,
    pidfd_token, sock_token,
    spawn::{self, Spawned},
};

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
                    log_budget: crate::ratelimit::TokenBucket::new(
                        super::LOG_RATE,
                        super::LOG_BURST,
                        Instant::now(),
                    ),
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
    pub(super) fn kill(&mut self, registry: &Registry, why: String) {
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
        let delay = BACKOFF_START
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(BACKOFF_MAX);
        if self.failures > CRASH_LOOP_LIMIT {
            // A crash loop never switches monitoring off: the slot shows FAILED (status exit
            // 1, metrics) and keeps retrying at the longest backoff, so a worker that crashes
            // on some traffic comes back by itself once that traffic stops.
            tracing::error!(
                worker = self.kind.name(),
                failures = self.failures,
                retry_in = ?delay,
                "crash loop: worker marked FAILED, retrying every {BACKOFF_MAX:?}; `palisade restart {}` retries now",
                self.kind.name()
            );
            self.state = WorkerState::Failed;
        } else {
            self.state = WorkerState::Backoff;
        }
        self.restart_at = Some(Instant::now() + delay);
        self.restarts += 1;
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
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "a panic is a test failure")]
mod tests {
    use std::time::Duration;

    use palisade_ipc::messages::WorkerKind;

    use super::*;
    use crate::workers::{BACKOFF_MAX, CRASH_LOOP_LIMIT, privdrop::Credentials};

    #[test]
    fn a_crash_loop_is_marked_failed_and_still_retried() {
        let creds = Credentials {
            uid: 65534,
            gid: 65534,
        };
        let mut slot = WorkerSlot::new(WorkerKind::Dns, "/nonexistent".into(), creds, 250);
        let mut delays = Vec::new();
        for _ in 0..CRASH_LOOP_LIMIT + 3 {
            let before = Instant::now();
            slot.schedule_restart();
            let at = slot.restart_at.expect("a retry is always scheduled");
            delays.push(at.saturating_duration_since(before));
        }
        assert_eq!(
            slot.state,
            WorkerState::Failed,
            "marked failed after the limit"
        );
        // Exponential up to the cap, then the cap for ever.
        assert!(delays[0] < Duration::from_millis(150), "{delays:?}");
        assert!(delays[3] >= Duration::from_millis(800), "{delays:?}");
        for d in &delays[CRASH_LOOP_LIMIT as usize + 1..] {
            assert!(
                *d >= BACKOFF_MAX && *d <= BACKOFF_MAX + Duration::from_millis(50),
                "{delays:?}"
            );
        }
        assert_eq!(slot.restarts, CRASH_LOOP_LIMIT + 3);
    }
}
