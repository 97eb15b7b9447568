//! Start-up, in the order enforcement needs: the kernel side first (pins,
//! load), then the policy (validated lists, swapped in whole) and the flow
//! table (seeded, sweeper armed) before any traffic is attached; then the
//! interfaces, the worker slots and the control socket. Any failure here
//! ends the daemon with a [`DaemonError`].

use std::time::Instant;

use palisade_ipc::messages::InterfaceStatus;

use super::{Daemon, DaemonError, RunOptions, event_logs, release_memory, workers};
use crate::{
    config::Config,
    control::server::Server,
    ebpf::{attach::Links, loader::Loaded, pin::PinTree},
    interfaces,
    policy::{
        dns::RuleSet,
        dns_kernel,
        dns_state::DnsState,
        ip::{IpRuleSet, IpState, unix_now},
        ip_block::IpPolicy,
        ip_kernel,
    },
};

/// Brings the daemon up; returns it with its bound control socket.
pub(super) fn start(opts: RunOptions) -> Result<(Daemon, Server), DaemonError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DaemonError::NotRoot);
    }
    let started = Instant::now();
    let cfg = &opts.config;

    // What the configuration names on this system, before anything changes: the log group
    // exists, the log directory can be had.
    let log_gid = cfg
        .log_group
        .as_ref()
        .map(crate::config::NamedGroup::resolve)
        .transpose()?;
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

    // Kernel side first: pins, load, attach.
    crate::ebpf::pin::ensure_bpffs(&cfg.pin_root)?;
    let pins = PinTree::open(&cfg.pin_root)?;
    let mut loaded = Loaded::load(&pins)?;
    // Policy before traffic is attached: validated lists, swapped in whole.
    let (dns, dns_kernel_rules) = load_dns_policy(&loaded, cfg)?;
    let ip = load_ip_policy(&loaded, cfg)?;
    release_memory();
    crate::flows::open_table(&mut loaded, &pins.maps(), &cfg.flow).map_err(DaemonError::Flow)?;
    let conntrack_seed = prepare_flow_table(&loaded, cfg)?;
    let mut links = Links::default();
    let statuses = attach(&mut loaded, &pins, cfg, &mut links)?;
    for old in pins.remove_other_versions() {
        tracing::info!(pins = %old.display(), "removed pins of another ABI version");
    }
    tracing::info!(
        interfaces = ?statuses.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        pins = %pins.dir.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "programs attached"
    );

    let (slots, resources) = workers::prepare(&opts, log_gid, &loaded, &statuses)?;
    let control = Server::bind(&cfg.control_socket, &cfg.control_group)?;
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
        unread: Default::default(),
        log_gid,
    };
    Ok((daemon, control))
}

/// Loads the DNS lists and writes them into the kernel (learned names of a
/// previous run go). Returns the state and the number of kernel rules.
fn load_dns_policy(loaded: &Loaded, cfg: &Config) -> Result<(DnsState, u32), DaemonError> {
    let rules = RuleSet::load(&cfg.dns.lists)?;
    let dns_kernel_rules = dns_kernel::apply(loaded, &rules, cfg.dns.block_action)?;
    dns_kernel::clear_learned(loaded)?;
    tracing::info!(
        names = dns_kernel_rules,
        regexes = rules.regexes().len(),
        duplicates = rules.duplicates,
        sha256 = %hex::encode(rules.sha256()),
        "DNS policy loaded"
    );
    Ok((DnsState::new(rules, cfg.dns.block_action), dns_kernel_rules))
}

/// Loads the IP lists and the runtime rule file (dropping expired rules)
/// and writes them into the kernel.
fn load_ip_policy(loaded: &Loaded, cfg: &Config) -> Result<IpPolicy, DaemonError> {
    let ip_started = Instant::now();
    let mut ip = IpState::open(IpRuleSet::load(&cfg.ip.blocklists)?, &cfg.state_dir)?;
    if !ip.expire(unix_now()).is_empty() {
        ip.save()?;
    }
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

/// Attaches the observer and the IP policy's hooks to every configured
/// interface (default: every Ethernet interface that is up). Fails only if
/// no interface could be attached; the others carry their error.
fn attach(
    loaded: &mut Loaded,
    pins: &PinTree,
    cfg: &Config,
    links: &mut Links,
) -> Result<Vec<InterfaceStatus>, DaemonError> {
    let names = if cfg.interfaces.is_empty() {
        interfaces::default_interfaces()?
    } else {
        cfg.interfaces.clone()
    };
    let ifaces = interfaces::resolve(&names)?;
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
