//! Network reconciliation: the attachment set follows the configuration as links come,
//! go, come back and are renamed.
//!
//! Level-triggered: rtnetlink messages only update the daemon's view of the links
//! ([`Network::links`], by ifindex) and mark it changed; [`reconcile`] then compares the
//! interfaces the selection wants with those Palisade holds links for, and acts on the
//! difference. Changes are taken together [`DEBOUNCE`] after the first one, so a burst
//! (a link deleted and created again, a bridge and its ports, a link flapping) costs one
//! pass on its final state, and an interface is attached well within a second. A link
//! going down does not detach anything (TCX and XDP links stay through down and up), so
//! flapping carrier or admin state causes no churn at all. Lost messages (ENOBUFS) make the
//! next pass dump every link first.
//!
//! Per pass, in this order (names are unique at any instant, but a pass may see several
//! renames at once, such as two interfaces swapping names):
//! 1. links of interfaces that vanished (deleted, moved to another namespace) are let go
//!    and their pins removed: they are defunct;
//! 2. links of interfaces still there but no longer selected (renamed away) are detached
//!    and unpinned;
//! 3. interfaces renamed to a name still selected keep their links, pinned again under the
//!    new name (`links/<ifname>_<hook>`): every old pin goes first, then the new ones;
//! 4. the workers get the new ifindex -> name table, then new interfaces are attached
//!    exactly as at start (adopting pinned links, IP policy hooks included).

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    time::{Duration, Instant},
};

use palisade_ipc::messages::{InterfaceName, InterfaceStatus, NetworkStatus, SupervisorToWorker};

use crate::{
    ebpf::{attach::Links, loader::Loaded, pin::PinTree, xdp::XdpMode},
    interfaces::{Link, Selector},
    netlink::{Batch, Change, Monitor},
    policy::ip::unix_now,
};

/// Changes are reconciled together this long after the first of a burst.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// `gone` interfaces kept in `status` (the most recent).
const GONE_KEPT: usize = 32;
/// Names of vanished interfaces kept for the workers (records of them still queued, flows
/// on them that end later).
const GONE_NAMES_KEPT: usize = 256;

/// State: attached.
pub const ATTACHED: &str = "attached";
/// State: configured, not there yet.
pub const WAITING: &str = "waiting";
/// State: there, not (fully) attached.
pub const ERROR: &str = "error";
/// State: was attached, deleted or renamed away.
pub const GONE: &str = "gone";

/// The daemon's view of the links and of what it holds.
#[derive(Debug)]
pub(super) struct Network {
    pub(super) selector: Selector,
    monitor: Monitor,
    /// The kernel's links as last reported, by ifindex.
    links: BTreeMap<u32, Link>,
    /// Interfaces Palisade holds links for: ifindex -> the name they are pinned under.
    attached: BTreeMap<u32, String>,
    /// Interfaces whose attach failed entirely, with the link as it was then: retried when
    /// the kernel reports a change of that link.
    failed: BTreeMap<u32, Link>,
    /// Names of vanished interfaces, for the workers (newest last).
    gone_names: VecDeque<InterfaceName>,
    /// A change is waiting for its pass since then.
    pending: Option<Instant>,
    /// The next pass dumps every link first.
    resync: bool,
    /// The table the workers were sent last.
    sent: Vec<InterfaceName>,
    pub(super) counters: NetworkStatus,
}

/// What a pass does.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Attached interfaces that vanished: (ifindex, name).
    vanished: Vec<(u32, String)>,
    /// Attached interfaces still there but no longer selected: (ifindex, name).
    unwanted: Vec<(u32, String)>,
    /// Attached interfaces renamed to a selected name: (ifindex, old, new).
    renamed: Vec<(u32, String, String)>,
    /// Selected interfaces to attach.
    attach: Vec<Link>,
}

/// The difference between what `selector` wants of `links` and what is `attached`.
fn plan(
    selector: &Selector,
    links: &BTreeMap<u32, Link>,
    attached: &BTreeMap<u32, String>,
    failed: &BTreeMap<u32, Link>,
) -> Plan {
    let mut p = Plan::default();
    for (index, name) in attached {
        match links.get(index) {
            None => p.vanished.push((*index, name.clone())),
            Some(l) if !selector.keeps(l) => p.unwanted.push((*index, name.clone())),
            Some(l) if l.name != *name => p.renamed.push((*index, name.clone(), l.name.clone())),
            Some(_) => {}
        }
    }
    p.attach = links
        .values()
        .filter(|l| selector.wants(l))
        .filter(|l| !attached.contains_key(&l.index))
        .filter(|l| failed.get(&l.index) != Some(l))
        .cloned()
        .collect();
    p
}

/// The kernel objects a pass works on.
pub(super) struct Kernel<'a> {
    pub links: &'a mut Links,
    pub loaded: &'a mut Loaded,
    pub pins: &'a PinTree,
    pub xdp_mode: XdpMode,
}

impl std::fmt::Debug for Kernel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("pins", &self.pins.dir)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Subscribes to link events, then reads every link (in that order: a change between
    /// the two is seen as an event).
    pub(super) fn open(selector: Selector) -> std::io::Result<Self> {
        let monitor = Monitor::open()?;
        let links = crate::netlink::dump()?
            .into_iter()
            .map(|l| (l.index, l))
            .collect();
        Ok(Self {
            selector,
            monitor,
            links,
            attached: BTreeMap::new(),
            failed: BTreeMap::new(),
            gone_names: VecDeque::new(),
            pending: None,
            resync: false,
            sent: Vec::new(),
            counters: NetworkStatus {
                resyncs: 1,
                ..NetworkStatus::default()
            },
        })
    }

    /// The links as last read.
    pub(super) fn links(&self) -> Vec<Link> {
        self.links.values().cloned().collect()
    }

    /// The link Palisade holds links on under `name`, when the kernel still reports it
    /// so (same ifindex, same name).
    pub(super) fn attached_link(&self, name: &str) -> Option<Link> {
        self.attached
            .iter()
            .find(|(_, n)| *n == name)
            .and_then(|(i, _)| self.links.get(i))
            .filter(|l| l.name == name)
            .cloned()
    }

    /// Asks for a pass (after the debounce).
    pub(super) fn schedule(&mut self, now: Instant) {
        self.pending.get_or_insert(now);
    }

    /// Whether an interface of that name is there and selected.
    pub(super) fn selects(&self, name: &str) -> bool {
        self.links
            .values()
            .any(|l| l.name == name && self.selector.keeps(l))
    }

    /// The monitor's descriptor, for mio.
    pub(super) fn raw_fd(&self) -> std::os::fd::RawFd {
        self.monitor.raw_fd()
    }

    /// When the next pass is due, if one is.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.pending.map(|t| t + DEBOUNCE)
    }

    /// Reads the monitor: updates the view, schedules a pass.
    pub(super) fn on_readable(&mut self, now: Instant) {
        let batch = self.monitor.read();
        self.apply(batch, now);
    }

    fn apply(&mut self, batch: Batch, now: Instant) {
        if batch.spoofed > 0 {
            tracing::warn!(
                datagrams = batch.spoofed,
                "rtnetlink: ignored link messages not sent by the kernel"
            );
        }
        if batch.is_empty() {
            return;
        }
        self.counters.link_events += batch.changes.len() as u64;
        for change in batch.changes {
            match change {
                Change::New(link) => {
                    tracing::debug!(?link, "RTM_NEWLINK");
                    self.links.insert(link.index, link);
                }
                Change::Deleted(index) => {
                    tracing::debug!(index, "RTM_DELLINK");
                    self.links.remove(&index);
                }
            }
        }
        self.resync |= batch.overrun;
        self.pending.get_or_insert(now);
    }

    /// The ifindex -> name table for the workers: attached interfaces, then those about to
    /// be, then recently vanished ones (their records may still be queued).
    fn names(&self, extra: &[Link]) -> Vec<InterfaceName> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let current = self
            .attached
            .iter()
            .map(|(i, n)| (*i, n.clone()))
            .chain(extra.iter().map(|l| (l.index, l.name.clone())));
        for (ifindex, name) in current {
            if seen.insert(ifindex) {
                out.push(InterfaceName { ifindex, name });
            }
        }
        for g in self.gone_names.iter().rev() {
            if seen.insert(g.ifindex) {
                out.push(g.clone());
            }
        }
        out
    }

    fn remember_gone(&mut self, ifindex: u32, name: &str) {
        self.gone_names.retain(|g| g.ifindex != ifindex);
        self.gone_names.push_back(InterfaceName {
            ifindex,
            name: name.to_owned(),
        });
        while self.gone_names.len() > GONE_NAMES_KEPT {
            self.gone_names.pop_front();
        }
    }

    /// A new selection (reload): a pass follows, attached interfaces it no longer selects
    /// are detached, and interfaces whose attach failed get another try.
    pub(super) fn set_selector(&mut self, selector: Selector, now: Instant) {
        self.selector = selector;
        self.failed.clear();
        self.pending.get_or_insert(now);
    }

    /// Whether a pass is due at `now`.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    /// One pass (see the module documentation). `send_names` gets the workers' table when
    /// it changed (before anything is attached).
    pub(super) fn reconcile(
        &mut self,
        k: &mut Kernel<'_>,
        statuses: &mut Vec<InterfaceStatus>,
        send_names: &mut dyn FnMut(&[InterfaceName]),
    ) {
        self.pending = None;
        if self.resync {
            match crate::netlink::dump() {
                Ok(all) => {
                    self.links = all.into_iter().map(|l| (l.index, l)).collect();
                    self.resync = false;
                    self.counters.resyncs += 1;
                    // Failed interfaces get another try after a resync.
                    self.failed.clear();
                }
                Err(e) => {
                    tracing::error!(error = %e, "rtnetlink: dumping the links failed; trying again");
                    self.pending = Some(Instant::now());
                    return;
                }
            }
        }
        // A link the kernel reported differently since its attach failed gets another try.
        self.failed.retain(|i, l| self.links.get(i) == Some(l));
        let p = plan(&self.selector, &self.links, &self.attached, &self.failed);
        let now = unix_now();

        for (index, name) in &p.vanished {
            let removed = k.links.release(k.pins, name, false);
            tracing::info!(interface = %name, ifindex = index, pins_removed = removed.len(), "interface gone: its links were released");
            self.attached.remove(index);
            self.remember_gone(*index, name);
            self.counters.released += 1;
            set_gone(statuses, name, *index, now);
        }
        for (index, name) in &p.unwanted {
            let removed = k.links.release(k.pins, name, true);
            let now_named = self.links.get(index).map(|l| l.name.clone());
            tracing::info!(interface = %name, now_named = ?now_named, pins_removed = removed.len(), "interface no longer selected (renamed away): detached");
            self.attached.remove(index);
            self.remember_gone(*index, name);
            self.counters.released += 1;
            set_gone(statuses, name, *index, now);
        }
        let lifted: Vec<_> = p
            .renamed
            .iter()
            .map(|(index, old, new)| (*index, old, new, k.links.lift(old)))
            .collect();
        for (index, old, new, held) in lifted {
            let errors = k.links.place(k.pins, new, held);
            tracing::info!(from = %old, to = %new, ifindex = index, "interface renamed: links pinned under the new name");
            self.attached.insert(index, new.clone());
            self.counters.renamed += 1;
            let mut entry = statuses
                .iter()
                .position(|s| s.name == *old && s.ifindex == index)
                .map(|i| statuses.remove(i))
                .unwrap_or_else(|| InterfaceStatus {
                    name: old.clone(),
                    ifindex: index,
                    attachments: Vec::new(),
                    error: None,
                    state: ATTACHED.into(),
                    since: now,
                });
            entry.name = new.clone();
            entry.since = now;
            if !errors.is_empty() {
                entry.attachments.clear();
                entry.error = Some(errors.join("; "));
                entry.state = ERROR.into();
                self.attached.remove(&index);
            }
            statuses.retain(|s| s.name != *new);
            statuses.push(entry);
        }

        // The workers learn the names before the first record of a new interface exists.
        let names = self.names(&p.attach);
        if names != self.sent {
            send_names(&names);
            self.sent = names;
        }
        for link in &p.attach {
            let status = attach_one(k, link);
            let attached_any = !status.attachments.is_empty();
            tracing::info!(
                interface = %link.name,
                ifindex = link.index,
                hooks = status.attachments.len(),
                error = status.error.as_deref().unwrap_or(""),
                "interface attached"
            );
            if attached_any {
                self.attached.insert(link.index, link.name.clone());
                self.counters.attached += 1;
            } else {
                self.failed.insert(link.index, link.clone());
            }
            statuses.retain(|s| s.name != link.name);
            statuses.push(InterfaceStatus {
                since: now,
                ..status
            });
        }
        // A failed attach leaves a name in the workers' table that they will not see in a
        // record; harmless, and corrected with the next change.
        self.fill_in(statuses, now);
    }

    /// Entries for what is configured but not there (`waiting`), configured names that are
    /// not Ethernet (`error`), the cap on `gone` entries, and a stable order.
    fn fill_in(&self, statuses: &mut Vec<InterfaceStatus>, now: u64) {
        // Waiting entries are recomputed from scratch, keeping their `since`.
        let was_waiting: BTreeMap<String, u64> = statuses
            .iter()
            .filter(|s| s.state == WAITING)
            .map(|s| (s.name.clone(), s.since))
            .collect();
        let waiting = |name: &str| waiting(name, was_waiting.get(name).copied().unwrap_or(now));
        statuses.retain(|s| s.state != WAITING);
        for name in self.selector.exact() {
            if let Some(l) = self.links.values().find(|l| l.name == name) {
                if !l.is_ethernet() && !statuses.iter().any(|s| s.name == name) {
                    statuses.push(InterfaceStatus {
                        name: name.to_owned(),
                        ifindex: l.index,
                        attachments: Vec::new(),
                        error: Some(format!(
                            "not an Ethernet interface (link type {}); Palisade's programs parse Ethernet frames",
                            l.hatype
                        )),
                        state: ERROR.into(),
                        since: now,
                    });
                }
                continue;
            }
            statuses.retain(|s| s.name != name);
            statuses.push(waiting(name));
        }
        for glob in self.selector.globs() {
            // Waiting until an interface it matches is selected (there, Ethernet, up).
            if !self
                .links
                .values()
                .any(|l| self.selector.wants(l) && crate::interfaces::glob_match(glob, &l.name))
            {
                statuses.push(waiting(glob));
            }
        }
        // An error entry for a link that went or stopped qualifying without ever being
        // attached goes.
        statuses.retain(|s| {
            s.state != ERROR
                || self.attached.contains_key(&s.ifindex)
                || self.failed.contains_key(&s.ifindex)
                || self.links.get(&s.ifindex).is_some_and(|l| l.name == s.name)
        });
        // A gone entry goes when its name is back, and beyond the most recent ones.
        let live: BTreeSet<String> = statuses
            .iter()
            .filter(|s| s.state != GONE)
            .map(|s| s.name.clone())
            .collect();
        statuses.retain(|s| s.state != GONE || !live.contains(&s.name));
        let mut gone: Vec<u64> = statuses
            .iter()
            .filter(|s| s.state == GONE)
            .map(|s| s.since)
            .collect();
        if gone.len() > GONE_KEPT {
            gone.sort_unstable();
            let cut = gone.get(gone.len() - GONE_KEPT).copied().unwrap_or(0);
            statuses.retain(|s| s.state != GONE || s.since >= cut);
        }
        statuses.sort_by(|a, b| a.name.cmp(&b.name).then(a.ifindex.cmp(&b.ifindex)));
    }
}

impl super::Daemon {
    /// A pass of network reconciliation, if one is due.
    pub(super) fn reconcile_network(&mut self, now: Instant) {
        if self.network.due(now) {
            self.network_pass();
        }
    }

    /// Reads what the link monitor has queued and, if anything changed, runs a pass now
    /// (no debounce): for drift checks, which must not take a deleted interface's defunct
    /// links for drift.
    pub(super) fn settle_network(&mut self) {
        let now = Instant::now();
        self.network.on_readable(now);
        if self.network.deadline().is_some() {
            self.network_pass();
        }
    }

    /// One pass; the workers get the new name table through their slots (and keep it for
    /// their next start).
    fn network_pass(&mut self) {
        let resources = &mut self.resources;
        let slots = &self.slots;
        let mut send = |names: &[InterfaceName]| {
            for (kind, res) in resources.iter_mut() {
                res.interfaces = names.to_vec();
                if let Some(slot) = slots.get(kind) {
                    slot.send(&SupervisorToWorker::Interfaces(names.to_vec()));
                }
            }
        };
        // AF_PACKET capture watches the interfaces selected at start (its sockets are bound
        // to them): nothing to attach or release here.
        let (Some(loaded), Some(pins)) = (&mut self.loaded, &self.pins) else {
            self.network.pending = None;
            return;
        };
        let mut kernel = Kernel {
            links: &mut self.links,
            loaded,
            pins,
            xdp_mode: self.opts.config.ip.xdp_mode,
        };
        self.network
            .reconcile(&mut kernel, &mut self.interfaces, &mut send);
    }
}

fn waiting(name: &str, now: u64) -> InterfaceStatus {
    InterfaceStatus {
        name: name.to_owned(),
        ifindex: 0,
        attachments: Vec::new(),
        error: None,
        state: WAITING.into(),
        since: now,
    }
}

fn set_gone(statuses: &mut Vec<InterfaceStatus>, name: &str, ifindex: u32, now: u64) {
    statuses.retain(|s| !(s.name == name && s.state == GONE));
    match statuses
        .iter_mut()
        .find(|s| s.name == name && s.ifindex == ifindex)
    {
        Some(s) => {
            s.attachments.clear();
            s.error = None;
            s.state = GONE.into();
            s.since = now;
        }
        None => statuses.push(InterfaceStatus {
            name: name.to_owned(),
            ifindex,
            attachments: Vec::new(),
            error: None,
            state: GONE.into(),
            since: now,
        }),
    }
}

/// Attaches (or adopts) the observer's and the IP policy's hooks on one interface, as at
/// start.
pub(super) fn attach_one(k: &mut Kernel<'_>, link: &Link) -> InterfaceStatus {
    let mut status = k
        .links
        .attach_interface(k.loaded, k.pins, &link.name, link.index);
    let (ip_hooks, error) = k
        .links
        .attach_ip_policy(k.loaded, k.pins, &link.name, link.index, k.xdp_mode);
    status.attachments.extend(ip_hooks);
    if let Some(e) = error {
        status.error = Some(status.error.map_or(e.clone(), |old| format!("{old}; {e}")));
    }
    status.state = if status.error.is_none() {
        ATTACHED
    } else {
        ERROR
    }
    .into();
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, up: bool) -> Link {
        Link {
            index,
            name: name.into(),
            hatype: crate::interfaces::ARPHRD_ETHER,
            up,
            loopback: false,
            xdp_prog: 0,
        }
    }

    fn view(links: &[Link]) -> BTreeMap<u32, Link> {
        links.iter().map(|l| (l.index, l.clone())).collect()
    }

    #[test]
    fn messages_apply_in_order() {
        let mut net = Network::open(Selector::default()).expect("rtnetlink");
        let now = Instant::now();
        // Moved out of the namespace and back with the same ifindex, within one read.
        net.apply(
            Batch {
                changes: vec![
                    Change::New(link(900, "eth9", true)),
                    Change::Deleted(900),
                    Change::New(link(900, "eth9", false)),
                    Change::Deleted(901),
                ],
                ..Batch::default()
            },
            now,
        );
        assert_eq!(net.links.get(&900), Some(&link(900, "eth9", false)));
        assert_eq!(net.deadline(), Some(now + DEBOUNCE));
        assert_eq!(net.counters.link_events, 4);
        // Lost messages: the next pass re-reads every link.
        net.apply(
            Batch {
                overrun: true,
                ..Batch::default()
            },
            now,
        );
        assert!(net.resync);
    }

    #[test]
    fn plans_follow_the_links() {
        let sel = Selector::new(&["eth*".into(), "wan0".into()]);
        let none = BTreeMap::new();
        // Start: every selected link, up for the pattern, any state for the exact name.
        let links = view(&[
            link(2, "eth0", true),
            link(3, "eth1", false),
            link(4, "wan0", false),
            link(5, "lan0", true),
        ]);
        let p = plan(&sel, &links, &BTreeMap::new(), &none);
        let names: Vec<&str> = p.attach.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["eth0", "wan0"]);

        let attached: BTreeMap<u32, String> =
            [(2, "eth0".into()), (4, "wan0".into()), (9, "eth9".into())].into();
        // eth0 renamed to eth5 (still selected), wan0 renamed to lan9 (away), eth9 deleted,
        // eth1 came up, eth0 recreated as a new link under the old name.
        let links = view(&[
            link(2, "eth5", true),
            link(3, "eth1", true),
            link(4, "lan9", true),
            link(10, "eth0", true),
        ]);
        let p = plan(&sel, &links, &attached, &none);
        assert_eq!(p.vanished, [(9, "eth9".to_owned())]);
        assert_eq!(p.unwanted, [(4, "wan0".to_owned())]);
        assert_eq!(p.renamed, [(2, "eth0".to_owned(), "eth5".to_owned())]);
        let names: Vec<&str> = p.attach.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["eth1", "eth0"]);

        // A link whose attach failed is retried only once it changed.
        let failed = view(&[link(3, "eth1", true)]);
        let p = plan(&sel, &links, &attached, &failed);
        assert!(p.attach.iter().all(|l| l.index != 3));
        // Going down changes nothing for an attached interface.
        let down = view(&[link(2, "eth0", false), link(4, "wan0", false)]);
        let attached: BTreeMap<u32, String> = [(2, "eth0".into()), (4, "wan0".into())].into();
        assert_eq!(plan(&sel, &down, &attached, &none), Plan::default());
    }
}
