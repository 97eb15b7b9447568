//! The daemon's side of its workers: one slot per worker kind with what
//! it needs to (re)start one (accounts, binary, ring buffer, event sink),
//! routing poll events to the slot they belong to, and acting on what a
//! worker asks (`SlotEvent`): policy on readiness, verdicts to
//! `policy::dns_verdicts` and `policy::tls` (a request only a lying worker sends is a
//! protocol violation: the worker is killed and restarted). The process lifecycle
//! itself is `crate::workers`.

use std::{
    collections::BTreeMap,
    os::fd::{AsFd, OwnedFd},
};

use mio::Token;
use palisade_ipc::messages::{
    FdRole, InterfaceName, InterfaceStatus, PacketCaptureConfig, SupervisorToWorker, WorkerKind,
    WorkerPolicy,
};

use super::{
    Daemon, DaemonError, RunOptions,
    event_logs::{self, SinkError},
};
use crate::{
    capture::PacketSocket,
    ebpf::loader::Loaded,
    policy::{self, dns_verdicts},
    users::WorkerAccount,
    workers::{
        Resources, SlotEvent, WorkerSlot, privdrop::Credentials, spawn::worker_binary, token_owner,
    },
};

/// The worker slots, one per configured worker kind.
pub(super) type Slots = BTreeMap<WorkerKind, WorkerSlot>;
/// What each slot needs to (re)start its worker.
pub(super) type SlotResources = BTreeMap<WorkerKind, Resources>;

/// Workers that receive the user-space policy.
const POLICY_WORKERS: [WorkerKind; 3] = [WorkerKind::Dns, WorkerKind::Flow, WorkerKind::Dhcp];

/// Opens the sink of one worker: our stdout in foreground mode, else
/// `<log_dir>/<kind>.json` (append, root:<log group> 0640, see [`event_logs`]).
fn open_sink(
    opts: &RunOptions,
    kind: WorkerKind,
    log_gid: Option<u32>,
) -> Result<OwnedFd, SinkError> {
    if opts.foreground {
        return event_logs::dup_stdout();
    }
    event_logs::open(&opts.config.log_dir, kind, log_gid)
}

/// The DHCP worker's state file and IEEE registry, and the registry's SHA-256 (none for
/// other workers; no registry without `ieee-data`, which is logged).
type ExtraFds = (Vec<(FdRole, OwnedFd)>, Option<[u8; 32]>);

fn extra_fds(opts: &RunOptions, kind: WorkerKind) -> Result<ExtraFds, DaemonError> {
    if kind != WorkerKind::Dhcp {
        return Ok((Vec::new(), None));
    }
    let mut fds = vec![(
        FdRole::State,
        crate::devices::open_state(&opts.config.state_dir)?,
    )];
    let mut sha256 = None;
    if let Some(r) = crate::devices::registry_fd(&opts.config.ieee_data_dir) {
        fds.push((FdRole::Registry, r.fd));
        sha256 = Some(r.sha256);
    }
    Ok((fds, sha256))
}

/// The names of the interfaces something is attached to, for the workers' `in_iface`.
pub(super) fn attached_names(statuses: &[InterfaceStatus]) -> Vec<InterfaceName> {
    statuses
        .iter()
        .filter(|s| !s.attachments.is_empty())
        .map(|s| InterfaceName {
            ifindex: s.ifindex,
            name: s.name.clone(),
        })
        .collect()
}

/// Where the workers' records come from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Inputs<'a> {
    /// The loaded programs' ring buffers.
    Rings(&'a Loaded),
    /// The AF_PACKET sockets (one per worker).
    Packets(&'a [PacketSocket]),
}

impl Inputs<'_> {
    fn fd(&self, kind: WorkerKind) -> Result<(FdRole, OwnedFd), DaemonError> {
        match self {
            Self::Rings(loaded) => Ok((FdRole::RingBuf, loaded.ring_fd(kind)?)),
            Self::Packets(socks) => {
                let sock =
                    socks
                        .iter()
                        .find(|s| s.worker == kind)
                        .ok_or_else(|| DaemonError::Io {
                            what: format!("no AF_PACKET socket for the {} worker", kind.name()),
                            source: std::io::Error::from(std::io::ErrorKind::NotFound),
                        })?;
                // The slot keeps its own descriptor; the socket stays the daemon's.
                let fd = sock.fd.try_clone().map_err(|source| DaemonError::Io {
                    what: "dup of an AF_PACKET socket".into(),
                    source,
                })?;
                Ok((FdRole::PacketSocket, fd))
            }
        }
    }
}

/// Slots and their resources for every configured worker, with the accounts
/// `users::worker_accounts` resolved (one per worker): ring buffer (or packet socket) and
/// sink open. The slots start on the first tick.
pub(super) fn prepare(
    opts: &RunOptions,
    log_gid: Option<u32>,
    accounts: &BTreeMap<WorkerKind, WorkerAccount>,
    inputs: Inputs<'_>,
    statuses: &[InterfaceStatus],
) -> Result<(Slots, SlotResources), DaemonError> {
    let iface_names = attached_names(statuses);
    let mut slots = BTreeMap::new();
    let mut resources = BTreeMap::new();
    for (kind, settings) in &opts.config.workers {
        let Some(account) = accounts.get(kind) else {
            continue; // not reached: worker_accounts fails unless every worker has one
        };
        let binary = worker_binary(*kind, settings.path.as_deref());
        let creds = Credentials {
            uid: account.user.id,
            gid: account.group.id,
        };
        slots.insert(
            *kind,
            WorkerSlot::new(*kind, binary, creds, settings.heartbeat_ms),
        );
        let (extra, registry_sha256) = extra_fds(opts, *kind)?;
        resources.insert(
            *kind,
            Resources {
                input: inputs.fd(*kind)?,
                sink: open_sink(opts, *kind, log_gid)?,
                interfaces: iface_names.clone(),
                extra,
                registry_sha256,
            },
        );
    }
    Ok((slots, resources))
}

impl Daemon {
    /// Re-reads the IEEE registries (`palisade reload`). When their content changed, the
    /// running DHCP worker gets the new memfd (`SupervisorToWorker::Fds`) and refreshes its
    /// devices' vendors, and later starts get it too; when the files are gone, the worker
    /// keeps what it has (logged).
    pub(super) fn reload_registry(&mut self, dir: &std::path::Path) {
        let Some(resources) = self.resources.get_mut(&WorkerKind::Dhcp) else {
            return;
        };
        let Some(new) = crate::devices::registry_fd(dir) else {
            return;
        };
        if resources.registry_sha256 == Some(new.sha256) {
            tracing::debug!("IEEE registries unchanged");
            return;
        }
        if let Some(slot) = self.slots.get(&WorkerKind::Dhcp) {
            slot.send_with_fds(
                &SupervisorToWorker::Fds(vec![FdRole::Registry]),
                &[new.fd.as_fd()],
            );
        }
        resources
            .extra
            .retain(|(role, _)| *role != FdRole::Registry);
        resources.extra.push((FdRole::Registry, new.fd));
        resources.registry_sha256 = Some(new.sha256);
        tracing::info!("IEEE registries changed: handed to the DHCP worker");
    }

    /// What a worker reading an AF_PACKET socket needs of `[flow]`.
    fn packet_capture(&self) -> PacketCaptureConfig {
        let t = self.opts.config.flow.timeouts();
        PacketCaptureConfig {
            idle_ns: t.idle_ns,
            tcp_idle_ns: t.tcp_idle_ns,
            update_ns: t.update_ns,
            max_flows: u32::try_from(self.opts.config.flow.capacity()).unwrap_or(u32::MAX),
        }
    }

    /// A poll event on a worker's IPC socket (frames to handle) or pidfd
    /// (it exited).
    pub(super) fn on_worker_token(&mut self, registry: &mio::Registry, token: Token) {
        let Some((kind, is_sock)) = token_owner(token) else {
            return;
        };
        if is_sock {
            self.read_worker(registry, kind);
        } else if let Some(slot) = self.slots.get_mut(&kind) {
            slot.on_exit(registry);
        }
    }

    /// Reads a budget of `kind`'s queued frames and acts on them; remembers whether frames
    /// may be left, for the next turn of the loop.
    pub(super) fn read_worker(&mut self, registry: &mio::Registry, kind: WorkerKind) {
        let (Some(slot), Some(res)) = (self.slots.get_mut(&kind), self.resources.get(&kind)) else {
            return;
        };
        let (events, more) = slot.on_readable(registry, res);
        if more {
            self.unread.insert(kind);
        } else {
            self.unread.remove(&kind);
        }
        for e in events {
            self.on_slot_event(registry, kind, e);
        }
    }

    /// Acts on what a worker asked.
    fn on_slot_event(&mut self, registry: &mio::Registry, kind: WorkerKind, event: SlotEvent) {
        if matches!(event, SlotEvent::Ready) && self.loaded.is_none() {
            // AF_PACKET: the record builder's flow settings, before anything else.
            if let Some(slot) = self.slots.get(&kind) {
                slot.send(&SupervisorToWorker::PacketCapture(self.packet_capture()));
            }
        }
        if matches!(event, SlotEvent::Ready)
            && let (Some(slot), Some(res)) = (self.slots.get(&kind), self.resources.get(&kind))
        {
            // Its configuration may predate an interface change (it was configured, then
            // the table changed before it was ready to be told): the table as it is now.
            slot.send(&SupervisorToWorker::Interfaces(res.interfaces.clone()));
        }
        if matches!(event, SlotEvent::Ready)
            && let Some(slot) = self.slots.get(&kind)
            && slot.log_level != palisade_ipc::messages::LogLevel::Info
        {
            slot.send(&palisade_ipc::messages::SupervisorToWorker::SetLogLevel(
                slot.log_level,
            ));
        }
        match event {
            SlotEvent::Ready if POLICY_WORKERS.contains(&kind) => {
                if let Some(slot) = self.slots.get(&kind) {
                    slot.send(&self.policy_message());
                }
            }
            SlotEvent::Ready if kind == WorkerKind::Tls => self.send_tls_policy(),
            SlotEvent::Ready => {}
            SlotEvent::RulesetApplied(hash) if kind == WorkerKind::Tls => {
                self.tls.worker_ruleset = Some(hash);
                if hash != self.tls.ruleset_in_force() {
                    tracing::warn!(worker = kind.name(), applied = %hex::encode(hash), ours = %hex::encode(self.tls.ruleset_in_force()), "worker applies another TLS rule set (drift)");
                }
            }
            SlotEvent::RulesetApplied(hash) => {
                dns_verdicts::ruleset_applied(&mut self.dns, kind, hash);
            }
            SlotEvent::FlowBlockRequest(req) => {
                let loaded = &self.loaded;
                let now = crate::flows::boot_now_ns();
                match self.tls.block_request(
                    crate::ebpf::maps::of(loaded),
                    |key| match loaded {
                        Some(l) => crate::flows::tracks(l, key),
                        None => Err(crate::ebpf::maps::KernelError::Unavailable),
                    },
                    &req,
                    now,
                ) {
                    Ok(_) => tracing::info!(
                        rule = req.rule_id,
                        observed = %req.observed,
                        latency_us = now.saturating_sub(req.hello_ns) / 1000,
                        "TLS rule cut a connection"
                    ),
                    Err(policy::tls::BlockRefusal::NotNow(why)) => {
                        self.tls.refused += 1;
                        tracing::warn!(rule = req.rule_id, "connection not cut: {why}");
                    }
                    Err(policy::tls::BlockRefusal::Unbacked(why)) => {
                        if let Some(slot) = self.slots.get_mut(&kind) {
                            slot.violation(registry, format!("flow block request refused: {why}"));
                        }
                    }
                }
            }
            SlotEvent::CnameCheck { name, targets } => {
                if let Some(msg) = dns_verdicts::cname_check(
                    &mut self.dns,
                    crate::ebpf::maps::of(&self.loaded),
                    &name,
                    &targets,
                ) && let Some(slot) = self.slots.get(&WorkerKind::Dns)
                {
                    slot.send(&msg);
                }
            }
            SlotEvent::BlockRequest { name, rule_id } => {
                if let Some(refusal) = dns_verdicts::block_request(
                    &mut self.dns,
                    crate::ebpf::maps::of(&self.loaded),
                    kind,
                    &name,
                    rule_id,
                ) && let Some(slot) = self.slots.get_mut(&kind)
                {
                    // A claim our rule set does not back, from a worker that applies
                    // it: invariant 3, as for a malformed frame.
                    slot.violation(registry, format!("block request refused: {refusal}"));
                }
            }
        }
    }

    /// The user-space policy in force: the DNS rule set's part, and the flow output
    /// setting that travels with it (so a reload changes it live).
    fn policy_message(&self) -> SupervisorToWorker {
        SupervisorToWorker::Policy(WorkerPolicy {
            flow_start_events: self.opts.config.flow.start_events,
            dhcp_transaction_timeout_s: self.opts.config.dhcp.transaction_timeout_s,
            ..self.dns.worker_policy()
        })
    }

    /// Sends the user-space policy in force to every policy worker (the TLS rules to the
    /// TLS worker).
    pub(super) fn send_policy(&self) {
        let policy = self.policy_message();
        for kind in POLICY_WORKERS {
            if let Some(slot) = self.slots.get(&kind) {
                slot.send(&policy);
            }
        }
        self.send_tls_policy();
    }

    /// Sends the TLS rules in force to the TLS worker.
    pub(super) fn send_tls_policy(&self) {
        if let Some(slot) = self.slots.get(&WorkerKind::Tls) {
            slot.send(&SupervisorToWorker::TlsPolicy(self.tls.worker_policy()));
        }
    }

    /// Reopens every worker's event log (after rotation): opens the file
    /// anew (the directory re-created if it went, both with the log group's
    /// ownership), then restarts the worker gracefully so its successor writes to
    /// the new file. The old worker flushes into the old (renamed) file; the
    /// ring buffer keeps what arrives meanwhile, so nothing is lost. No-op in
    /// `--foreground` mode (stdout).
    pub(super) fn reopen_logs(
        &mut self,
        registry: &mio::Registry,
    ) -> Result<Vec<WorkerKind>, SinkError> {
        if self.opts.foreground {
            return Ok(Vec::new());
        }
        event_logs::prepare_dir(&self.opts.config.log_dir, self.log_gid)?;
        let mut reopened = Vec::new();
        for (kind, res) in &mut self.resources {
            res.sink = open_sink(&self.opts, *kind, self.log_gid)?;
            if let Some(slot) = self.slots.get_mut(kind) {
                slot.stop(registry, true);
            }
            reopened.push(*kind);
        }
        Ok(reopened)
    }

    /// A reload changed `paths.log_group`: the directory and the open event logs get the
    /// new group now (files already rotated keep theirs).
    pub(super) fn set_log_group(&mut self, gid: Option<u32>) -> Result<(), SinkError> {
        self.log_gid = gid;
        if self.opts.foreground {
            return Ok(());
        }
        crate::users::join_groups(gid.as_slice());
        event_logs::prepare_dir(&self.opts.config.log_dir, gid)?;
        for (kind, res) in &self.resources {
            event_logs::set_file_group(res.sink.as_fd(), gid).map_err(|source| {
                SinkError::new(
                    format!(
                        "set group and mode of {}",
                        self.opts
                            .config
                            .log_dir
                            .join(format!("{}.json", kind.name()))
                            .display()
                    ),
                    source,
                )
            })?;
        }
        Ok(())
    }
}
