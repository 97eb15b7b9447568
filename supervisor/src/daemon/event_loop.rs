//! The event loop: one mio poll over the signals, the control socket, every
//! control client, every worker's IPC socket and pidfd, and the rtnetlink link
//! monitor. Each turn first handles what is readable, then runs the timers
//! (worker deadlines and restarts, control client timeouts, expiry of IP rules
//! and learned DNS names, the debounced network reconciliation, the packet trace's
//! collection), so a message
//! that arrived counts before a deadline does. SIGHUP reloads and reopens the
//! logs; SIGTERM/SIGINT stop the workers and end the loop once they are down
//! (or after a grace period).

use std::{
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use mio::{Events, Interest, Poll, Token, unix::SourceFd};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use super::{Daemon, DaemonError, io_err, notify::Notifier};
use crate::{control::server::Server, policy::dns_verdicts, workers::WorkerSlot};

const CONTROL: Token = Token(1);
const SIGNALS: Token = Token(2);
const NETLINK: Token = Token(3);
const CONTROL_TCP: Token = Token(4);
/// Longest the loop sleeps without a deadline.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// Longest shutdown waits for workers before killing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Longest `--detach-on-exit` spends ending open flows (a batch of 4,096 per 50 ms: about
/// 400k flows); the rest are counted and logged.
const FLOW_END_BUDGET: Duration = Duration::from_secs(5);

impl Daemon {
    /// Runs until SIGTERM/SIGINT and the workers stopped.
    pub(super) fn event_loop(
        &mut self,
        control: &mut Server,
        notifier: &mut Notifier,
    ) -> Result<(), DaemonError> {
        let mut poll = Poll::new().map_err(io_err("epoll_create"))?;
        let mut signals =
            Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(io_err("signal handlers"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(io_err("epoll_ctl"))?;
        let control_raw = control.fd().as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&control_raw), CONTROL, Interest::READABLE)
            .map_err(io_err("epoll_ctl"))?;
        if let Some(tcp_raw) = control.tcp_fd() {
            poll.registry()
                .register(&mut SourceFd(&tcp_raw), CONTROL_TCP, Interest::READABLE)
                .map_err(io_err("epoll_ctl"))?;
        }
        let netlink_raw = self.network.raw_fd();
        poll.registry()
            .register(&mut SourceFd(&netlink_raw), NETLINK, Interest::READABLE)
            .map_err(io_err("epoll_ctl"))?;
        let mut events = Events::with_capacity(64);
        let mut shutdown_deadline: Option<Instant> = None;

        loop {
            let now = Instant::now();
            let next = self
                .slots
                .values()
                .filter_map(WorkerSlot::next_deadline)
                .chain(self.network.deadline())
                .min();
            let timeout = if self.unread.is_empty() {
                next.map_or(IDLE_TICK, |d| {
                    d.saturating_duration_since(now).min(IDLE_TICK)
                })
            } else {
                Duration::ZERO
            };
            if let Err(e) = poll.poll(&mut events, Some(timeout))
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                return Err(DaemonError::Io {
                    what: "epoll_wait".into(),
                    source: e,
                });
            }
            let turn = Instant::now();
            for event in &events {
                match event.token() {
                    SIGNALS => {
                        for sig in signals.pending() {
                            if sig == SIGHUP {
                                self.on_sighup(poll.registry());
                                continue;
                            }
                            if shutdown_deadline.is_none() {
                                notifier.stopping();
                                if self.opts.detach_on_exit {
                                    self.detach_and_end_flows();
                                }
                                tracing::info!(signal = sig, "stopping workers");
                                shutdown_deadline = Some(Instant::now() + SHUTDOWN_GRACE);
                                for slot in self.slots.values_mut() {
                                    slot.stop(poll.registry(), false);
                                }
                            }
                        }
                    }
                    CONTROL => control.accept_all(poll.registry()),
                    CONTROL_TCP => control.accept_tcp(poll.registry()),
                    NETLINK => self.network.on_readable(turn),
                    token if Server::owns(token) => {
                        let registry = poll.registry();
                        control.on_ready(registry, token, |req| self.handle(registry, req));
                    }
                    token => {
                        self.on_worker_token(poll.registry(), token);
                    }
                }
            }
            // A long turn (a large reload, a slow request): every worker may have frames
            // queued that this poll did not report; read them before any deadline counts.
            if turn.elapsed() >= IDLE_TICK {
                self.unread.extend(self.slots.keys().copied());
            }
            // Frames a worker sent beyond one read's budget, queued since.
            for kind in std::mem::take(&mut self.unread) {
                self.read_worker(poll.registry(), kind);
            }
            // Timers run after what was readable, so heartbeats that queued up while the loop
            // was busy (a large reload, a burst of requests) count before any deadline does.
            let now = Instant::now();
            for slot in self.slots.values_mut() {
                slot.tick(poll.registry(), now);
            }
            control.expire(poll.registry(), now);
            if shutdown_deadline.is_none() {
                // Interfaces that appeared, went or were renamed (not while stopping: the
                // links are being let go), then drift.
                self.reconcile_network(now);
                self.drift_tick(poll.registry(), now);
            }
            self.ip.expire(crate::ebpf::maps::of(&self.loaded));
            dns_verdicts::expire_learned(&mut self.dns, crate::ebpf::maps::of(&self.loaded), now);
            self.tls.expire(crate::ebpf::maps::of(&self.loaded), now);
            let names = crate::trace::Names {
                interfaces: &self.interfaces,
                dns: &self.dns,
                tls: &self.tls.rules,
            };
            if self.trace.tick(self.loaded.as_ref(), &names, now) {
                self.trace_written();
            }
            // systemd: ready once every worker runs (programs are attached before the loop
            // starts); the watchdog is pinged from here, so a wedged loop gets restarted.
            notifier.tick(now);
            if shutdown_deadline.is_none()
                && !notifier.is_ready()
                && self.slots.values().all(WorkerSlot::is_running)
            {
                notifier.ready(&self.summary());
            }
            if let Some(deadline) = shutdown_deadline
                && (self.slots.values().all(WorkerSlot::is_down) || now >= deadline)
            {
                break;
            }
        }
        self.shut_down();
        Ok(())
    }

    /// One line for `systemctl status`: what is attached and running.
    fn summary(&self) -> String {
        let attached: Vec<&str> = self
            .interfaces
            .iter()
            .filter(|i| !i.attachments.is_empty())
            .map(|i| i.name.as_str())
            .collect();
        format!(
            "attached to {} interface(s) ({}), {} workers running",
            attached.len(),
            attached.join(", "),
            self.slots.values().filter(|s| s.is_running()).count()
        )
    }

    /// SIGHUP: reload, then reopen the event logs (logrotate's signal).
    fn on_sighup(&mut self, registry: &mio::Registry) {
        match self.reload() {
            Ok(r) => {
                tracing::info!(report = ?r, "SIGHUP: configuration reloaded")
            }
            Err(e) => tracing::error!(
                "SIGHUP: reload refused, the running configuration stays in force: {}",
                crate::error_chain(&e)
            ),
        }
        match self.reopen_logs(registry) {
            Ok(kinds) if !kinds.is_empty() => {
                tracing::info!(?kinds, "SIGHUP: event logs reopened")
            }
            Ok(_) => {}
            Err(e) => tracing::error!("SIGHUP: reopening event logs: {}", crate::error_chain(&e)),
        }
    }

    /// `--detach-on-exit`, before the workers stop: detaches every program (no packet
    /// touches the table after this), then ends every open flow with its end record (reason
    /// shutdown), which the still running flow worker writes, so that nothing vanishes with
    /// the table without a record or a counter.
    fn detach_and_end_flows(&mut self) {
        let Some(loaded) = &self.loaded else {
            return; // AF_PACKET: the flow worker ends its own flows when it stops
        };
        std::mem::take(&mut self.links).detach_all();
        // clsact filters are not links: removed by name.
        for iface in &self.interfaces {
            for a in iface.attachments.iter().filter(|a| a.mode == "clsact") {
                if let Err(e) = crate::ebpf::clsact::remove_ours(
                    &iface.name,
                    iface.ifindex,
                    a.direction == "ingress",
                    &a.program,
                ) {
                    tracing::error!(interface = %iface.name, direction = %a.direction, error = %e, "removing a clsact filter");
                }
            }
        }
        tracing::info!("programs detached (--detach-on-exit)");
        let deadline = Instant::now() + FLOW_END_BUDGET;
        match crate::flows::end_all(loaded, deadline) {
            Ok(ended) => {
                let left = crate::flows::live(loaded);
                if ended.records_lost > 0 || left > 0 {
                    tracing::warn!(
                        flows = ended.flows,
                        records_lost = ended.records_lost,
                        left_without_record = left,
                        "open flows ended at shutdown, some without a record (counted)"
                    );
                } else {
                    tracing::info!(
                        flows = ended.flows,
                        "open flows ended with their end record (reason shutdown)"
                    );
                }
            }
            Err(e) => tracing::error!(
                error = %crate::error_chain(&e),
                open_flows = crate::flows::live(loaded),
                "ending the open flows failed: they go without an end record"
            ),
        }
    }

    /// After the loop: says which workers outlive the grace period, and
    /// detaches if asked to (else the pinned programs keep enforcing).
    fn shut_down(&mut self) {
        // Anything still alive after the grace period is killed by SIGKILL
        // through PDEATHSIG when we exit; say so.
        for slot in self.slots.values() {
            if let Some(pid) = slot.pid() {
                tracing::warn!(
                    worker = slot.kind.name(),
                    pid,
                    "worker did not stop in time; it dies with the supervisor"
                );
            }
        }
        let Some(pins) = &self.pins else {
            return; // AF_PACKET: nothing in the kernel outlives us
        };
        if self.opts.detach_on_exit {
            match crate::ebpf::pin::remove_all(&pins.root) {
                Ok(_) => {
                    tracing::info!(pins = %pins.root.display(), "pins removed (--detach-on-exit)")
                }
                Err(e) => tracing::error!(error = %crate::error_chain(&e), "removing pins"),
            }
        } else {
            tracing::info!(pins = %pins.dir.display(), "programs stay attached (pinned); `palisade cleanup` removes them");
        }
    }
}
