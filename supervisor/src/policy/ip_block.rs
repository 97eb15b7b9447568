//! The IP policy in force and its run-time transactions: `palisade block
//! add/remove/list`, the expiry of rules with a TTL, and moving the hooks
//! when `[ip] xdp_mode` changes. Each change keeps the rule file
//! (`<state_dir>/ip-rules.json`, [`super::ip`]) and the kernel maps
//! ([`super::ip_kernel`]) in step, rolling back what it already did when the
//! other half fails.

use std::{collections::HashMap, time::Duration};

use palisade_ebpf::ip_policy::Family;
use palisade_ipc::messages::{BlockAddRequest, InterfaceStatus, IpBlockList, IpRuleInfo};

use super::{
    ip::{IpState, RequestError, StateError, unix_now},
    ip_kernel::{self, KernelCounts, LiveTries},
};
use crate::ebpf::{
    attach::Links,
    loader::Loaded,
    maps::{KernelError, Maps},
    pin::PinTree,
    xdp::XdpMode,
};

/// Most rules one `block list` answer carries (it must fit a control frame).
const MAX_LISTED_IP_RULES: usize = 250;

/// Why a `block add` or `block remove` failed; the Display text is what the
/// operator sees (through `error_chain`).
#[derive(Debug, thiserror::Error)]
pub enum IpBlockError {
    /// The boot-time clock (TTLs are kernel deadlines) could not be read.
    #[error("CLOCK_BOOTTIME")]
    Clock(#[source] std::io::Error),
    /// The request is invalid (CIDR, TTL, comment, no such rule, full).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The rule file could not be written; nothing changed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The kernel map could not be written; nothing changed.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The kernel no longer has the rule, but the file still does.
    #[error(
        "removed from the kernel, but the rule file could not be written (the rule returns after a restart)"
    )]
    RemovedNotSaved(#[source] StateError),
    /// The rule just added is not there (a bug).
    #[error("rule vanished")]
    Vanished,
}

/// The IP policy in force: list and runtime rules, and how many prefixes
/// the kernel holds.
#[derive(Debug)]
pub struct IpPolicy {
    /// The rules.
    pub state: IpState,
    /// Prefixes in the kernel tries.
    pub kernel: KernelCounts,
    /// The tries in the kernel's slots, as this supervisor swapped them in.
    pub tries: LiveTries,
}

impl IpPolicy {
    /// `palisade block add`: the rule file first (a rule the kernel enforces
    /// is never one a restart forgets), then the kernel; a kernel failure
    /// restores the file.
    pub fn add(
        &mut self,
        maps: &dyn Maps,
        add: &BlockAddRequest,
    ) -> Result<IpRuleInfo, IpBlockError> {
        let boot = palisade_ebpf::ip_policy::boot_time_ns().map_err(IpBlockError::Clock)?;
        let before = self.state.runtime.clone();
        let (rule, change) = self.state.add(
            &add.cidr,
            add.ttl_secs.map(Duration::from_secs),
            add.comment.clone(),
            unix_now(),
            boot,
        )?;
        // File first: a rule the kernel enforces is never one a restart forgets.
        if let Err(e) = self.state.save() {
            self.state.runtime = before;
            return Err(e.into());
        }
        // Switched off (`ip-blocking`): kept for when it is switched on again.
        if self.state.enforcing {
            match ip_kernel::change(maps, &mut self.tries, change) {
                Ok(delta) => self.count_change(rule.prefix.family(), delta),
                Err(e) => {
                    self.state.runtime = before;
                    let _ = self.state.save();
                    return Err(e.into());
                }
            }
        }
        tracing::info!(cidr = %rule.prefix, id = rule.id, ttl_secs = ?add.ttl_secs, comment = ?rule.comment, "runtime IP rule added");
        let hits = ip_kernel::hits(maps).unwrap_or_default();
        self.rule_info(rule.id, &hits).ok_or(IpBlockError::Vanished)
    }

    /// `palisade block remove`: the kernel first (once the file no longer
    /// has the rule, the kernel must not either), then the file.
    pub fn remove(&mut self, maps: &dyn Maps, cidr: &str) -> Result<IpRuleInfo, IpBlockError> {
        let hits = ip_kernel::hits(maps).unwrap_or_default();
        let before = self.state.runtime.clone();
        let (rule, change) = self.state.remove(cidr)?;
        let info = IpRuleInfo {
            id: rule.id,
            cidr: rule.prefix.to_string(),
            source: "cli".into(),
            comment: rule.comment.clone(),
            expires_unix: rule.expires_unix,
            hits: hits.get(&rule.id).copied().unwrap_or(0),
            in_kernel: false,
        };
        // Kernel first: once the file no longer has it, the kernel must not either (which,
        // switched off, holds nothing).
        if self.state.enforcing {
            match ip_kernel::change(maps, &mut self.tries, change) {
                Ok(delta) => self.count_change(rule.prefix.family(), delta),
                Err(e) => {
                    self.state.runtime = before;
                    return Err(e.into());
                }
            }
        }
        self.state.save().map_err(IpBlockError::RemovedNotSaved)?;
        tracing::info!(cidr = %rule.prefix, id = rule.id, "runtime IP rule removed");
        Ok(info)
    }

    /// `palisade block list`: every runtime rule, then the list rules with
    /// the most hits, at most `limit` (and what one control frame holds).
    pub fn list(&self, maps: &dyn Maps, limit: u32) -> Result<IpBlockList, KernelError> {
        let hits = ip_kernel::hits(maps)?;
        // The answer must fit one control frame.
        let cap = (limit as usize).min(MAX_LISTED_IP_RULES);
        let mut rules: Vec<IpRuleInfo> = self
            .state
            .runtime
            .values()
            .filter_map(|r| self.rule_info(r.id, &hits))
            .take(cap)
            .collect();
        let mut listed: Vec<(u64, u32)> = self
            .state
            .lists
            .rules
            .iter()
            .map(|r| (hits.get(&r.id).copied().unwrap_or(0), r.id))
            .collect();
        let room = cap.saturating_sub(rules.len());
        if room > 0 && room < listed.len() {
            listed.select_nth_unstable_by(room - 1, |a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        }
        listed.truncate(room);
        listed.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        rules.extend(
            listed
                .into_iter()
                .filter_map(|(_, id)| self.rule_info(id, &hits)),
        );
        Ok(IpBlockList {
            list_rules: u32::try_from(self.state.lists.rules.len()).unwrap_or(u32::MAX),
            runtime_rules: u32::try_from(self.state.runtime.len()).unwrap_or(u32::MAX),
            kernel_v4: self.kernel.v4,
            kernel_v6: self.kernel.v6,
            rules,
        })
    }

    /// Removes expired runtime IP rules from the kernel and the rule file.
    pub fn expire(&mut self, maps: &dyn Maps) {
        let expired = self.state.expire(unix_now());
        if expired.is_empty() {
            return;
        }
        for (rule, change) in expired {
            if !self.state.enforcing {
                tracing::info!(cidr = %rule.prefix, id = rule.id, "runtime IP rule expired (ip-blocking off)");
                continue;
            }
            match ip_kernel::change(maps, &mut self.tries, change) {
                Ok(delta) => {
                    self.count_change(rule.prefix.family(), delta);
                    tracing::info!(cidr = %rule.prefix, id = rule.id, "runtime IP rule expired");
                }
                Err(e) => {
                    tracing::warn!(cidr = %rule.prefix, error = %crate::error_chain(&e), "removing an expired IP rule (the kernel ignores it anyway)")
                }
            }
        }
        if let Err(e) = self.state.save() {
            tracing::error!(error = %crate::error_chain(&e), "saving runtime IP rules");
        }
    }

    fn count_change(&mut self, family: Family, delta: i8) {
        let n = match family {
            Family::V4 => &mut self.kernel.v4,
            Family::V6 => &mut self.kernel.v6,
        };
        *n = n.saturating_add_signed(i32::from(delta));
    }

    fn rule_info(&self, id: u32, hits: &HashMap<u32, u64>) -> Option<IpRuleInfo> {
        let hits_of = |id| hits.get(&id).copied().unwrap_or(0);
        if let Some(r) = self.state.runtime_by_id(id) {
            return Some(IpRuleInfo {
                id,
                cidr: r.prefix.to_string(),
                source: "cli".into(),
                comment: r.comment.clone(),
                expires_unix: r.expires_unix,
                hits: hits_of(id),
                in_kernel: self.state.lists.get(&r.prefix).is_none(),
            });
        }
        let r = self.state.lists.by_id(id)?;
        Some(IpRuleInfo {
            id,
            cidr: r.prefix.to_string(),
            source: self.state.lists.source(r),
            comment: self.state.lists.comment(r).map(str::to_owned),
            expires_unix: None,
            hits: hits_of(id),
            in_kernel: true,
        })
    }
}

/// Attaches the IP policy's hooks for a new `xdp_mode` on every interface (old hooks
/// go once the new ones hold) and updates the attachments `status` shows.
pub fn reattach(
    links: &mut Links,
    loaded: &mut Loaded,
    pins: &PinTree,
    interfaces: &mut [InterfaceStatus],
    mode: XdpMode,
) {
    let ip_programs = [
        palisade_abi::PROG_XDP_BLOCK,
        palisade_abi::PROG_TC_BLOCK_INGRESS,
        palisade_abi::PROG_TC_BLOCK_EGRESS,
    ];
    for status in interfaces {
        if status.attachments.is_empty() {
            continue;
        }
        let (hooks, error) =
            links.attach_ip_policy(loaded, pins, &status.name, status.ifindex, mode);
        status
            .attachments
            .retain(|a| !ip_programs.contains(&a.program.as_str()));
        status.attachments.extend(hooks);
        let state = if error.is_none() { "attached" } else { "error" };
        if status.state != state {
            state.clone_into(&mut status.state);
            status.since = crate::policy::ip::unix_now();
        }
        status.error = error;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_the_strings_they_replace() {
        let io = || std::io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(
            crate::error_chain(&IpBlockError::Clock(io())),
            format!("CLOCK_BOOTTIME: {}", io())
        );
        assert_eq!(
            crate::error_chain(&IpBlockError::from(RequestError::Ttl)),
            RequestError::Ttl.to_string()
        );
        let state = || StateError::Io {
            op: "write",
            path: "/var/lib/palisade/ip-rules.json".into(),
            source: io(),
        };
        assert_eq!(
            crate::error_chain(&IpBlockError::from(state())),
            crate::error_chain(&state())
        );
        assert_eq!(
            crate::error_chain(&IpBlockError::RemovedNotSaved(state())),
            format!(
                "removed from the kernel, but the rule file could not be written (the rule returns after a restart): {}",
                crate::error_chain(&state())
            )
        );
    }

    use palisade_abi::MAP_IP4_POLICY;
    use palisade_ebpf::ip_policy as kernel_ip;

    use crate::{ebpf::maps::fake::FakeMaps, policy::ip::IpRuleSet};

    fn policy(dir: &std::path::Path) -> IpPolicy {
        let list = dir.join("list.txt");
        std::fs::write(&list, "192.0.2.0/24\n").expect("list");
        let state = IpState::open(IpRuleSet::load(&[list]).expect("valid"), dir).expect("open");
        IpPolicy {
            state,
            kernel: KernelCounts::default(),
            tries: LiveTries::default(),
        }
    }

    fn request(cidr: &str) -> BlockAddRequest {
        BlockAddRequest {
            cidr: cidr.into(),
            ttl_secs: None,
            comment: Some("test".into()),
        }
    }

    /// The IPv4 prefixes in the kernel trie.
    fn kernel_v4(maps: &FakeMaps) -> Vec<String> {
        let outer = maps.fd(MAP_IP4_POLICY).expect("outer");
        kernel_ip::open_current(outer)
            .expect("open")
            .map(|t| kernel_ip::read_rules(&t, Family::V4).expect("read"))
            .unwrap_or_default()
            .iter()
            .map(|(p, _)| p.to_string())
            .collect()
    }

    /// The runtime rules in the file, as a new daemon would read them.
    fn on_disk(dir: &std::path::Path) -> Vec<String> {
        let st = IpState::open(IpRuleSet::load(&[]).expect("empty"), dir).expect("reopen");
        st.runtime.values().map(|r| r.prefix.to_string()).collect()
    }

    #[test]
    fn add_and_remove_keep_file_and_kernel_in_step() {
        let dir = tempfile::tempdir().expect("tmp");
        let maps = FakeMaps::new();
        let mut ip = policy(dir.path());
        let info = ip.add(&maps, &request("203.0.113.9")).expect("add");
        assert_eq!(info.cidr, "203.0.113.9/32");
        assert!(info.in_kernel);
        assert_eq!(kernel_v4(&maps), ["203.0.113.9/32"]);
        assert_eq!(on_disk(dir.path()), ["203.0.113.9/32"]);
        assert_eq!(ip.kernel.v4, 1);
        let listed = ip.list(&maps, 10).expect("list");
        assert_eq!(listed.runtime_rules, 1);
        ip.remove(&maps, "203.0.113.9").expect("remove");
        assert!(kernel_v4(&maps).is_empty());
        assert!(on_disk(dir.path()).is_empty());
        assert_eq!(ip.kernel.v4, 0);
    }

    #[test]
    fn a_kernel_failure_on_add_leaves_neither_file_nor_state_changed() {
        let dir = tempfile::tempdir().expect("tmp");
        let maps = FakeMaps::new();
        let mut ip = policy(dir.path());
        ip.add(&maps, &request("203.0.113.1")).expect("add");
        // The next prefix goes into the live trie (pal_ip4_rules): that write fails.
        maps.kernel
            .fail_on("BPF_MAP_UPDATE_ELEM", kernel_ip::TRIE4_NAME, libc::ENOMEM);
        let error = ip
            .add(&maps, &request("203.0.113.2"))
            .expect_err("kernel refuses");
        assert!(matches!(error, IpBlockError::Kernel(_)), "{error:?}");
        assert_eq!(kernel_v4(&maps), ["203.0.113.1/32"]);
        assert_eq!(
            on_disk(dir.path()),
            ["203.0.113.1/32"],
            "the file is restored"
        );
        assert_eq!(ip.state.runtime.len(), 1);
        assert_eq!(ip.kernel.v4, 1);
    }

    #[test]
    fn a_file_failure_rolls_back_or_is_reported() {
        let dir = tempfile::tempdir().expect("tmp");
        let maps = FakeMaps::new();
        let mut ip = policy(dir.path());
        ip.add(&maps, &request("203.0.113.1")).expect("add");
        // The rule file cannot be written (its temporary path is taken by a directory).
        let tmp = dir.path().join("ip-rules.json.tmp");
        std::fs::create_dir(&tmp).expect("block the temporary file");
        // Add: nothing reaches the kernel when the file cannot take the rule.
        let error = ip
            .add(&maps, &request("203.0.113.2"))
            .expect_err("file refuses");
        assert!(matches!(error, IpBlockError::State(_)), "{error:?}");
        assert_eq!(kernel_v4(&maps), ["203.0.113.1/32"]);
        assert_eq!(ip.state.runtime.len(), 1);
        // Remove: the kernel stops enforcing, and the operator is told the file still has it.
        let error = ip.remove(&maps, "203.0.113.1").expect_err("file refuses");
        assert!(
            matches!(error, IpBlockError::RemovedNotSaved(_)),
            "{error:?}"
        );
        assert!(kernel_v4(&maps).is_empty());
        std::fs::remove_dir(&tmp).expect("unblock");
        assert_eq!(
            on_disk(dir.path()),
            ["203.0.113.1/32"],
            "returns after a restart, as said"
        );
    }

    #[test]
    fn a_failed_remove_keeps_the_rule() {
        let dir = tempfile::tempdir().expect("tmp");
        let maps = FakeMaps::new();
        let mut ip = policy(dir.path());
        ip.add(&maps, &request("203.0.113.1")).expect("add");
        maps.kernel
            .fail_on("BPF_MAP_DELETE_ELEM", kernel_ip::TRIE4_NAME, libc::EPERM);
        let error = ip.remove(&maps, "203.0.113.1").expect_err("kernel refuses");
        assert!(matches!(error, IpBlockError::Kernel(_)), "{error:?}");
        assert_eq!(kernel_v4(&maps), ["203.0.113.1/32"]);
        assert_eq!(on_disk(dir.path()), ["203.0.113.1/32"]);
        assert_eq!(ip.state.runtime.len(), 1);
    }
}
