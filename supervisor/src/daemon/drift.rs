//! Drift: the kernel state and the workers' rule sets compared with what this daemon put
//! there, periodically (`[drift] interval_s`) and on demand (`palisade check`), and repaired.
//!
//! What is checked, and how each difference is repaired:
//! - every link this daemon holds (observer and IP policy hooks): detached from outside
//!   (`bpftool link detach`) -> the interface is attached again (live links adopted from
//!   their pins, dead ones replaced); pin removed -> pinned again. An interface deleted,
//!   re-created or renamed is network reconciliation's (`super::network`): its pending
//!   link events are taken before the links are checked;
//! - every pinned map (and flow table shard): pin removed -> pinned again from the
//!   descriptor the daemon holds (the programs never lost the map);
//! - the DNS rule map and the IP tries: a map swapped into their slot from outside, or
//!   entries added, removed or changed -> the rule set in force is written again (a fresh
//!   map, swapped in whole, as a reload does);
//! - the config maps (`pal_dns_config`, `pal_ip_config`, `pal_flow_config`): a value other
//!   than the one this daemon last wrote -> written again;
//! - the rule set each worker reports applying: another one -> the policy is sent again;
//!   still another one at the next check -> the worker is restarted.
//!
//! Objects Palisade did not create are never touched. Every finding is logged, counted
//! (`status`, metrics) and listed by `palisade check`.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::fd::AsFd,
    time::{Duration, Instant},
};

use palisade_abi::{
    MAP_CAPTURE_CONFIG, MAP_DNS_CONFIG, MAP_DNS_POLICY, MAP_FLOW_CONFIG, MAP_GUARD_ALLOW,
    MAP_GUARD_CONFIG, MAP_IP_CONFIG, MAP_TRACE_CONFIG, PINNED_MAPS,
};
use palisade_ebpf::maps::{Digest, digest, map_facts, pin, read_slot0, write_slot0};
use palisade_ipc::messages::{DriftFinding, DriftStatus, InterfaceStatus, WorkerKind};

use super::Daemon;
use crate::{
    ebpf::{loader::Loaded, maps::Maps, pin::PinTree},
    policy::{dns_kernel, ip_kernel},
};

/// The config maps whose one value the daemon writes.
const CONFIG_MAPS: [&str; 6] = [
    MAP_DNS_CONFIG,
    MAP_IP_CONFIG,
    MAP_FLOW_CONFIG,
    MAP_GUARD_CONFIG,
    MAP_CAPTURE_CONFIG,
    MAP_TRACE_CONFIG,
];

/// What the checks remember between runs.
#[derive(Debug, Default)]
pub(super) struct DriftState {
    /// Counters and the latest findings, as `status` shows them.
    pub status: DriftStatus,
    /// When the next periodic check is due.
    next_at: Option<Instant>,
    /// The DNS rule map's digest, for the rule set of this SHA-256 (computed once per set).
    dns_digest: Option<([u8; 32], Digest)>,
    /// The value of each config map as this daemon last wrote it.
    configs: BTreeMap<&'static str, Vec<u8>>,
    /// The DHCP guard's allow-list map as this daemon last wrote it.
    guard_allow: Option<Digest>,
    /// Workers sent the policy again by the previous check for applying another rule set.
    resynced: BTreeSet<WorkerKind>,
}

impl DriftState {
    /// Checks every `interval_s` seconds (0: only on demand).
    pub(super) fn new(interval_s: u32) -> Self {
        let mut state = Self::default();
        state.set_interval(interval_s);
        state
    }

    /// A new period (reload); the next check comes one period from now.
    pub(super) fn set_interval(&mut self, interval_s: u32) {
        self.status.interval_s = interval_s;
        self.next_at =
            (interval_s > 0).then(|| Instant::now() + Duration::from_secs(interval_s.into()));
    }

    /// Whether the periodic check is due.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.next_at.is_some_and(|t| now >= t)
    }

    /// Remembers the config maps' values as this daemon just wrote them (start, reload,
    /// repair).
    pub(super) fn config_written(&mut self, maps: &dyn Maps) {
        for name in CONFIG_MAPS {
            if let Some(v) = maps.fd(name).ok().and_then(|fd| read_slot0(fd).ok()) {
                self.configs.insert(name, v);
            }
        }
        self.guard_allow = maps.fd(MAP_GUARD_ALLOW).ok().and_then(|fd| digest(fd).ok());
    }
}

/// The action of a finding about an object Palisade did not create.
const REPORTED: &str = "reported (not Palisade's: never touched)";

fn finding(object: impl Into<String>, problem: impl Into<String>) -> DriftFinding {
    DriftFinding {
        object: object.into(),
        problem: problem.into(),
        action: String::new(),
        repaired: false,
    }
}

fn outcome(f: &mut DriftFinding, result: Result<&str, String>) {
    match result {
        Ok(action) => {
            f.action = action.to_owned();
            f.repaired = true;
        }
        Err(e) => f.action = format!("repair failed: {e}"),
    }
}

impl Daemon {
    /// Runs the periodic check when it is due.
    pub(super) fn drift_tick(&mut self, registry: &mio::Registry, now: Instant) {
        if self.drift.due(now) {
            self.check_drift(registry);
        }
    }

    /// One check: compares, repairs, counts, logs. Returns the report.
    pub(super) fn check_drift(&mut self, registry: &mio::Registry) -> DriftStatus {
        let started = Instant::now();
        // Link changes the kernel already reported are taken first (network reconciliation,
        // without its debounce): the links of an interface that was deleted, re-created or
        // renamed are its business, not drift.
        self.settle_network();
        // The kernel side, with eBPF only (AF_PACKET capture puts nothing in the kernel).
        let mut findings = Vec::new();
        if let (Some(mut loaded), Some(pins)) = (self.loaded.take(), self.pins.take()) {
            findings.extend(self.check_links(&mut loaded, &pins));
            findings.extend(self.check_clsact(&mut loaded, &pins));
            findings.extend(self.check_map_pins(&loaded, &pins));
            findings.extend(self.check_dns_map(&loaded));
            findings.extend(self.check_ip_tries(&loaded));
            findings.extend(self.check_config_maps(&loaded));
            findings.extend(self.check_guard_allow(&loaded));
            findings.extend(self.check_foreign());
            self.loaded = Some(loaded);
            self.pins = Some(pins);
        }
        findings.extend(self.check_workers(registry));
        // A finding that is only reported (another tool's program) stays in every check's
        // list while it lasts, but is logged, sent as an event and counted once: when it
        // first appears.
        let previous: BTreeSet<&str> = self
            .drift
            .status
            .findings
            .iter()
            .filter(|f| f.action == REPORTED)
            .map(|f| f.object.as_str())
            .collect();
        let new: Vec<&DriftFinding> = findings
            .iter()
            .filter(|f| !(f.action == REPORTED && previous.contains(f.object.as_str())))
            .collect();
        for f in &new {
            tracing::warn!(
                object = %f.object,
                problem = %f.problem,
                action = %f.action,
                repaired = f.repaired,
                "drift"
            );
            // And as an event, for the SIEM that reads the event logs.
            let event = serde_json::json!({
                "timestamp": palisade_abi::time::eve_timestamp(crate::flows::wall_now_ns()),
                "event_type": "drift",
                "palisade": { "drift": f },
            });
            super::event_logs::write_own_event(
                self.opts.foreground,
                &self.opts.config.log_dir,
                self.log_gid,
                &event.to_string(),
            );
        }
        let d = &mut self.drift;
        d.status.checks += 1;
        d.status.last_check_unix = crate::policy::ip::unix_now();
        d.status.found_total += new.len() as u64;
        d.status.repaired_total += new.iter().filter(|f| f.repaired).count() as u64;
        d.status.findings = findings;
        if d.status.interval_s > 0 {
            d.next_at = Some(Instant::now() + Duration::from_secs(d.status.interval_s.into()));
        }
        tracing::debug!(
            elapsed_us = started.elapsed().as_micros() as u64,
            findings = d.status.findings.len(),
            "drift check"
        );
        d.status.clone()
    }

    /// Links: see [`crate::ebpf::attach::Links::drift`]; detached ones are attached again.
    fn check_links(&mut self, loaded: &mut Loaded, pins: &PinTree) -> Vec<DriftFinding> {
        let (mut findings, reattach) = self.links.drift();
        for ifname in reattach {
            let result = self.reattach(&ifname, loaded, pins);
            for f in findings
                .iter_mut()
                .filter(|f| f.object.starts_with(&format!("link {ifname}/")) && !f.repaired)
            {
                outcome(f, result.clone());
            }
        }
        findings
    }

    /// Attaches `ifname` again as at start (observer and IP policy hooks; live links are
    /// adopted from their pins) when it is still the interface the links were attached
    /// to; one deleted or re-created meanwhile is left to network reconciliation, which
    /// this schedules.
    fn reattach(
        &mut self,
        ifname: &str,
        loaded: &mut Loaded,
        pins: &PinTree,
    ) -> Result<&'static str, String> {
        let Some(link) = self.network.attached_link(ifname) else {
            self.network.schedule(Instant::now());
            return Ok("interface deleted or re-created: left to network reconciliation");
        };
        let mut kernel = super::network::Kernel {
            links: &mut self.links,
            loaded,
            pins,
            xdp_mode: self.opts.config.ip.xdp_mode,
        };
        let status = super::network::attach_one(&mut kernel, &link);
        let error = status.error.clone();
        self.interfaces
            .retain(|i| !(i.name == ifname && i.ifindex == link.index));
        self.interfaces.push(status);
        self.interfaces
            .sort_by(|a, b| a.name.cmp(&b.name).then(a.ifindex.cmp(&b.ifindex)));
        error.map_or(Ok("attached again"), Err)
    }

    /// Map pins: every pinned map and flow table shard still has its pin.
    fn check_map_pins(&mut self, loaded: &Loaded, pins: &PinTree) -> Vec<DriftFinding> {
        let dir = pins.maps();
        let mut findings = Vec::new();
        let shards = loaded
            .flow_shards
            .iter()
            .enumerate()
            .map(|(i, fd)| (format!("pal_flow_shard_{i}"), fd.as_fd()));
        let maps = PINNED_MAPS
            .iter()
            .filter_map(|&name| loaded.fd(name).ok().map(|fd| (name.to_owned(), fd)));
        for (name, fd) in maps.chain(shards) {
            let path = dir.join(&name);
            if path.exists() {
                continue;
            }
            let mut f = finding(
                format!("pin maps/{name}"),
                format!("{} removed", path.display()),
            );
            outcome(
                &mut f,
                pin(fd, &path)
                    .map(|()| "pinned again")
                    .map_err(|e| e.to_string()),
            );
            findings.push(f);
        }
        findings
    }

    /// The DNS rule map: the one this daemon swapped in, holding what the rule set says.
    fn check_dns_map(&mut self, loaded: &Loaded) -> Vec<DriftFinding> {
        let problem = match self.dns_kernel_problem(loaded) {
            Ok(None) => return Vec::new(),
            Ok(Some(p)) => p,
            Err(e) => format!("cannot read it: {e}"),
        };
        let mut f = finding(format!("map {MAP_DNS_POLICY}"), problem);
        let result = dns_kernel::apply_holding(loaded, &self.dns.rules, self.dns.block_action)
            .map(|(n, map)| {
                self.dns_kernel_rules = n;
                self.dns_map = Some(map);
                self.drift.config_written(loaded);
                "rule set written again"
            })
            .map_err(|e| crate::error_chain(&e));
        outcome(&mut f, result);
        vec![f]
    }

    fn dns_kernel_problem(&mut self, loaded: &Loaded) -> Result<Option<String>, String> {
        let outer = loaded.fd(MAP_DNS_POLICY).map_err(|e| e.to_string())?;
        let current =
            palisade_ebpf::dns_policy::current_inner_id(outer).map_err(|e| e.to_string())?;
        let held = self.dns_map.as_ref();
        let held_id = held
            .map(|m| map_facts(m).map(|f| f.id))
            .transpose()
            .map_err(|e| e.to_string())?;
        if current != held_id {
            return Ok(Some(format!(
                "slot holds map {current:?}, this daemon swapped in {held_id:?}"
            )));
        }
        let Some(map) = held else { return Ok(None) };
        let sha = self.dns.rules.sha256();
        let want = match self.drift.dns_digest {
            Some((s, d)) if s == sha => d,
            _ => {
                let d = dns_kernel::digest(&self.dns.rules);
                self.drift.dns_digest = Some((sha, d));
                d
            }
        };
        let live = digest(map).map_err(|e| e.to_string())?;
        Ok((live != want).then(|| {
            format!(
                "{} entries differ from the rule set's {} (added, removed or changed)",
                live.entries, want.entries
            )
        }))
    }

    /// The IP tries: see [`ip_kernel::drift`].
    fn check_ip_tries(&mut self, loaded: &Loaded) -> Vec<DriftFinding> {
        let problems = match ip_kernel::drift(loaded, &self.ip.tries, &self.ip.state) {
            Ok(p) if p.is_empty() => return Vec::new(),
            Ok(p) => p,
            Err(e) => vec![format!("cannot read them: {}", crate::error_chain(&e))],
        };
        let mut f = finding("map pal_ip4_policy/pal_ip6_policy", problems.join("; "));
        let result = ip_kernel::apply(
            loaded,
            &mut self.ip.tries,
            &self.ip.state,
            self.opts.config.ip.alerts_per_second,
        )
        .map(|counts| {
            self.ip.kernel = counts;
            self.drift.config_written(loaded);
            "rule set written again"
        })
        .map_err(|e| crate::error_chain(&e));
        outcome(&mut f, result);
        vec![f]
    }

    /// The config maps: the value this daemon last wrote.
    fn check_config_maps(&mut self, loaded: &Loaded) -> Vec<DriftFinding> {
        let mut findings = Vec::new();
        for (name, want) in &self.drift.configs {
            let Ok(fd) = loaded.fd(name) else {
                continue;
            };
            match read_slot0(fd) {
                Ok(live) if live == *want => {}
                Ok(_) => {
                    let mut f = finding(format!("map {name}"), "value changed");
                    outcome(
                        &mut f,
                        write_slot0(fd, want)
                            .map(|()| "written again")
                            .map_err(|e| e.to_string()),
                    );
                    findings.push(f);
                }
                Err(e) => findings.push(finding(
                    format!("map {name}"),
                    format!("cannot read it: {e}"),
                )),
            }
        }
        findings
    }

    /// The DHCP guard's allow-list: the entries this daemon wrote.
    fn check_guard_allow(&mut self, loaded: &Loaded) -> Vec<DriftFinding> {
        let Some(want) = self.drift.guard_allow else {
            return Vec::new();
        };
        let live = match loaded.fd(MAP_GUARD_ALLOW).map(digest) {
            Ok(Ok(d)) if d == want => return Vec::new(),
            Ok(Ok(d)) => format!("{} entries, not the {} written", d.entries, want.entries),
            Ok(Err(e)) => format!("cannot read it: {e}"),
            Err(e) => format!("cannot read it: {e}"),
        };
        let mut f = finding(format!("map {MAP_GUARD_ALLOW}"), live);
        let result = crate::policy::guard::apply(
            loaded,
            &self.opts.config.dhcp,
            self.features.enabled(crate::features::Feature::DhcpGuard),
        )
        .map(|()| {
            self.drift.config_written(loaded);
            "allow-list written again"
        })
        .map_err(|e| crate::error_chain(&e));
        outcome(&mut f, result);
        vec![f]
    }

    /// Programs of other tools at the TC hooks (TCX, or clsact without it) and the XDP hook
    /// of the interfaces Palisade watches: reported, never touched. One that runs before
    /// Palisade's observer sees (and may drop or rewrite) the packets first, which the
    /// finding says.
    fn check_foreign(&self) -> Vec<DriftFinding> {
        let mut findings = self.check_foreign_xdp();
        for iface in self.watched() {
            for direction in ["ingress", "egress"] {
                let ingress = direction == "ingress";
                for mode in ["tcx", "clsact"] {
                    let ours: BTreeSet<u32> = iface
                        .attachments
                        .iter()
                        .filter(|a| a.mode == mode && a.direction == direction)
                        .map(|a| a.program_id)
                        .collect();
                    if ours.is_empty() {
                        continue;
                    }
                    // Every program at the hook, in the order they run.
                    let listed = if mode == "tcx" {
                        palisade_ebpf::links::tcx_program_ids(iface.ifindex, ingress)
                            .map_err(|e| e.to_string())
                    } else {
                        crate::ebpf::clsact::filters(iface.ifindex, ingress)
                            .map(|f| f.into_iter().map(|f| f.prog_id).collect())
                            .map_err(|e| e.to_string())
                    };
                    let ids: Vec<u32> = match listed {
                        Ok(ids) => ids,
                        Err(e) => {
                            let mut f = finding(
                                format!("hook {}/{direction}", iface.name),
                                format!("cannot list its programs: {e}"),
                            );
                            f.action = "none".into();
                            findings.push(f);
                            continue;
                        }
                    };
                    let first_ours = ids.iter().position(|id| ours.contains(id));
                    for (at, id) in ids.iter().enumerate().filter(|(_, id)| !ours.contains(id)) {
                        let before = first_ours.is_some_and(|p| at < p);
                        let mut f = finding(
                            format!("foreign program {id} on {}/{direction}", iface.name),
                            format!(
                                "attached by another tool{}; runs {} Palisade's{}",
                                if mode == "clsact" {
                                    " (a clsact filter)"
                                } else {
                                    ""
                                },
                                if before { "before" } else { "after" },
                                if before {
                                    ", so Palisade sees only what it passes on"
                                } else {
                                    ""
                                }
                            ),
                        );
                        f.action = REPORTED.into();
                        findings.push(f);
                    }
                }
            }
        }
        findings
    }

    /// The interfaces with at least one of Palisade's programs attached (also those whose
    /// status is an error because another hook failed, such as the IP policy's TC egress
    /// hook without TCX).
    fn watched(&self) -> impl Iterator<Item = &InterfaceStatus> {
        self.interfaces.iter().filter(|i| !i.attachments.is_empty())
    }

    /// An XDP program on a watched interface that is not Palisade's (where the IP policy
    /// runs at TC, or its XDP program is not the one attached): XDP runs before every TC
    /// program, so it sees the packets before Palisade does.
    fn check_foreign_xdp(&self) -> Vec<DriftFinding> {
        let links = match crate::netlink::dump() {
            Ok(l) => l,
            Err(e) => {
                let mut f = finding("hooks xdp", format!("cannot list the interfaces: {e}"));
                f.action = "none".into();
                return vec![f];
            }
        };
        let mut findings = Vec::new();
        for iface in self.watched() {
            let Some(link) = links.iter().find(|l| l.index == iface.ifindex) else {
                continue;
            };
            let ours = iface
                .attachments
                .iter()
                .any(|a| a.mode.starts_with("xdp") && a.program_id == link.xdp_prog);
            if link.xdp_prog == 0 || ours {
                continue;
            }
            let mut f = finding(
                format!("foreign program {} on {}/xdp", link.xdp_prog, iface.name),
                "attached by another tool at XDP; runs before Palisade's programs, so Palisade \
                 sees only what it passes on",
            );
            f.action = REPORTED.into();
            findings.push(f);
        }
        findings
    }

    /// The observer's clsact filters (not links: nothing pinned tells they went): each one
    /// this daemon attached is still at its hook, else the interface is attached again.
    fn check_clsact(&mut self, loaded: &mut Loaded, pins: &PinTree) -> Vec<DriftFinding> {
        let mut findings = Vec::new();
        let mut reattach: BTreeSet<String> = BTreeSet::new();
        for iface in self.watched() {
            for a in iface.attachments.iter().filter(|a| a.mode == "clsact") {
                let present = crate::ebpf::clsact::filters(iface.ifindex, a.direction == "ingress")
                    .is_ok_and(|f| f.iter().any(|f| f.prog_id == a.program_id));
                if !present {
                    findings.push(finding(
                        format!("filter {}/{}", iface.name, a.direction),
                        "its clsact filter is gone (tc filter del, or the qdisc deleted)",
                    ));
                    reattach.insert(iface.name.clone());
                }
            }
        }
        for ifname in reattach {
            let result = self.reattach(&ifname, loaded, pins);
            for f in findings
                .iter_mut()
                .filter(|f| f.object.starts_with(&format!("filter {ifname}/")))
            {
                outcome(f, result.clone());
            }
        }
        findings
    }

    /// The rule set each policy worker reports applying.
    fn check_workers(&mut self, registry: &mio::Registry) -> Vec<DriftFinding> {
        let ours_dns = self.dns.rules.sha256();
        let ours_tls = self.tls.ruleset_in_force();
        let mut drifted: Vec<(WorkerKind, [u8; 32], [u8; 32])> = self
            .dns
            .worker_rulesets
            .iter()
            .filter(|(_, h)| **h != ours_dns)
            .map(|(k, h)| (*k, *h, ours_dns))
            .collect();
        if let Some(h) = self.tls.worker_ruleset.filter(|h| *h != ours_tls) {
            drifted.push((WorkerKind::Tls, h, ours_tls));
        }
        let mut findings = Vec::new();
        let previous = std::mem::take(&mut self.drift.resynced);
        for (kind, applied, ours) in drifted {
            let mut f = finding(
                format!("worker {}", kind.name()),
                format!(
                    "applies rule set {}, the daemon's is {}",
                    hex::encode(applied),
                    hex::encode(ours)
                ),
            );
            if previous.contains(&kind) {
                // Sent the policy again at the previous check and still another rule set.
                if let Some(slot) = self.slots.get_mut(&kind) {
                    slot.stop(registry, true);
                }
                self.dns.worker_rulesets.remove(&kind);
                if kind == WorkerKind::Tls {
                    self.tls.worker_ruleset = None;
                }
                outcome(
                    &mut f,
                    Ok("restarted (still another rule set after a resync)"),
                );
            } else {
                self.send_policy();
                self.drift.resynced.insert(kind);
                f.action = "policy sent again (resync); restarted if it persists".into();
            }
            findings.push(f);
        }
        findings
    }
}
