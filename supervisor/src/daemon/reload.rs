//! Reload (`palisade reload`, SIGHUP): re-reads the configuration and every
//! list, validates all of it before anything is applied, then applies what
//! can change live (DNS, IP and TLS policy, flow timeouts, the IP hooks' mode, the DHCP
//! guard, the interface selection)
//! and reports the settings that need a restart. An invalid configuration
//! leaves the running one in force.

use palisade_ipc::messages::ReloadReport;

use super::{Daemon, release_memory};
use crate::{
    config::{Config, ConfigError},
    ebpf::maps::KernelError,
    interfaces::Selector,
    policy::{
        dns::{RuleSet, RuleSetError},
        dns_kernel,
        dns_state::DnsState,
        ip::IpRuleSet,
        ip_block, ip_kernel,
        ip_lists::IpListError,
        tls::{self, TlsPolicyError},
    },
};

/// Why a reload was refused or stopped; the Display text (with its
/// sources, `error_chain`) is what the operator sees.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An IP list.
    #[error(transparent)]
    IpLists(#[from] IpListError),
    /// A DNS list.
    #[error(transparent)]
    DnsRules(#[from] RuleSetError),
    /// Writing the DNS or IP policy maps.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// Configuring the flow table's sweeper.
    #[error("flow table")]
    Flow(#[source] KernelError),
    /// A TLS rule file.
    #[error(transparent)]
    TlsRules(#[from] TlsPolicyError),
    /// Giving the event logs a new group (`paths.log_group`).
    #[error(transparent)]
    Logs(#[from] super::event_logs::SinkError),
}

impl Daemon {
    /// Re-reads the configuration and lists; applies them only when all of
    /// it is valid. Settings that cannot change live are reported.
    pub(super) fn reload(&mut self) -> Result<ReloadReport, ReloadError> {
        let mut config = Config::load(self.opts.config_path.as_deref())?;
        self.opts.flags.apply(&mut config);
        // Everything is validated before anything is applied.
        let log_gid = config
            .log_group
            .as_ref()
            .map(crate::config::NamedGroup::resolve)
            .transpose()?;
        let ip_lists = IpRuleSet::load(&config.ip.blocklists)?;
        let tls_lists = tls::load_lists(&config.tls.rules)?;
        if tls_lists.len() + self.tls.rules.len() - self.tls.rules.list_len() > tls::MAX_RULES {
            return Err(TlsPolicyError::TooMany(tls_lists.len()).into());
        }
        let rules = RuleSet::load(&config.dns.lists)?;
        // AF_PACKET capture: no kernel to write to (`status` says DNS blocking is unavailable).
        let action = super::startup::dns_action(&self.features, config.dns.block_action);
        let kernel_rules = match &self.loaded {
            Some(loaded) => {
                let (n, dns_map) = dns_kernel::apply_holding(loaded, &rules, action)?;
                self.dns_map = Some(dns_map);
                // Learned names came from the previous regexes: start afresh.
                dns_kernel::clear_learned(loaded)?;
                n
            }
            None => 0,
        };
        self.dns = DnsState::new(rules, action);
        self.dns_kernel_rules = kernel_rules;
        release_memory();
        let old = &self.opts.config;
        let mut restart_needed = Vec::new();
        for (changed, key) in [
            (old.capture != config.capture, "capture"),
            (old.tc_attach != config.tc_attach, "tc_attach"),
            (
                old.control_socket != config.control_socket,
                "paths.control_socket",
            ),
            (old.pin_root != config.pin_root, "paths.pin_root"),
            (old.state_dir != config.state_dir, "paths.state_dir"),
            (old.log_dir != config.log_dir, "paths.log_dir"),
            (old.control_group != config.control_group, "control.group"),
            (
                old.control_tcp != config.control_tcp,
                "control.listen/token_file/tcp_changes/metrics_without_token",
            ),
            (old.workers != config.workers, "workers"),
        ] {
            if changed {
                restart_needed.push(key.to_owned());
            }
        }
        if config.flow != self.opts.config.flow {
            match &self.loaded {
                Some(loaded) => {
                    crate::flows::configure(loaded, &config.flow).map_err(ReloadError::Flow)?;
                    self.features
                        .write_capture(loaded, config.flow.start_events)
                        .map_err(ReloadError::Flow)?;
                }
                // The workers' record builders got [flow] when they started.
                None => restart_needed.push("flow (AF_PACKET: palisade restart all)".to_owned()),
            }
            if config.flow.seed_from_conntrack != self.opts.config.flow.seed_from_conntrack {
                restart_needed.push("flow.seed_from_conntrack".to_owned());
            }
            if config.flow.memory_mib != self.opts.config.flow.memory_mib {
                // A shard cannot be resized: the pinned table is recreated after a
                // `palisade cleanup` (or a reboot).
                restart_needed.push("flow.memory_mib (after palisade cleanup)".to_owned());
            }
        }
        if !restart_needed.is_empty() {
            tracing::warn!(
                ?restart_needed,
                "reloaded; these settings take effect after a restart"
            );
        }
        if config.interfaces != self.opts.config.interfaces {
            // Applied by the next pass of network reconciliation: newly selected interfaces
            // are attached, those no longer selected detached and unpinned.
            tracing::info!(interfaces = ?config.interfaces, "interface selection changed");
            self.network
                .set_selector(Selector::new(&config.interfaces), std::time::Instant::now());
            self.opts.config.interfaces = config.interfaces.clone();
        }
        self.opts.config.dns = config.dns;
        self.opts.config.flow = config.flow;
        self.tls.rules.set_lists(tls_lists)?;
        self.tls.block_ttl_ns = u64::from(config.tls.block_ttl_secs) * 1_000_000_000;
        tracing::info!(
            rules = self.tls.rules.len(),
            sha256 = %hex::encode(self.tls.rules.sha256()),
            "TLS policy reloaded"
        );
        self.opts.config.tls = config.tls;
        if config.dhcp.allowed_servers != self.opts.config.dhcp.allowed_servers
            || config.dhcp.guard != self.opts.config.dhcp.guard
        {
            crate::policy::guard::apply(
                crate::ebpf::maps::of(&self.loaded),
                &config.dhcp,
                self.features.enabled(crate::features::Feature::DhcpGuard),
            )?;
            tracing::info!(
                mode = super::startup::guard_mode_name(&config.dhcp),
                allowed = config.dhcp.allowed_servers.len(),
                "DHCP guard reloaded"
            );
        }
        self.opts.config.dhcp = config.dhcp;
        self.reload_registry(&config.ieee_data_dir);
        self.opts.config.ieee_data_dir = config.ieee_data_dir;
        self.send_policy();
        self.ip.state.set_lists(ip_lists);
        if let Some(loaded) = &self.loaded {
            self.ip.kernel = ip_kernel::apply(
                loaded,
                &mut self.ip.tries,
                &self.ip.state,
                config.ip.alerts_per_second,
            )?;
        }
        tracing::info!(
            list_rules = self.ip.state.lists.rules.len(),
            runtime_rules = self.ip.state.runtime.len(),
            kernel_v4 = self.ip.kernel.v4,
            kernel_v6 = self.ip.kernel.v6,
            "IP policy reloaded"
        );
        release_memory();
        if config.ip.xdp_mode != self.opts.config.ip.xdp_mode
            && let (Some(loaded), Some(pins)) = (&mut self.loaded, &self.pins)
        {
            ip_block::reattach(
                &mut self.links,
                loaded,
                pins,
                &mut self.interfaces,
                config.ip.xdp_mode,
            );
        }
        self.opts.config.ip = config.ip;
        if config.log_group != self.opts.config.log_group {
            self.set_log_group(log_gid)?;
            tracing::info!(
                group = config.log_group.as_ref().map(|g| g.name.as_str()),
                log_dir = %self.opts.config.log_dir.display(),
                "event logs: new group (paths.log_group)"
            );
            self.opts.config.log_group = config.log_group;
        }
        // What this reload wrote is the state drift checks compare with from now on.
        if let Some(loaded) = &self.loaded {
            self.drift.config_written(loaded);
        }
        if config.drift != self.opts.config.drift {
            self.drift.set_interval(config.drift.interval_s);
            self.opts.config.drift = config.drift;
        }
        Ok(ReloadReport {
            dns_ruleset_sha256: hex::encode(self.dns.rules.sha256()),
            dns_kernel_rules: kernel_rules,
            restart_needed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::daemon::DaemonError;

    #[test]
    fn errors_read_as_the_strings_they_replace() {
        // What the operator saw before: error_chain of the cause itself.
        let missing = || Config::load(Some(Path::new("/nonexistent/palisade.toml")));
        let cause = missing().expect_err("no such file");
        let typed = ReloadError::from(missing().expect_err("no such file"));
        assert_eq!(crate::error_chain(&typed), crate::error_chain(&cause));
        assert!(crate::error_chain(&typed).contains(": cannot read: "));
        // The flow table's failure reads "flow table: ..." on reload and at start-up.
        let flow = || KernelError::Call {
            map: "pal_flow_config",
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        };
        let expected = format!("flow table: {}", crate::error_chain(&flow()));
        assert_eq!(crate::error_chain(&ReloadError::Flow(flow())), expected);
        assert_eq!(crate::error_chain(&DaemonError::Flow(flow())), expected);
    }
}
