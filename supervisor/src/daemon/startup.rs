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

use palisade_ipc::messages::{InterfaceStatus, WorkerKind};

use super::{Daemon, DaemonError, RunOptions, event_logs, release_memory, workers};
use crate::{
    config::Config,
    control::server::{Server, ServerError},
    ebpf::{
        attach::Links,
        loader::Loaded,
        pin::{PinTree, Snapshot},
    },
    features::{Feature, Features},
    interfaces::{self, Interface},
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
    ifaces: Vec<Interface>,
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
    let checked = check(&opts.config)?;
    let pin_root = opts.config.pin_root.clone();
    crate::ebpf::pin::ensure_bpffs(&pin_root)?;
    let before = Snapshot::take(&pin_root);
    match bring_up(opts, checked, started) {
        Ok(up) => Ok(up),
        Err(e) => {
            let removed = before.roll_back();
            tracing::error!(
                pins = %pin_root.display(),
                removed = removed.len(),
                "start failed: removed the pins and directories this start created"
            );
            Err(e)
        }
    }
}

/// The first phase: nothing in the kernel or below the pin root changes.
fn check(cfg: &Config) -> Result<Checked, DaemonError> {
    if crate::control::client::is_live(&cfg.control_socket) {
        return Err(ServerError::InUse {
            path: cfg.control_socket.clone(),
        }
        .into());
    }
    let names = if cfg.interfaces.is_empty() {
        interfaces::default_interfaces()?
    } else {
        cfg.interfaces.clone()
    };
    let ifaces = interfaces::resolve(&names)?;
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
    Ok(Checked {
        ifaces,
        accounts,
        log_gid,
        dns_rules,
        ip,
        tls,
        features,
    })
}

/// The second phase: pins, load, policy, attach, workers, control socket.
fn bring_up(
    opts: RunOptions,
    checked: Checked,
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
    let pins = PinTree::open(&cfg.pin_root)?;
    let mut loaded = Loaded::load(&pins)?;
    // Policy before traffic is attached: validated lists, swapped in whole.
    let dns_action = dns_action(&checked.features, cfg.dns.block_action);
    let (dns, dns_kernel_rules, dns_map) = load_dns_policy(&loaded, dns_action, checked.dns_rules)?;
    let ip = load_ip_policy(&loaded, cfg, checked.ip)?;
    crate::policy::guard::apply(&loaded, &cfg.dhcp)?;
    tracing::info!(
        mode = guard_mode_name(&cfg.dhcp),
        allowed = cfg.dhcp.allowed_servers.len(),
        "DHCP guard configured"
    );
    let mut tls = checked.tls;
    // Blocks a previous run left in the pinned map: lapsed ones go, the rest are counted.
    let blocks = tls.sweep(&loaded, crate::flows::boot_now_ns(), false);
    tracing::info!(
        rules = tls.rules.len(),
        sha256 = %hex::encode(tls.rules.sha256()),
        blocked_connections = blocks.len(),
        "TLS policy loaded"
    );
    release_memory();
    crate::flows::open_table(&mut loaded, &pins.maps(), &cfg.flow).map_err(DaemonError::Flow)?;
    let conntrack_seed = prepare_flow_table(&loaded, cfg)?;
    let mut links = Links::default();
    let statuses = attach(&mut loaded, &pins, cfg, &checked.ifaces, &mut links)?;
    tracing::info!(
        interfaces = ?statuses.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        pins = %pins.dir.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "programs attached"
    );

    let (slots, resources) =
        workers::prepare(&opts, log_gid, &checked.accounts, &loaded, &statuses)?;
    let control = Server::bind(&cfg.control_socket, &cfg.control_group)?;
    // Started: only now may the pins of another ABI version go.
    for old in pins.remove_other_versions() {
        tracing::info!(pins = %old.display(), "removed pins of another ABI version");
    }
    let mut drift = super::drift::DriftState::new(opts.config.drift.interval_s);
    drift.config_written(&loaded);
    let daemon = Daemon {
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
        ip,
        tls,
        dns_map: Some(dns_map),
        drift,
        unread: Default::default(),
        log_gid,
        features: checked.features,
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

/// Loads the DNS lists and writes them into the kernel (learned names of a
/// previous run go). Returns the state, the number of kernel rules and the rule map.
fn load_dns_policy(
    loaded: &Loaded,
    action: BlockAction,
    rules: RuleSet,
) -> Result<(DnsState, u32, std::os::fd::OwnedFd), DaemonError> {
    let (dns_kernel_rules, dns_map) = dns_kernel::apply_holding(loaded, &rules, action)?;
    dns_kernel::clear_learned(loaded)?;
    tracing::info!(
        names = dns_kernel_rules,
        regexes = rules.regexes().len(),
        duplicates = rules.duplicates,
        sha256 = %hex::encode(rules.sha256()),
        "DNS policy loaded"
    );
    Ok((DnsState::new(rules, action), dns_kernel_rules, dns_map))
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
fn load_ip_policy(loaded: &Loaded, cfg: &Config, ip: IpState) -> Result<IpPolicy, DaemonError> {
    let ip_started = Instant::now();
    let mut tries = ip_kernel::LiveTries::default();
    let ip_kernel = ip_kernel::apply(loaded, &mut tries, &ip, cfg.ip.alerts_per_second)?;
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
    Ok(IpPolicy {
        state: ip,
        kernel: ip_kernel,
        tries,
    })
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

/// Attaches the observer and the IP policy's hooks to every interface (resolved by
/// [`check`]). Fails only if no interface could be attached; the others carry their error.
fn attach(
    loaded: &mut Loaded,
    pins: &PinTree,
    cfg: &Config,
    ifaces: &[Interface],
    links: &mut Links,
) -> Result<Vec<InterfaceStatus>, DaemonError> {
    let statuses: Vec<InterfaceStatus> = ifaces
        .iter()
        .map(|i| {
            let mut status = links.attach_interface(loaded, pins, &i.name, i.index);
            let (ip_hooks, error) =
                links.attach_ip_policy(loaded, pins, &i.name, i.index, cfg.ip.xdp_mode);
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
    Ok(statuses)
}
