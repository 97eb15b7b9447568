//! The daemon's side of its workers: one slot per worker kind with what
//! it needs to (re)start one (accounts, binary, ring buffer, event sink),
//! routing poll events to the slot they belong to, and acting on what a
//! worker asks (`SlotEvent`): policy on readiness, verdicts to
//! `policy::dns_verdicts` (a request only a lying worker sends is a protocol
//! violation: the worker is killed and restarted). The process lifecycle
//! itself is `crate::workers`.

use std::{
    collections::BTreeMap,
    os::fd::{AsFd, OwnedFd},
};

use mio::Token;
use palisade_ipc::messages::{
    InterfaceName, InterfaceStatus, SupervisorToWorker, WorkerKind, WorkerPolicy,
};

use super::{Daemon, DaemonError, RunOptions};
use crate::{
    ebpf::loader::Loaded,
    policy::dns_verdicts,
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
const POLICY_WORKERS: [WorkerKind; 2] = [WorkerKind::Dns, WorkerKind::Flow];

/// An event log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct SinkError {
    what: String,
    #[source]
    source: std::io::Error,
}

fn sink_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SinkError {
    let what = what.into();
    move |source| SinkError { what, source }
}

/// Opens the sink of one worker: our stdout in foreground mode, else
/// `<log_dir>/<kind>.json` (append, 0640).
fn open_sink(opts: &RunOptions, kind: WorkerKind) -> Result<OwnedFd, SinkError> {
    if opts.foreground {
        return std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(sink_err("dup stdout"));
    }
    use std::os::unix::fs::OpenOptionsExt;
    let dir = &opts.config.log_dir;
    std::fs::create_dir_all(dir).map_err(sink_err(format!("mkdir {}", dir.display())))?;
    let path = dir.join(format!("{}.json", kind.name()));
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(crate::paths::LOG_FILE_MODE)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(sink_err(format!("open {}", path.display())))?;
    Ok(file.into())
}

/// Slots and their resources for every configured worker, with the accounts
/// `users::worker_accounts` resolved (one per worker): ring buffer and sink open. The slots
/// start on the first tick.
pub(super) fn prepare(
    opts: &RunOptions,
    accounts: &BTreeMap<WorkerKind, WorkerAccount>,
    loaded: &Loaded,
    statuses: &[InterfaceStatus],
) -> Result<(Slots, SlotResources), DaemonError> {
    let iface_names: Vec<InterfaceName> = statuses
        .iter()
        .filter(|s| !s.attachments.is_empty())
        .map(|s| InterfaceName {
            ifindex: s.ifindex,
            name: s.name.clone(),
        })
        .collect();
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
        resources.insert(
            *kind,
            Resources {
                ring: loaded.ring_fd(*kind)?,
                sink: open_sink(opts, *kind)?,
                interfaces: iface_names.clone(),
            },
        );
    }
    Ok((slots, resources))
}

impl Daemon {
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
        match event {
            SlotEvent::Ready if POLICY_WORKERS.contains(&kind) => {
                if let Some(slot) = self.slots.get(&kind) {
                    slot.send(&self.policy_message());
                }
            }
            SlotEvent::Ready => {}
            SlotEvent::RulesetApplied(hash) => {
                dns_verdicts::ruleset_applied(&mut self.dns, kind, hash);
            }
            SlotEvent::CnameCheck { name, targets } => {
                if let Some(msg) =
                    dns_verdicts::cname_check(&mut self.dns, &self.loaded, &name, &targets)
                    && let Some(slot) = self.slots.get(&WorkerKind::Dns)
                {
                    slot.send(&msg);
                }
            }
            SlotEvent::BlockRequest { name, rule_id } => {
                if let Some(refusal) =
                    dns_verdicts::block_request(&mut self.dns, &self.loaded, kind, &name, rule_id)
                    && let Some(slot) = self.slots.get_mut(&kind)
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
            ..self.dns.worker_policy()
        })
    }

    /// Sends the user-space policy in force to every policy worker.
    pub(super) fn send_policy(&self) {
        let policy = self.policy_message();
        for kind in POLICY_WORKERS {
            if let Some(slot) = self.slots.get(&kind) {
                slot.send(&policy);
            }
        }
    }

    /// Reopens every worker's event log (after rotation): opens the file
    /// anew, then restarts the worker gracefully so its successor writes to
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
        let mut reopened = Vec::new();
        for (kind, res) in &mut self.resources {
            res.sink = open_sink(&self.opts, *kind)?;
            if let Some(slot) = self.slots.get_mut(kind) {
                slot.stop(registry, true);
            }
            reopened.push(*kind);
        }
        Ok(reopened)
    }
}
