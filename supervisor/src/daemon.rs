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
        ControlErrorKind, ControlRequest, ControlResponse, InterfaceName, InterfaceStatus, RestartTarget, StatusReport,
        VersionInfo, WorkerKind,
    },
};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::{
    config::Config,
    control::server::Server,
    ebpf::{attach::Links, counters, loader::Loaded, pin::PinTree},
    interfaces,
    workers::{Resources, WorkerSlot, privdrop::Credentials, spawn::worker_binary, token_owner},
};

const CONTROL: Token = Token(1);
const SIGNALS: Token = Token(2);
/// Longest the loop sleeps without a deadline.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// Longest shutdown waits for workers before killing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Options of `palisade run` after merging flags and config.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Validated configuration (flags applied).
    pub config: Config,
    /// Events to stdout instead of files.
    pub foreground: bool,
    /// Remove pins (detach) on exit.
    pub detach_on_exit: bool,
}

/// Start-up errors (after start-up the daemon logs and carries on).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Not root.
    #[error("palisade run must be started as root (it loads eBPF and drops privileges for its workers)")]
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
    User { worker: &'static str, #[source] source: crate::users::UserError },
    /// Control socket.
    #[error(transparent)]
    Control(#[from] crate::control::server::ServerError),
    /// Opening an event log or epoll.
    #[error("{what}")]
    Io { what: String, #[source] source: std::io::Error },
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
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// Opens the sink of one worker: our stdout in foreground mode, else
/// `<log_dir>/<kind>.json` (append, 0640).
fn open_sink(opts: &RunOptions, kind: WorkerKind) -> Result<OwnedFd, DaemonError> {
    if opts.foreground {
        return std::io::stdout().as_fd().try_clone_to_owned().map_err(io_err("dup stdout"));
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
    let names = if cfg.interfaces.is_empty() { interfaces::default_interfaces()? } else { cfg.interfaces.clone() };
    let ifaces = interfaces::resolve(&names)?;
    let mut links = Links::default();
    let statuses: Vec<InterfaceStatus> =
        ifaces.iter().map(|i| links.attach_interface(&mut loaded, &pins, &i.name, i.index)).collect();
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
        .map(|s| InterfaceName { ifindex: s.ifindex, name: s.name.clone() })
        .collect();
    let mut slots = BTreeMap::new();
    let mut resources = BTreeMap::new();
    for (kind, settings) in &cfg.workers {
        let user = crate::users::resolve_user(&settings.user).map_err(|source| DaemonError::User { worker: kind.name(), source })?;
        let group = crate::users::resolve_group(&settings.group).map_err(|source| DaemonError::User { worker: kind.name(), source })?;
        if user.fallback || group.fallback {
            tracing::warn!(worker = kind.name(), user = %user.name, group = %group.name, "configured worker account missing; using the fallback (create palisade-{} for isolation between workers)", kind.name());
        }
        let binary = worker_binary(*kind, settings.path.as_deref());
        let creds = Credentials { uid: user.id, gid: group.id };
        slots.insert(*kind, WorkerSlot::new(*kind, binary, creds, settings.heartbeat_ms));
        resources.insert(
            *kind,
            Resources { ring: loaded.ring_fd(*kind)?, sink: open_sink(&opts, *kind)?, interfaces: iface_names.clone() },
        );
    }

    let control = Server::bind(&cfg.control_socket, &cfg.control_group)?;
    let mut daemon = Daemon { opts, pins, loaded, links, interfaces: statuses, slots, resources, started };
    daemon.event_loop(&control)
}

impl Daemon {
    fn event_loop(&mut self, control: &Server) -> Result<(), DaemonError> {
        let mut poll = Poll::new().map_err(io_err("epoll_create"))?;
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(io_err("signal handlers"))?;
        poll.registry().register(&mut signals, SIGNALS, Interest::READABLE).map_err(io_err("epoll_ctl"))?;
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
            if let Some(deadline) = shutdown_deadline
                && (self.slots.values().all(WorkerSlot::is_down) || now >= deadline) {
                    break;
                }
            let next = self.slots.values().filter_map(WorkerSlot::next_deadline).min();
            let timeout = next.map_or(IDLE_TICK, |d| d.saturating_duration_since(now).min(IDLE_TICK));
            if let Err(e) = poll.poll(&mut events, Some(timeout))
                && e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(DaemonError::Io { what: "epoll_wait".into(), source: e });
                }
            for event in &events {
                match event.token() {
                    SIGNALS => {
                        for sig in signals.pending() {
                            if sig == SIGHUP {
                                tracing::info!("SIGHUP: configuration reload is not supported yet; nothing changed");
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
                        let Some((kind, is_sock)) = token_owner(token) else { continue };
                        let (Some(slot), Some(res)) = (self.slots.get_mut(&kind), self.resources.get(&kind)) else { continue };
                        if is_sock {
                            slot.on_readable(poll.registry(), res);
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
                tracing::warn!(worker = slot.kind.name(), pid, "worker did not stop in time; it dies with the supervisor");
            }
        }
        if self.opts.detach_on_exit {
            std::mem::take(&mut self.links).detach_all();
            match crate::ebpf::pin::remove_all(&self.pins.root) {
                Ok(_) => tracing::info!(pins = %self.pins.root.display(), "pins removed (--detach-on-exit)"),
                Err(e) => tracing::error!(error = %crate::error_chain(&e), "removing pins"),
            }
        } else {
            tracing::info!(pins = %self.pins.dir.display(), "programs stay attached (pinned); `palisade cleanup` removes them");
        }
        Ok(())
    }

    fn handle(&mut self, registry: &mio::Registry, req: &ControlRequest) -> ControlResponse {
        match req {
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

    fn status(&self) -> StatusReport {
        let now = Instant::now();
        let kernel = match self.loaded.ebpf.map(palisade_ebpf::MAP_STATS) {
            Some(map) => counters::read(map).unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading kernel counters");
                Vec::new()
            }),
            None => Vec::new(),
        };
        StatusReport {
            version: version_info(),
            pid: std::process::id(),
            uptime_ms: now.duration_since(self.started).as_millis() as u64,
            pin_dir: self.pins.dir.display().to_string(),
            workers: self.slots.values().map(|s| s.status(now)).collect(),
            interfaces: self.interfaces.clone(),
            kernel,
        }
    }
}

/// Versions of this binary.
pub fn version_info() -> VersionInfo {
    VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: PROTOCOL_VERSION,
        abi: palisade_ebpf::ABI_VERSION,
    }
}

