//! `palisade run`: the supervisor daemon.
//!
//! Single-threaded (workers are forked from it, see `workers::privdrop`):
//! one mio poll over the control socket, signals, and each worker's IPC
//! socket and pidfd; timers for heartbeats and restarts.
//!
//! Rooms:
//! - [`options`]: what the CLI hands over ([`RunOptions`], [`RunOverrides`]);
//! - [`startup`]: pins, load, policy, conntrack seeding, attach, worker slots, control socket;
//! - [`network`]: network reconciliation (rtnetlink link events: attach, follow renames,
//!   release);
//! - [`event_loop`]: the poll loop, signals (SIGHUP reloads, SIGTERM/SIGINT stop), shutdown;
//! - [`reload`]: re-read and validate everything, then apply;
//! - [`workers`]: the daemon's side of its workers: slots and event sinks,
//!   routing their IPC and acting on what they ask (policy verdicts);
//! - [`commands`]: the control socket's requests, one module per command family.
//!
//! The policies' own transactions live with them: `policy::ip_block`
//! (`palisade block`, TTLs, hook moves) and `policy::dns_verdicts` (names
//! learned from workers). The worker processes themselves (start, IPC
//! session, health) are `crate::workers`.
//!
//! A new control command: its `ControlRequest` variant (ipc-protocol), one
//! line in `commands::handle` calling a function in its family's module
//! (or a new module there), and its entry in `control::is_mutating`.
//! A fifth worker: its `WorkerKind` (ipc-protocol: `WorkerKind::ALL`, and what it may
//! send in `validation`), its ring buffer (the C program that fills it, its map in
//! `ebpf::loader::ring_map`), its binary and its `[workers.<name>]` table
//! (`config::workers`); slots, poll tokens, restarts and `status` follow from
//! `WorkerKind::ALL`. If it takes the user-space policy, it joins
//! `workers::POLICY_WORKERS`; if it asks the daemon for something, that is a
//! `SlotEvent` (`crate::workers::dispatch`) and its arm in `workers::on_slot_event`.

mod commands;
mod drift;
pub(crate) mod event_logs;
mod event_loop;
mod network;
mod notify;
mod options;
mod reload;
mod startup;
mod workers;

use std::time::Instant;

use palisade_ipc::messages::{InterfaceStatus, WorkerKind};

pub use self::{
    commands::version_info,
    options::{RunOptions, RunOverrides},
};
use crate::{
    capture::{CaptureMode, PacketSocket},
    ebpf::{attach::Links, loader::Loaded, pin::PinTree},
    interfaces,
    policy::{dns_state::DnsState, ip_block::IpPolicy, tls::TlsPolicy},
};

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
    /// Worker accounts (every problem found; the same checks as `check-config`).
    #[error(transparent)]
    Accounts(#[from] crate::users::AccountErrors),
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
    /// TLS rule files or the runtime TLS rule file.
    #[error(transparent)]
    TlsRules(#[from] crate::policy::tls::TlsPolicyError),
    /// Opening an event log or its directory.
    #[error(transparent)]
    Sink(#[from] event_logs::SinkError),
    /// The DHCP worker's device state file.
    #[error(transparent)]
    Devices(#[from] crate::devices::DevicesError),
    /// A configured group that does not exist (`paths.log_group`).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// epoll or the signal handlers.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl DaemonError {
    /// Whether this start failure says eBPF cannot be used here (bpffs, pins, the verifier,
    /// missing capabilities, an old kernel, no hook on any interface): `capture = "auto"`
    /// then falls back to AF_PACKET. Not a policy the loaded programs' maps refuse (a list
    /// too large, say): eBPF works, the policy is wrong, and falling back would quietly trade
    /// enforcement for a configuration mistake. Other failures (configuration, accounts, the
    /// control socket) would fail the fallback too.
    pub fn is_ebpf_unusable(&self) -> bool {
        matches!(
            self,
            Self::Pin(_) | Self::Load(_) | Self::NothingAttached(_)
        )
    }
}

/// How packets reach the workers, for `status` and metrics.
#[derive(Debug)]
struct CaptureState {
    /// `Ebpf` or `AfPacket` (never `Auto`: what it came to).
    mode: CaptureMode,
    /// Why `capture = "auto"` fell back to AF_PACKET.
    fallback_reason: Option<String>,
    /// AF_PACKET: the workers' sockets.
    sockets: Vec<PacketSocket>,
}

/// Everything the running daemon holds. Each room adds its `impl` block.
struct Daemon {
    opts: RunOptions,
    /// The pins, programs and maps; `None` when capture is AF_PACKET (nothing loaded).
    pins: Option<PinTree>,
    loaded: Option<Loaded>,
    links: Links,
    capture: CaptureState,
    /// Every interface's state, for `status` (kept by [`network`]).
    interfaces: Vec<InterfaceStatus>,
    /// The link monitor and what the daemon holds links for.
    network: network::Network,
    slots: workers::Slots,
    resources: workers::SlotResources,
    started: Instant,
    dns: DnsState,
    dns_kernel_rules: u32,
    /// What conntrack seeding did at start (shown by `status`).
    conntrack_seed: String,
    ip: IpPolicy,
    tls: TlsPolicy,
    /// The DNS rule map this daemon swapped in last (read back by drift checks).
    dns_map: Option<std::os::fd::OwnedFd>,
    /// Drift checks.
    drift: drift::DriftState,
    /// Workers whose socket may still hold frames (a read stopped at its budget).
    unread: std::collections::BTreeSet<WorkerKind>,
    /// The gid of `paths.log_group` (`None`: root only), see `event_logs`.
    log_gid: Option<u32>,
    /// Runtime feature switches (`palisade feature`).
    features: crate::features::Features,
    /// The packet trace (`palisade trace`).
    trace: crate::trace::Tracer,
}

/// Runs the daemon until SIGTERM/SIGINT. Returns after workers stopped.
pub fn run(opts: RunOptions) -> Result<(), DaemonError> {
    // Before anything forks: workers must not inherit systemd's notification socket.
    let mut notifier = notify::Notifier::from_env();
    let (mut daemon, mut control) = startup::start(opts)?;
    daemon.event_loop(&mut control, &mut notifier)
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// Returns the heap freed by a large list load to the kernel (glibc keeps
/// freed memory otherwise, and the supervisor's resident size would stay at
/// its peak).
fn release_memory() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
}
