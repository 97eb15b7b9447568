//! `palisade run`: the supervisor's event loop.
//!
//! Single-threaded (workers are forked from it, see `workers::privdrop`):
//! one mio poll over the control socket, signals, and each worker's IPC
//! socket and pidfd; timers for heartbeats and restarts.

use std::{
    collections::BTreeMap,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    time::{Duration, Instant},
};

use mio::{Events, Interest, Poll, Token, unix::SourceFd};
use palisade_ipc::{
    PROTOCOL_VERSION,
    messages::{
        ControlErrorKind, ControlRequest, ControlResponse, FlowOrder, InterfaceName,
        InterfaceStatus, ReloadReport, RestartTarget, RuleHits, StatusReport, VersionInfo,
        WorkerKind,
    },
};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

pub use self::options::{RunOptions, RunOverrides};
use crate::{
    config::Config,
    control::server::Server,
    ebpf::{attach::Links, counters, loader::Loaded, pin::PinTree},
    interfaces,
    policy::{
        dns::RuleSet,
        dns_kernel,
        dns_state::{DnsState, describe},
        dns_verdicts,
        ip::{IpRuleSet, IpState, unix_now},
        ip_block::{self, IpPolicy},
        ip_kernel,
    },
    workers::{
        Resources, SlotEvent, WorkerSlot, privdrop::Credentials, spawn::worker_binary, token_owner,
    },
};

mod options;

const CONTROL: Token = Token(1);
/// Workers that receive the user-space policy.
const POLICY_WORKERS: [WorkerKind; 2] = [WorkerKind::Dns, WorkerKind::Flow];
const SIGNALS: Token = Token(2);
/// Longest the loop sleeps without a deadline.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// Longest shutdown waits for workers before killing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Start-up errors (after start-up the daemon logs and carries on).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Not root.
    #[error(
        "palisade run must be started as root (it loads eBPF and drops privileges for its workers)"
    )]
    NotRoot,
    /// Pin tree.
    #[error(transparent)]
    Pin(#[from] crate::ebpf::pin::PinError),
    /// Loading.
    #[error(transparent)]
    Load(#[from] crate::ebpf::loader::LoadError),
    /// Interfaces.
    #[error(transparent)]
    Interfaces(#[from] interfaces::InterfaceError),
    /// No interface could be attached.
    #[error("attaching failed on every interface: {0}")]
    NothingAttached(String),
    /// Worker accounts.
    #[error("worker {worker}: {source}")]
    User {
        worker: &'static str,
        #[source]
        source: crate::users::UserError,
    },
    /// Control socket.
    #[error(transparent)]
    Control(#[from] crate::control::server::ServerError),
    /// DNS lists.
    #[error(transparent)]
    DnsRules(#[from] crate::policy::dns::RuleSetError),
    /// Writing the DNS or IP policy maps.
    #[error(transparent)]
    Kernel(#[from] crate::ebpf::maps::KernelError),
    /// Configuring the flow table (sweeper).
    #[error("flow table")]
    Flow(#[source] crate::ebpf::maps::KernelError),
    /// IP lists.
    #[error(transparent)]
    IpRules(#[from] crate::policy::ip_lists::IpListError),
    /// The runtime IP rule file.
    #[error(transparent)]
    IpState(#[from] crate::policy::ip::StateError),
    /// Opening an event log or epoll.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

struct Daemon {
    opts: RunOptions,
    pins: PinTree,
    loaded: Loaded,
    links: Links,
    interfaces: Vec<InterfaceStatus>,
    slots: BTreeMap<WorkerKind, WorkerSlot>,
    resources: BTreeMap<WorkerKind, Resources>,
    started: Instant,
    dns: DnsState,
    dns_kernel_rules: u32,
    /// What conntrack seeding did at start (shown by `status`).
    conntrack_seed: String,
    ip: IpPolicy,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// Opens the sink of one worker: our stdout in foreground mode, else
/// `<log_dir>/<kind>.json` (append, 0640).
fn open_sink(opts: &RunOptions, kind: WorkerKind) -> Result<OwnedFd, DaemonError> {
    if opts.foreground {
        return std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(io_err("dup stdout"));
    }
    use std::os::unix::fs::OpenOptionsExt;
    let dir = &opts.config.log_dir;
    std::fs::create_dir_all(dir).map_err(io_err(format!("mkdir {}", dir.display())))?;
    let path = dir.join(format!("{}.json", kind.name()));
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(crate::paths::LOG_FILE_MODE)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(io_err(format!("open {}", path.display())))?;
    Ok(file.into())
}

/// Runs the daemon until SIGTERM/SIGINT. Returns after workers stopped.
pub fn run(opts: RunOptions) -> Result<(), DaemonError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DaemonError::NotRoot);
    }
    let started = Instant::now();
    let cfg = &opts.config;

    // Kernel side first: pins, load, attach.
    crate::ebpf::pin::ensure_bpffs(&cfg.pin_root)?;
    let pins = PinTree::open(&cfg.pin_root)?;
    let mut loaded = Loaded::load(&pins)?;
    // Policy before traffic is attached: validated lists, swapped in whole.
    let rules = RuleSet::load(&cfg.dns.lists)?;
    let dns_kernel_rules = dns_kernel::apply(&loaded, &rules, cfg.dns.block_action)?;
    dns_kernel::clear_learned(&loaded)?;
    tracing::info!(
        names = dns_kernel_rules,
        regexes = rules.regexes().len(),
        duplicates = rules.duplicates,
        sha256 = %hex::encode(rules.sha256()),
        "DNS policy loaded"
    );
    let dns = DnsState::new(rules, cfg.dns.block_action);
    let ip_started = Instant::now();
    let mut ip = IpState::open(IpRuleSet::load(&cfg.ip.blocklists)?, &cfg.state_dir)?;
    if !ip.expire(unix_now()).is_empty() {
        ip.save()?;
    }
    let ip_kernel = ip_kernel::apply(&loaded, &ip, cfg.ip.alerts_per_second)?;
    tracing::info!(
        list_rules = ip.lists.rules.len(),
        runtime_rules = ip.runtime.len(),
        kernel_v4 = ip_kernel.v4,
        kernel_v6 = ip_kernel.v6,
        duplicates = ip.lists.duplicates,
        host_bits_cleared = ip.lists.normalised,
        sha256 = %hex::encode(ip.lists.sha256()),
        xdp_mode = cfg.ip.xdp_mode.name(),
        elapsed_ms = ip_started.elapsed().as_millis() as u64,
        "IP policy loaded"
    );
    release_memory();
    // Seeding goes in before traffic is attached, so that the first packets of old
    // connections find their real client and server; then the kernel sweeper is armed (its
    // first walk, at once, announces the seeded flows).
    // A table that survived in its pins (a restart) is already right: seeding it again would
    // bring back, as new flows, connections it ended by its idle timeout.
    let conntrack_seed = if !cfg.flow.seed_from_conntrack {
        "off ([flow] seed_from_conntrack = false)".to_owned()
    } else if crate::flows::table_survived(&loaded) {
        "not needed: the pinned flow table survived the restart".to_owned()
    } else {
        crate::flows::seed_from_conntrack(&loaded)
    };
    crate::flows::configure(&loaded, &cfg.flow).map_err(DaemonError::Flow)?;
    let names = if cfg.interfaces.is_empty() {
        interfaces::default_interfaces()?
    } else {
        cfg.interfaces.clone()
    };
    let ifaces = interfaces::resolve(&names)?;
    let mut links = Links::default();
    let statuses: Vec<InterfaceStatus> = ifaces
        .iter()
        .map(|i| {
            let mut status = links.attach_interface(&mut loaded, &pins, &i.name, i.index);
            let (ip_hooks, error) =
                links.attach_ip_policy(&mut loaded, &pins, &i.name, i.index, cfg.ip.xdp_mode);
            status.attachments.extend(ip_hooks);
            if let Some(e) = error {
                status.error = Some(status.error.map_or(e.clone(), |old| format!("{old}; {e}")));
            }
            status
        })
        .collect();
    if statuses.iter().all(|s| s.attachments.is_empty()) {
        let errors: Vec<String> = statuses.iter().filter_map(|s| s.error.clone()).collect();
        return Err(DaemonError::NothingAttached(errors.join("; ")));
    }
    for old in pins.remove_other_versions() {
        tracing::info!(pins = %old.display(), "removed pins of another ABI version");
    }
    tracing::info!(
        interfaces = ?statuses.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        pins = %pins.dir.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "programs attached"
    );

    // Workers: accounts, FDs, slots.
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
    for (kind, settings) in &cfg.workers {
        let user =
            crate::users::resolve_user(&settings.user).map_err(|source| DaemonError::User {
                worker: kind.name(),
                source,
            })?;
        let group =
            crate::users::resolve_group(&settings.group).map_err(|source| DaemonError::User {
                worker: kind.name(),
                source,
            })?;
        if user.fallback || group.fallback {
            tracing::warn!(worker = kind.name(), user = %user.name, group = %group.name, "configured worker account missing; using the fallback (create palisade-{} for isolation between workers)", kind.name());
        }
        let binary = worker_binary(*kind, settings.path.as_deref());
        let creds = Credentials {
            uid: user.id,
            gid: group.id,
        };
        slots.insert(
            *kind,
            WorkerSlot::new(*kind, binary, creds, settings.heartbeat_ms),
        );
        resources.insert(
            *kind,
            Resources {
                ring: loaded.ring_fd(*kind)?,
                sink: open_sink(&opts, *kind)?,
                interfaces: iface_names.clone(),
            },
        );
    }

    let control = Server::bind(&cfg.control_socket, &cfg.control_group)?;
    let mut daemon = Daemon {
        opts,
        pins,
        loaded,
        links,
        interfaces: statuses,
        slots,
        resources,
        started,
        dns,
        dns_kernel_rules,
        conntrack_seed,
        ip: IpPolicy {
            state: ip,
            kernel: ip_kernel,
        },
    };
    daemon.event_loop(&control)
}

impl Daemon {
    fn event_loop(&mut self, control: &Server) -> Result<(), DaemonError> {
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
        let mut events = Events::with_capacity(64);
        let mut shutdown_deadline: Option<Instant> = None;

        loop {
            let now = Instant::now();
            for slot in self.slots.values_mut() {
                slot.tick(poll.registry(), now);
            }
            self.ip.expire(&self.loaded);
            dns_verdicts::expire_learned(&mut self.dns, &self.loaded, now);
            if let Some(deadline) = shutdown_deadline
                && (self.slots.values().all(WorkerSlot::is_down) || now >= deadline)
            {
                break;
            }
            let next = self
                .slots
                .values()
                .filter_map(WorkerSlot::next_deadline)
                .min();
            let timeout = next.map_or(IDLE_TICK, |d| {
                d.saturating_duration_since(now).min(IDLE_TICK)
            });
            if let Err(e) = poll.poll(&mut events, Some(timeout))
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                return Err(DaemonError::Io {
                    what: "epoll_wait".into(),
                    source: e,
                });
            }
            for event in &events {
                match event.token() {
                    SIGNALS => {
                        for sig in signals.pending() {
                            if sig == SIGHUP {
                                match self.reload(poll.registry()) {
                                    Ok(r) => {
                                        tracing::info!(report = ?r, "SIGHUP: configuration reloaded")
                                    }
                                    Err(e) => tracing::error!(
                                        "SIGHUP: reload refused, the running configuration stays in force: {e}"
                                    ),
                                }
                                match self.reopen_logs(poll.registry()) {
                                    Ok(kinds) if !kinds.is_empty() => {
                                        tracing::info!(?kinds, "SIGHUP: event logs reopened")
                                    }
                                    Ok(_) => {}
                                    Err(e) => tracing::error!("SIGHUP: reopening event logs: {e}"),
                                }
                                continue;
                            }
                            if shutdown_deadline.is_none() {
                                tracing::info!(signal = sig, "stopping workers");
                                shutdown_deadline = Some(Instant::now() + SHUTDOWN_GRACE);
                                for slot in self.slots.values_mut() {
                                    slot.stop(poll.registry(), false);
                                }
                            }
                        }
                    }
                    CONTROL => {
                        let registry = poll.registry();
                        control.accept_all(|req| self.handle(registry, req));
                    }
                    token => {
                        let Some((kind, is_sock)) = token_owner(token) else {
                            continue;
                        };
                        let (Some(slot), Some(res)) =
                            (self.slots.get_mut(&kind), self.resources.get(&kind))
                        else {
                            continue;
                        };
                        if is_sock {
                            let events = slot.on_readable(poll.registry(), res);
                            for e in events {
                                self.on_slot_event(poll.registry(), kind, e);
                            }
                        } else {
                            slot.on_exit(poll.registry());
                        }
                    }
                }
            }
        }
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
        if self.opts.detach_on_exit {
            std::mem::take(&mut self.links).detach_all();
            match crate::ebpf::pin::remove_all(&self.pins.root) {
                Ok(_) => {
                    tracing::info!(pins = %self.pins.root.display(), "pins removed (--detach-on-exit)")
                }
                Err(e) => tracing::error!(error = %crate::error_chain(&e), "removing pins"),
            }
        } else {
            tracing::info!(pins = %self.pins.dir.display(), "programs stay attached (pinned); `palisade cleanup` removes them");
        }
        Ok(())
    }

    fn on_slot_event(&mut self, registry: &mio::Registry, kind: WorkerKind, event: SlotEvent) {
        match event {
            SlotEvent::Ready if POLICY_WORKERS.contains(&kind) => {
                if let Some(slot) = self.slots.get(&kind) {
                    slot.send(&self.dns.worker_message());
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

    /// Re-reads the configuration and lists; applies them only when all of
    /// it is valid. Settings that cannot change live are reported.
    fn reload(&mut self, _registry: &mio::Registry) -> Result<ReloadReport, String> {
        let mut config =
            Config::load(self.opts.config_path.as_deref()).map_err(|e| crate::error_chain(&e))?;
        self.opts.flags.apply(&mut config);
        // Everything is validated before anything is applied.
        let ip_lists =
            IpRuleSet::load(&config.ip.blocklists).map_err(|e| crate::error_chain(&e))?;
        let rules = RuleSet::load(&config.dns.lists).map_err(|e| crate::error_chain(&e))?;
        let kernel_rules = dns_kernel::apply(&self.loaded, &rules, config.dns.block_action)
            .map_err(|e| crate::error_chain(&e))?;
        // Learned names came from the previous regexes: start afresh.
        dns_kernel::clear_learned(&self.loaded).map_err(|e| crate::error_chain(&e))?;
        self.dns = DnsState::new(rules, config.dns.block_action);
        self.dns_kernel_rules = kernel_rules;
        release_memory();
        let policy = self.dns.worker_message();
        for kind in POLICY_WORKERS {
            if let Some(slot) = self.slots.get(&kind) {
                slot.send(&policy);
            }
        }
        let old = &self.opts.config;
        let mut restart_needed = Vec::new();
        for (changed, key) in [
            (old.interfaces != config.interfaces, "interfaces"),
            (
                old.control_socket != config.control_socket,
                "paths.control_socket",
            ),
            (old.pin_root != config.pin_root, "paths.pin_root"),
            (old.state_dir != config.state_dir, "paths.state_dir"),
            (old.log_dir != config.log_dir, "paths.log_dir"),
            (old.control_group != config.control_group, "control.group"),
            (old.workers != config.workers, "workers"),
        ] {
            if changed {
                restart_needed.push(key.to_owned());
            }
        }
        if config.flow != self.opts.config.flow {
            crate::flows::configure(&self.loaded, &config.flow)
                .map_err(|e| format!("flow table: {}", crate::error_chain(&e)))?;
            if config.flow.seed_from_conntrack != self.opts.config.flow.seed_from_conntrack {
                restart_needed.push("flow.seed_from_conntrack".to_owned());
            }
        }
        if !restart_needed.is_empty() {
            tracing::warn!(
                ?restart_needed,
                "reloaded; these settings take effect after a restart"
            );
        }
        self.opts.config.dns = config.dns;
        self.opts.config.flow = config.flow;
        self.ip.state.set_lists(ip_lists);
        self.ip.kernel =
            ip_kernel::apply(&self.loaded, &self.ip.state, config.ip.alerts_per_second)
                .map_err(|e| crate::error_chain(&e))?;
        tracing::info!(
            list_rules = self.ip.state.lists.rules.len(),
            runtime_rules = self.ip.state.runtime.len(),
            kernel_v4 = self.ip.kernel.v4,
            kernel_v6 = self.ip.kernel.v6,
            "IP policy reloaded"
        );
        release_memory();
        if config.ip.xdp_mode != self.opts.config.ip.xdp_mode {
            ip_block::reattach(
                &mut self.links,
                &mut self.loaded,
                &self.pins,
                &mut self.interfaces,
                config.ip.xdp_mode,
            );
        }
        self.opts.config.ip = config.ip;
        Ok(ReloadReport {
            dns_ruleset_sha256: hex::encode(self.dns.rules.sha256()),
            dns_kernel_rules: kernel_rules,
            restart_needed,
        })
    }

    /// Reopens every worker's event log (after rotation): opens the file
    /// anew, then restarts the worker gracefully so its successor writes to
    /// the new file. The old worker flushes into the old (renamed) file; the
    /// ring buffer keeps what arrives meanwhile, so nothing is lost. No-op in
    /// `--foreground` mode (stdout).
    fn reopen_logs(&mut self, registry: &mio::Registry) -> Result<Vec<WorkerKind>, String> {
        if self.opts.foreground {
            return Ok(Vec::new());
        }
        let mut reopened = Vec::new();
        for (kind, res) in &mut self.resources {
            res.sink = open_sink(&self.opts, *kind).map_err(|e| crate::error_chain(&e))?;
            if let Some(slot) = self.slots.get_mut(kind) {
                slot.stop(registry, true);
            }
            reopened.push(*kind);
        }
        Ok(reopened)
    }

    fn handle(&mut self, registry: &mio::Registry, req: &ControlRequest) -> ControlResponse {
        match req {
            ControlRequest::Reload => match self.reload(registry) {
                Ok(r) => {
                    tracing::info!(report = ?r, "configuration reloaded");
                    ControlResponse::Reloaded(r)
                }
                Err(message) => {
                    tracing::error!(
                        "reload refused, the running configuration stays in force: {message}"
                    );
                    ControlResponse::Error {
                        kind: ControlErrorKind::Failed,
                        message,
                    }
                }
            },
            ControlRequest::DnsTest(name) => {
                ControlResponse::DnsTest(self.dns.test(name, Instant::now()))
            }
            ControlRequest::ReopenLogs => match self.reopen_logs(registry) {
                Ok(kinds) => ControlResponse::LogsReopened(kinds),
                Err(message) => ControlResponse::Error {
                    kind: ControlErrorKind::Failed,
                    message,
                },
            },
            ControlRequest::DnsBlockedHits => {
                match dns_kernel::hits(&self.loaded) {
                    Ok(mut hits) => {
                        hits.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                        ControlResponse::DnsBlockedHits(
                            hits.into_iter()
                                .map(|(id, hits)| RuleHits {
                                    id,
                                    rule: self.dns.rules.rule(id).map(describe).unwrap_or_else(
                                        || format!("rule {id} (no longer in force)"),
                                    ),
                                    hits,
                                })
                                .collect(),
                        )
                    }
                    Err(e) => ControlResponse::Error {
                        kind: ControlErrorKind::Failed,
                        message: crate::error_chain(&e),
                    },
                }
            }
            ControlRequest::FlowsTop { by, limit } => self.flows(None, *by, *limit),
            ControlRequest::FlowsShow { host, limit } => match host.parse() {
                Ok(addr) => self.flows(Some(addr), FlowOrder::Bytes, *limit),
                Err(_) => ControlResponse::Error {
                    kind: ControlErrorKind::Failed,
                    message: format!("{host:?} is not an IP address"),
                },
            },
            ControlRequest::BlockAdd(add) => match self.ip.add(&self.loaded, add) {
                Ok(info) => ControlResponse::BlockAdded(info),
                Err(e) => Self::failed(crate::error_chain(&e)),
            },
            ControlRequest::BlockRemove(cidr) => match self.ip.remove(&self.loaded, cidr) {
                Ok(info) => ControlResponse::BlockRemoved(info),
                Err(e) => Self::failed(crate::error_chain(&e)),
            },
            ControlRequest::BlockList { limit } => match self.ip.list(&self.loaded, *limit) {
                Ok(list) => ControlResponse::BlockList(list),
                Err(e) => Self::failed(crate::error_chain(&e)),
            },
            ControlRequest::Version => ControlResponse::Version(version_info()),
            ControlRequest::Status => ControlResponse::Status(Box::new(self.status())),
            ControlRequest::Restart(target) => {
                let kinds: Vec<WorkerKind> = match target {
                    RestartTarget::All => WorkerKind::ALL.to_vec(),
                    RestartTarget::One(k) => vec![*k],
                };
                for k in &kinds {
                    match self.slots.get_mut(k) {
                        Some(slot) => slot.stop(registry, true),
                        None => {
                            return ControlResponse::Error {
                                kind: ControlErrorKind::Failed,
                                message: format!("no {} worker", k.name()),
                            };
                        }
                    }
                }
                ControlResponse::Restarted(kinds)
            }
        }
    }

    fn flows(
        &self,
        host: Option<std::net::IpAddr>,
        order: FlowOrder,
        limit: u32,
    ) -> ControlResponse {
        let names = self
            .interfaces
            .iter()
            .map(|i| (i.ifindex, i.name.clone()))
            .collect();
        match crate::flows::list(&self.loaded, &names, host, order, limit) {
            Ok(list) => ControlResponse::Flows(list),
            Err(error) => ControlResponse::Error {
                kind: ControlErrorKind::Failed,
                message: crate::error_chain(&error),
            },
        }
    }

    fn failed(message: String) -> ControlResponse {
        ControlResponse::Error {
            kind: ControlErrorKind::Failed,
            message,
        }
    }

    fn status(&self) -> StatusReport {
        let now = Instant::now();
        let kernel = counters::read(&self.loaded.ebpf).unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading kernel counters");
            Vec::new()
        });
        StatusReport {
            version: version_info(),
            pid: std::process::id(),
            uptime_ms: now.duration_since(self.started).as_millis() as u64,
            pin_dir: self.pins.dir.display().to_string(),
            workers: self.slots.values().map(|s| s.status(now)).collect(),
            interfaces: self.interfaces.clone(),
            kernel,
            dns: self.dns.status(self.dns_kernel_rules),
            flows: crate::flows::status(&self.loaded, &self.opts.config.flow, &self.conntrack_seed),
        }
    }
}

/// Returns the heap freed by a large list load to the kernel (glibc keeps
/// freed memory otherwise, and the supervisor's resident size would stay at
/// its peak).
fn release_memory() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

/// Versions of this binary.
pub fn version_info() -> VersionInfo {
    VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: PROTOCOL_VERSION,
        abi: palisade_abi::ABI_VERSION,
    }
}
