//! Reload (`palisade reload`, SIGHUP): re-reads the configuration and every
//! list, validates all of it before anything is applied, then applies what
//! can change live (DNS and IP policy, flow timeouts, the IP hooks' mode)
//! and reports the settings that need a restart. An invalid configuration
//! leaves the running one in force.

use palisade_ipc::messages::ReloadReport;

use super::{Daemon, release_memory};
use crate::{
    config::Config,
    policy::{dns::RuleSet, dns_kernel, dns_state::DnsState, ip::IpRuleSet, ip_block, ip_kernel},
};

impl Daemon {
    /// Re-reads the configuration and lists; applies them only when all of
    /// it is valid. Settings that cannot change live are reported.
    pub(super) fn reload(&mut self) -> Result<ReloadReport, String> {
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
        self.send_policy();
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
}
