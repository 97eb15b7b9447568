//! Start-up, in two phases.
//!
//! First everything that can be checked without touching the kernel: the control socket is
//! not another daemon's, the interfaces exist, the workers' accounts are usable, every list
//! is valid. A start that fails there leaves nothing behind.
//!
//! Then the kernel side, in the order enforcement needs: pins and load, then the policy
//! (validated lists, swapped in whole) and the flow table (seeded, sweeper armed) before any
//! traffic is attached; then the interfaces, the worker slots and the control socket. A
//! failure in this phase rolls back what this start created below the pin root
//! ([`Snapshot::roll_back`]): links it attached are detached and unpinned, maps it pinned
//! are unpinned, directories it made are removed, so a failed start leaves no enforcement
//! half-installed and no pins behind. What a previous run left (pins of links still
//! enforcing, maps in use) is never removed by a failed start: links it adopted and maps it
//! reused stay, with the policy this start validated and swapped in whole (the one thing
//! that cannot be rolled back, since nothing kept the previous one). The pins of other ABI
//! versions go only once the start has succeeded. Any failure ends the daemon with a
//! [`DaemonError`].

use std::{collections::BTreeMap, time::Instant};

use palisade_abi::MAP_TRACE_CONFIG;
use palisade_ipc::messages::{Attachment, InterfaceStatus, WorkerKind};

use super::{
    CaptureState, Daemon, DaemonError, RunOptions, event_logs,
    network::{self, Kernel as NetKernel, Network},
    release_memory, workers,
};
use crate::{
    capture::{CaptureMode, PacketSocket},
    config::Config,
    control::server::{Server, ServerError},
    ebpf::{
        attach::Links,
        loader::Loaded,
        pin::{PinTree, Snapshot},
    },
    features::{Feature, Features},
    interfaces::{self, InterfaceError, Selector},
    policy::{
        dns::{BlockAction, RuleSet},
        dns_kernel,
        dns_state::DnsState,
        ip::{IpRuleSet, IpState, unix_now},
        ip_block::IpPolicy,
        ip_kernel,
        tls::TlsPolicy,
    },
    users::WorkerAccount,
};

/// What the first phase established.
struct Checked {
    network: Network,
    accounts: BTreeMap<WorkerKind, WorkerAccount>,
    log_gid: Option<u32>,
    dns_rules: RuleSet,
    ip: IpState,
    tls: TlsPolicy,
    features: Features,
}

/// Brings the daemon up; returns it with its bound control socket.
pub(super) fn start(opts: RunOptions) -> Result<(Daemon, Server), DaemonError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DaemonError::NotRoot);
    }
    let started = Instant::now();
    let mut checked = check(&opts.config)?;
    let pin_root = opts.config.pin_root.clone();
    let mode = opts.config.capture;
    let mut fallback_reason = None;
    // The kernel side, rolled back below the pin root if anything after it fails.
    let mut before = None;
    let kernel = if mode == CaptureMode::AfPacket {
        None
    } else {
        let up = crate::ebpf::pin::ensure_bpffs(&pin_root)
            .map_err(DaemonError::from)
            .and_then(|()| {
                before = Some(Snapshot::take(&pin_root));
                kernel_up(&opts.config, &mut checked, started)
            });
        match up {
            Ok(k) => Some(k),
            Err(e) => {
                if let Some(b) = before.take() {
                    roll_back(b, &pin_root);
                }
                if mode != CaptureMode::Auto || !e.is_ebpf_unusable() {
                    return Err(e);
                }
                let reason = crate::error_chain(&e);
                tracing::error!(
                    reason = %reason,
                    "eBPF cannot be used: capturing with AF_PACKET sockets instead (capture = \"auto\"); enforcement (IP blocklists, DNS blocking, TLS flow blocks, DHCP guard) is unavailable"
                );
                fallback_reason = Some(reason);
                None
            }
        }
    };
    match bring_up(opts, checked, kernel, fallback_reason, started) {
        Ok(up) => Ok(up),
        Err(e) => {
            if let Some(b) = before {
                roll_back(b, &pin_root);
            }
            Err(e)
        }
    }
}

fn roll_back(before: Snapshot, pin_root: &std::path::Path) {
    let removed = before.roll_back();
    tracing::error!(
        pins = %pin_root.display(),
        removed = removed.len(),
        "start failed: removed the pins and directories this start created"
    );
}

/// The first phase: nothing in the kernel or below the pin root changes.
fn check(cfg: &Config) -> Result<Checked, DaemonError> {
    if crate::control::client::is_live(&cfg.control_socket) {
        return Err(ServerError::InUse {
            path: cfg.control_socket.clone(),
        }
        .into());
    }
    // The link monitor subscribes before it reads every link: an interface that appears
    // from here on is an event of the event loop.
    let network = Network::open(Selector::new(&cfg.interfaces)).map_err(InterfaceError::List)?;
    interfaces::check_selection(&network.selector, &network.links())?;
    let accounts = crate::users::worker_accounts(cfg)?;
    // The log group the configuration names exists.
    let log_gid = cfg
        .log_group
        .as_ref()
        .map(crate::config::NamedGroup::resolve)
        .transpose()?;
    let dns_rules = RuleSet::load(&cfg.dns.lists)?;
    let mut ip = IpState::open(IpRuleSet::load(&cfg.ip.blocklists)?, &cfg.state_dir)?;
    if !ip.expire(unix_now()).is_empty() {
        ip.save()?;
    }
    let tls = TlsPolicy::load(&cfg.tls, &cfg.state_dir)?;
    let features = Features::open(&cfg.state_dir)?;
    for f in Feature::ALL.into_iter().filter(|f| !features.enabled(*f)) {
        tracing::warn!(
            feature = f.name(),
            "switched off (palisade feature enable {} switches it on)",
            f.name()
        );
    }
    ip.enforcing = features.enabled(Feature::IpBlocking);
    let mut tls = tls;
    tls.enforcing = features.enabled(Feature::TlsRules);
    Ok(Checked {
        network,
        accounts,
        log_gid,
        dns_rules,
        ip,
        tls,
        features,
    })
}

/// What the eBPF side of the second phase set up.
struct Kernel {
    pins: PinTree,
    loaded: Loaded,
    links: Links,
    statuses: Vec<InterfaceStatus>,
    dns_kernel_rules: u32,
    /// The DNS rule map swapped in (read back by drift checks).
    dns_map: std::os::fd::OwnedFd,
    ip_kernel: ip_kernel::KernelCounts,
    ip_tries: ip_kernel::LiveTries,
    conntrack_seed: String,
    /// Pin directories of another ABI whose open flows this start carried over.
    carried: Vec<std::path::PathBuf>,
}

/// The second phase's kernel side: pins, load, policy, flow table, attach.
fn kernel_up(cfg: &Config, checked: &mut Checked, started: Instant) -> Result<Kernel, DaemonError> {
    crate::ebpf::attach::set_tc_attach(cfg.tc_attach);
    let pins = PinTree::open(&cfg.pin_root)?;
    let mut loaded = Loaded::load(&pins)?;
    // Policy before traffic is attached: validated lists, swapped in whole.
    let dns_action = dns_action(&checked.features, cfg.dns.block_action);
    let (dns_kernel_rules, dns_map) = load_dns_policy(&loaded, dns_action, &checked.dns_rules)?;
    let (ip_kernel, ip_tries) = load_ip_policy(&loaded, cfg, &checked.ip)?;
    crate::policy::guard::apply(
        &loaded,
        &cfg.dhcp,
        checked.features.enabled(Feature::DhcpGuard),
    )?;
    checked
        .features
        .write_capture(&loaded, cfg.flow.start_events)?;
    // A packet trace a previous run left on (it stopped during one) ends here.
    palisade_ebpf::trace::stop(crate::ebpf::maps::Maps::fd(&loaded, MAP_TRACE_CONFIG)?)
        .map_err(crate::ebpf::maps::on(MAP_TRACE_CONFIG))?;
    tracing::info!(
        mode = guard_mode_name(&cfg.dhcp),
        allowed = cfg.dhcp.allowed_servers.len(),
        "DHCP guard configured"
    );
    // Blocks a previous run left in the pinned map: lapsed ones go, the rest are counted.
    let mut blocks = checked
        .tls
        .sweep(&loaded, crate::flows::boot_now_ns(), false);
    if !checked.tls.enforcing && !blocks.is_empty() {
        // `tls-rules` switched off: a previous run's cuts go too.
        checked.tls.lift_all(&loaded)?;
        blocks.clear();
    }
    tracing::info!(
        rules = checked.tls.rules.len(),
        sha256 = %hex::encode(checked.tls.rules.sha256()),
        blocked_connections = blocks.len(),
        "TLS policy loaded"
    );
    release_memory();
    crate::flows::open_table(&mut loaded, &pins.maps(), &cfg.flow).map_err(DaemonError::Flow)?;
    // An upgrade: the older version's open flows first (real counters), then conntrack's.
    let carried = crate::flows::carry_over(&loaded, &pins);
    let mut conntrack_seed = prepare_flow_table(&loaded, cfg)?;
    if !carried.report.is_empty() {
        conntrack_seed = format!("{}; {conntrack_seed}", carried.report);
    }
    let mut links = Links::default();
    let statuses = attach(&mut loaded, &pins, cfg, &mut checked.network, &mut links)?;
    tracing::info!(
        interfaces = ?statuses.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        pins = %pins.dir.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "programs attached"
    );
    Ok(Kernel {
        pins,
        loaded,
        links,
        statuses,
        dns_kernel_rules,
        dns_map,
        ip_kernel,
        ip_tries,
        conntrack_seed,
        carried: carried.dirs,
    })
}

/// AF_PACKET capture: a socket per worker on the interfaces the configuration selects at
/// start (see [`crate::capture`]; the set is fixed until a restart); the interfaces' status
/// says how they are watched.
fn packet_up(
    cfg: &Config,
    network: &Network,
) -> Result<(Vec<PacketSocket>, Vec<InterfaceStatus>), DaemonError> {
    let ifaces: Vec<crate::interfaces::Link> = network
        .links()
        .into_iter()
        .filter(|l| network.selector.wants(l))
        .collect();
    if ifaces.is_empty() {
        return Err(DaemonError::NothingAttached(
            "AF_PACKET capture: no selected interface exists yet (the set is fixed at start)"
                .into(),
        ));
    }
    let indexes: Vec<u32> = ifaces.iter().map(|i| i.index).collect();
    let sockets = cfg
        .workers
        .keys()
        .map(|kind| {
            PacketSocket::open(*kind, &indexes).map_err(|source| DaemonError::Io {
                what: format!(
                    "AF_PACKET socket of the {} worker (needs CAP_NET_RAW and AF_PACKET; under systemd, the drop-in packaging/af-packet.conf)",
                    kind.name()
                ),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let statuses = ifaces
        .iter()
        .map(|i| InterfaceStatus {
            name: i.name.clone(),
            ifindex: i.index,
            attachments: vec![Attachment {
                direction: "both".into(),
                program: "af_packet".into(),
                program_id: 0,
                link_id: 0,
                mode: "af_packet".into(),
                adopted: false,
            }],
            error: None,
            state: network::ATTACHED.into(),
            since: unix_now(),
        })
        .collect();
    tracing::warn!(
        interfaces = ?ifaces.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        "capturing with AF_PACKET sockets (no eBPF): IP blocklists, DNS blocking, TLS flow blocks and the DHCP guard are unavailable"
    );
    Ok((sockets, statuses))
}

/// The rest of the second phase: workers, control socket.
fn bring_up(
    opts: RunOptions,
    checked: Checked,
    kernel: Option<Kernel>,
    fallback_reason: Option<String>,
    started: Instant,
) -> Result<(Daemon, Server), DaemonError> {
    let cfg = &opts.config;
    let log_gid = checked.log_gid;
    // The supervisor gives its own files to these groups (control socket, event logs): as
    // their owner and a member of the group it needs no CAP_CHOWN for that.
    let control_gid = crate::users::group_id(&cfg.control_group);
    crate::users::join_groups(
        &[control_gid, log_gid]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
    );
    if !opts.foreground {
        event_logs::prepare_dir(&cfg.log_dir, log_gid)?;
    }
    let (k, sockets, statuses) = match kernel {
        Some(mut k) => {
            let statuses = std::mem::take(&mut k.statuses);
            (Some(k), Vec::new(), statuses)
        }
        None => {
            let (sockets, statuses) = packet_up(cfg, &checked.network)?;
            (None, sockets, statuses)
        }
    };
    let inputs = match &k {
        Some(k) => workers::Inputs::Rings(&k.loaded),
        None => workers::Inputs::Packets(&sockets),
    };
    let (slots, resources) =
        workers::prepare(&opts, log_gid, &checked.accounts, inputs, &statuses)?;
    let mut control = Server::bind(&cfg.control_socket, &cfg.control_group)?;
    if let Some(tcp) = &cfg.control_tcp {
        control.bind_tcp(tcp)?;
    }
    let dns_kernel_rules = k.as_ref().map_or(0, |k| k.dns_kernel_rules);
    let dns = DnsState::new(
        checked.dns_rules,
        dns_action(&checked.features, cfg.dns.block_action),
    );
    let dns_map = k
        .as_ref()
        .map(|k| k.dns_map.try_clone())
        .transpose()
        .map_err(|source| DaemonError::Io {
            what: "dup of the DNS rule map".into(),
            source,
        })?;
    let (pins, loaded, links, ip, conntrack_seed) = match k {
        Some(k) => {
            // Started: only now may the programs and pins of another ABI version go. Flows
            // its programs started between the copy and this version's attach are taken
            // over once they are detached (the flows copied before are known, kept).
            if !k.carried.is_empty() {
                k.pins.detach_other_versions();
                crate::flows::carry_over(&k.loaded, &k.pins);
            }
            for old in k.pins.remove_other_versions(&k.carried) {
                tracing::info!(pins = %old.display(), "removed pins of another ABI version");
            }
            (
                Some(k.pins),
                Some(k.loaded),
                k.links,
                IpPolicy {
                    state: checked.ip,
                    kernel: k.ip_kernel,
                    tries: k.ip_tries,
                },
                k.conntrack_seed,
            )
        }
        None => (
            None,
            None,
            Links::default(),
            IpPolicy {
                state: checked.ip,
                kernel: ip_kernel::KernelCounts::default(),
                tries: ip_kernel::LiveTries::default(),
            },
            "unavailable: AF_PACKET capture (the flow worker keeps the flow table)".to_owned(),
        ),
    };
    let capture = CaptureState {
        mode: if loaded.is_some() {
            CaptureMode::Ebpf
        } else {
            CaptureMode::AfPacket
        },
        fallback_reason,
        sockets,
    };
    let mut drift = super::drift::DriftState::new(opts.config.drift.interval_s);
    if let Some(l) = &loaded {
        drift.config_written(l);
    }
    let daemon = Daemon {
        opts,
        pins,
        loaded,
        links,
        capture,
        interfaces: statuses,
        network: checked.network,
        slots,
        resources,
        started,
        dns,
        dns_kernel_rules,
        conntrack_seed,
        ip,
        tls: checked.tls,
        dns_map,
        drift,
        unread: Default::default(),
        log_gid,
        features: checked.features,
        trace: Default::default(),
    };
    Ok((daemon, control))
}

/// The DHCP guard's mode, for logs.
pub(super) fn guard_mode_name(cfg: &crate::config::DhcpConfig) -> &'static str {
    match cfg.guard_mode() {
        palisade_abi::GUARD_DROP => "drop",
        palisade_abi::GUARD_ALERT => "alert",
        _ => "off",
    }
}

/// Writes the DNS lists into the kernel (learned names of a previous run go). Returns the
/// number of kernel rules and the rule map.
fn load_dns_policy(
    loaded: &Loaded,
    action: BlockAction,
    rules: &RuleSet,
) -> Result<(u32, std::os::fd::OwnedFd), DaemonError> {
    let (dns_kernel_rules, dns_map) = dns_kernel::apply_holding(loaded, rules, action)?;
    dns_kernel::clear_learned(loaded)?;
    tracing::info!(
        names = dns_kernel_rules,
        regexes = rules.regexes().len(),
        duplicates = rules.duplicates,
        sha256 = %hex::encode(rules.sha256()),
        "DNS policy loaded"
    );
    Ok((dns_kernel_rules, dns_map))
}

/// The DNS block action in force: the configuration's, or off while `dns-blocking` is
/// switched off.
pub(super) fn dns_action(features: &Features, configured: BlockAction) -> BlockAction {
    if features.enabled(Feature::DnsBlocking) {
        configured
    } else {
        BlockAction::Off
    }
}

/// Writes the IP lists and the runtime rules (read, expired ones dropped, by [`check`])
/// into the kernel.
fn load_ip_policy(
    loaded: &Loaded,
    cfg: &Config,
    ip: &IpState,
) -> Result<(ip_kernel::KernelCounts, ip_kernel::LiveTries), DaemonError> {
    let ip_started = Instant::now();
    let mut tries = ip_kernel::LiveTries::default();
    let ip_kernel = ip_kernel::apply(loaded, &mut tries, ip, cfg.ip.alerts_per_second)?;
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
    Ok((ip_kernel, tries))
}

/// Seeds the flow table from conntrack and arms its sweeper. Returns what
/// seeding did, for `status`.
fn prepare_flow_table(loaded: &Loaded, cfg: &Config) -> Result<String, DaemonError> {
    // Seeding goes in before traffic is attached, so that the first packets of old
    // connections find their real client and server; then the kernel sweeper is armed (its
    // first walk, at once, announces the seeded flows).
    // A table that survived in its pins (a restart) is already right: seeding it again would
    // bring back, as new flows, connections it ended by its idle timeout.
    let conntrack_seed = if !cfg.flow.seed_from_conntrack {
        "off ([flow] seed_from_conntrack = false)".to_owned()
    } else if crate::flows::table_survived(loaded) {
        "not needed: the pinned flow table survived the restart".to_owned()
    } else {
        crate::flows::seed_from_conntrack(loaded)
    };
    crate::flows::configure(loaded, &cfg.flow).map_err(DaemonError::Flow)?;
    Ok(conntrack_seed)
}

/// Attaches the observer and the IP policy's hooks to every interface the selection wants
/// now (the first pass of network reconciliation), then removes the pins of links on other
/// interfaces: deleted while no supervisor ran, or no longer selected by the configuration. Fails only if nothing could be attached
/// and nothing is waited for (the configuration names no pattern and no missing
/// interface): a sensor configured for interfaces that come later (PPPoE, VLANs, USB NICs)
/// starts, and `status` says what it waits for.
fn attach(
    loaded: &mut Loaded,
    pins: &PinTree,
    cfg: &Config,
    network: &mut Network,
    links: &mut Links,
) -> Result<Vec<InterfaceStatus>, DaemonError> {
    let mut statuses = Vec::new();
    let mut kernel = NetKernel {
        links,
        loaded,
        pins,
        xdp_mode: cfg.ip.xdp_mode,
    };
    network.reconcile(&mut kernel, &mut statuses, &mut |_| {});
    for (pin, live) in links.sweep_unheld(pins, |name| network.selects(name)) {
        if live {
            tracing::info!(pin = %pin.display(), "detached a previous run's link of an interface the configuration no longer selects");
        } else {
            tracing::info!(pin = %pin.display(), "removed the pin of a link whose interface is gone");
        }
    }
    if statuses.iter().all(|s| s.attachments.is_empty()) {
        let waiting: Vec<&str> = statuses
            .iter()
            .filter(|s| s.state == network::WAITING)
            .map(|s| s.name.as_str())
            .collect();
        if waiting.is_empty() {
            let errors: Vec<String> = statuses.iter().filter_map(|s| s.error.clone()).collect();
            return Err(DaemonError::NothingAttached(errors.join("; ")));
        }
        tracing::warn!(
            ?waiting,
            "no interface attached yet: waiting for the configured interfaces to appear"
        );
    }
    Ok(statuses)
}
