//! Attaching the TC programs to interfaces, and adopting attachments a
//! previous run pinned (invariant 6: a restart never leaves an unfiltered
//! window and never attaches twice).

use std::{
    io,
    path::{Path, PathBuf},
};

use aya::programs::{
    SchedClassifier, TcAttachType,
    links::{FdLink, PinnedLink},
    tc,
};
use palisade_ipc::messages::{Attachment, DriftFinding, InterfaceStatus};

use super::{loader::Loaded, pin::PinTree};

/// `tc_attach`: how the TC observer is attached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TcAttach {
    /// TCX links on Linux 6.6 and later, clsact filters before.
    #[default]
    Auto,
    /// TCX links (Linux 6.6 and later).
    Tcx,
    /// clsact filters over netlink, whatever the kernel (beside tools that manage clsact).
    Clsact,
}

impl TcAttach {
    /// Parses the configuration's spelling.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "tcx" => Some(Self::Tcx),
            "clsact" => Some(Self::Clsact),
            _ => None,
        }
    }
}

/// The choice in force, set once at start ([`set_tc_attach`]).
static TC_ATTACH: std::sync::OnceLock<TcAttach> = std::sync::OnceLock::new();

/// Sets the daemon's choice, at start (a reload does not change it).
pub fn set_tc_attach(choice: TcAttach) {
    let _ = TC_ATTACH.set(choice);
}

/// Whether TC programs are attached as TCX links (else clsact filters): `tc_attach`, and
/// for `auto` the kernel (TCX needs Linux 6.6).
pub(super) fn has_tcx() -> bool {
    match TC_ATTACH.get().copied().unwrap_or_default() {
        TcAttach::Tcx => true,
        TcAttach::Clsact => false,
        TcAttach::Auto => aya::util::KernelVersion::current()
            .map(|v| v.code() >= 0x06_06_00)
            .unwrap_or(false),
    }
}

/// Attachment errors.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The program handle is missing (a bug).
    #[error("program {name} not loaded")]
    Program { name: &'static str },
    /// Attaching failed (BPF_LINK_CREATE for TCX, netlink for clsact).
    #[error("attaching {program} to {ifname} {direction} (BPF_LINK_CREATE / netlink)")]
    Attach {
        program: &'static str,
        ifname: String,
        direction: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// The TCX link is not an FD link (a bug).
    #[error("link on {ifname} is not an FD link")]
    Link {
        ifname: String,
        #[source]
        source: aya::programs::links::LinkError,
    },
    /// Pinning the link failed (BPF_OBJ_PIN).
    #[error("pinning link {path} (BPF_OBJ_PIN)")]
    Pin {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// One hook.
#[derive(Debug, Clone, Copy)]
pub struct Hook {
    /// `ingress` / `egress`.
    pub direction: &'static str,
    /// Program name.
    pub program: &'static str,
    pub(super) attach_type: TcAttachType,
}

/// Both hooks every interface gets.
pub const HOOKS: [Hook; 2] = [
    Hook {
        direction: "ingress",
        program: palisade_abi::PROG_TC_INGRESS,
        attach_type: TcAttachType::Ingress,
    },
    Hook {
        direction: "egress",
        program: palisade_abi::PROG_TC_EGRESS,
        attach_type: TcAttachType::Egress,
    },
];

/// Links this process holds: pinned ones (kernel keeps them attached after
/// we exit) and, on pre-TCX kernels, netlink ones.
#[derive(Debug, Default)]
pub struct Links {
    /// (interface, direction, pin path, link).
    pub(super) pinned: Vec<(String, &'static str, PathBuf, FdLink)>,
}

/// Tries to adopt a pinned TCX link: valid when it is still attached to this interface
/// (a link of a deleted-and-recreated interface is defunct and reports ifindex 0). Asks
/// the link itself (`BPF_OBJ_GET_INFO_BY_FD`) rather than the hook's list of programs,
/// which names them by id: opening a program by id needs CAP_SYS_ADMIN, which the unit
/// does not grant.
pub(super) fn adopt(path: &Path, ifindex: u32, hook: &Hook) -> Option<(FdLink, Attachment)> {
    let attached_here = palisade_ebpf::links::open_pinned(path)
        .and_then(palisade_ebpf::links::ifindex)
        .ok()?
        == ifindex;
    if !attached_here || ifindex == 0 {
        return None;
    }
    let fd_link = FdLink::from(PinnedLink::from_pin(path).ok()?);
    let info = fd_link.info().ok()?;
    let attachment = Attachment {
        direction: hook.direction.to_owned(),
        program: hook.program.to_owned(),
        program_id: info.program_id(),
        link_id: info.id(),
        mode: "tcx".to_owned(),
        adopted: true,
    };
    Some((fd_link, attachment))
}

impl Links {
    /// Pins a new link at `path` (under a staging name first, then renamed, so a crash never
    /// leaves a half-written pin) and keeps it as `(ifname, name)`.
    pub(super) fn pin(
        &mut self,
        ifname: &str,
        name: &'static str,
        path: &Path,
        link: FdLink,
    ) -> io::Result<()> {
        let staged = PinTree::staging(path);
        let pinned = link
            .pin(&staged)
            .map_err(|e| io::Error::other(e.to_string()))?;
        PinTree::commit(&staged, path).map_err(|e| io::Error::other(e.to_string()))?;
        self.pinned.push((
            ifname.to_owned(),
            name,
            path.to_owned(),
            FdLink::from(pinned),
        ));
        Ok(())
    }

    /// Attaches (or adopts) both hooks on one interface.
    pub fn attach_interface(
        &mut self,
        loaded: &mut Loaded,
        pins: &PinTree,
        ifname: &str,
        ifindex: u32,
    ) -> InterfaceStatus {
        let mut status = InterfaceStatus {
            name: ifname.to_owned(),
            ifindex,
            attachments: Vec::new(),
            error: None,
            state: "attached".to_owned(),
            since: crate::policy::ip::unix_now(),
        };
        for hook in &HOOKS {
            match self.attach_hook(loaded, pins, ifname, ifindex, hook) {
                Ok(a) => status.attachments.push(a),
                Err(e) => {
                    let msg = crate::error_chain(&e);
                    tracing::error!(interface = ifname, direction = hook.direction, error = %msg, "attach failed");
                    status.error = Some(msg);
                }
            }
        }
        status
    }

    fn attach_hook(
        &mut self,
        loaded: &mut Loaded,
        pins: &PinTree,
        ifname: &str,
        ifindex: u32,
        hook: &Hook,
    ) -> Result<Attachment, AttachError> {
        let path = pins.link(ifname, hook.direction);
        let prog: &mut SchedClassifier = loaded
            .ebpf
            .program_mut(hook.program)
            .and_then(|p| p.try_into().ok())
            .ok_or(AttachError::Program { name: hook.program })?;
        let attach_err = |source| AttachError::Attach {
            program: hook.program,
            ifname: ifname.to_owned(),
            direction: hook.direction,
            source: Box::new(source),
        };
        if has_tcx() && path.exists() {
            if let Some((link, mut attachment)) = adopt(&path, ifindex, hook) {
                // The link stays: never detached, never attached twice. Its program becomes
                // the one this supervisor loaded, swapped in place (bpf_link_update, atomic):
                // whether the pinned one runs the same code cannot be told without
                // CAP_SYS_ADMIN (the kernel opens a program by id only with it), and after
                // an upgrade it does not. Same maps either way: they are pinned.
                let ours = prog.info().map(|i| i.id()).unwrap_or(0);
                if attachment.program_id == ours {
                    // Adopted earlier by this very process (the interface came back).
                    self.pinned
                        .push((ifname.to_owned(), hook.direction, path, link));
                    return Ok(attachment);
                }
                let tc_link =
                    aya::programs::tc::SchedClassifierLink::try_from(link).map_err(|source| {
                        AttachError::Link {
                            ifname: ifname.to_owned(),
                            source,
                        }
                    })?;
                let id = prog.attach_to_link(tc_link).map_err(attach_err)?;
                let link = prog.take_link(id).map_err(attach_err)?;
                let fd_link: FdLink = link.try_into().map_err(|source| AttachError::Link {
                    ifname: ifname.to_owned(),
                    source,
                })?;
                let old = attachment.program_id;
                attachment.program_id = ours;
                tracing::info!(
                    interface = ifname,
                    direction = hook.direction,
                    link = attachment.link_id,
                    old_program = old,
                    new_program = ours,
                    "adopted pinned link, replaced the program in place"
                );
                self.pinned
                    .push((ifname.to_owned(), hook.direction, path, fd_link));
                return Ok(attachment);
            }
            tracing::warn!(pin = %path.display(), "pinned link is stale (interface recreated?); replacing it");
            let _ = std::fs::remove_file(&path);
        }
        if !has_tcx() {
            // clsact: not a link, not pinnable (super::clsact).
            let program_id = super::clsact::attach(
                prog,
                ifname,
                ifindex,
                hook.direction == "ingress",
                hook.program,
            )
            .map_err(attach_err)?;
            return Ok(Attachment {
                direction: hook.direction.to_owned(),
                program: hook.program.to_owned(),
                program_id,
                link_id: 0,
                mode: "clsact".to_owned(),
                adopted: false,
            });
        }
        let id = prog
            .attach_with_options(
                ifname,
                hook.attach_type,
                tc::TcAttachOptions::TcxOrder(aya::programs::LinkOrder::default()),
            )
            .map_err(attach_err)?;
        let program_id = prog.info().map(|i| i.id()).unwrap_or(0);
        let link = prog.take_link(id).map_err(attach_err)?;
        let fd_link: FdLink = link.try_into().map_err(|source| AttachError::Link {
            ifname: ifname.to_owned(),
            source,
        })?;
        let link_id = fd_link.info().map(|i| i.id()).unwrap_or(0);
        self.pin(ifname, hook.direction, &path, fd_link)
            .map_err(|source| AttachError::Pin {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Attachment {
            direction: hook.direction.to_owned(),
            program: hook.program.to_owned(),
            program_id,
            link_id,
            mode: "tcx".to_owned(),
            adopted: false,
        })
    }

    /// Every pin name an interface can have: the observer's directions and the IP
    /// policy's hooks.
    fn pin_names() -> impl Iterator<Item = &'static str> {
        HOOKS
            .iter()
            .map(|h| h.direction)
            .chain(super::xdp::IpHook::ALL.iter().map(|h| h.pin_name()))
    }

    /// Whether this process holds a link on `ifname`.
    pub fn holds(&self, ifname: &str) -> bool {
        self.pinned.iter().any(|(i, ..)| i == ifname)
    }

    /// Lets go of every link of `ifname` and removes its pins (also pins of hooks this
    /// process does not hold, such as a stale one of another XDP mode): detached first
    /// when `detach` (the interface is still there, renamed away), else only unpinned (the
    /// interface is gone and its links with it: they are defunct). Only pins below this
    /// ABI's `links/` directory, named after the interface, are touched. Returns the pins
    /// removed.
    pub fn release(&mut self, pins: &PinTree, ifname: &str, detach: bool) -> Vec<PathBuf> {
        self.pinned.retain(|(i, ..)| i != ifname);
        let mut removed = Vec::new();
        for name in Self::pin_names() {
            let path = pins.link(ifname, name);
            let done = if detach {
                super::pin::unpin_link(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match done {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::error!(pin = %path.display(), error = %e, "removing a link pin"),
            }
        }
        removed
    }

    /// First half of following a rename: removes the pins of `ifname` but keeps the links
    /// (this process holds them, so they stay attached), to be pinned again under the new
    /// name by [`Links::place`]. Two halves, so that interfaces swapping names never find
    /// each other's pins in the way.
    pub fn lift(&mut self, ifname: &str) -> Vec<(&'static str, FdLink)> {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pinned)
            .into_iter()
            .partition(|(i, ..)| i == ifname);
        self.pinned = rest;
        mine.into_iter()
            .map(|(_, name, path, link)| {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(pin = %path.display(), error = %e, "removing the pin of a renamed interface");
                }
                (name, link)
            })
            .collect()
    }

    /// Second half of following a rename: pins `lifted` links under `ifname`. A pin already
    /// there (a previous interface of that name, long gone) is replaced. Returns the errors.
    pub fn place(
        &mut self,
        pins: &PinTree,
        ifname: &str,
        lifted: Vec<(&'static str, FdLink)>,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        for (name, link) in lifted {
            let path = pins.link(ifname, name);
            match super::pin::unpin_link(&path) {
                Ok(()) => {
                    tracing::warn!(pin = %path.display(), "replaced a stale pin of an earlier interface of this name")
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(pin = %path.display(), error = %e, "removing a stale pin"),
            }
            if let Err(e) = self.pin(ifname, name, &path, link) {
                // The link is gone with its descriptor: the hook is detached.
                tracing::error!(pin = %path.display(), error = %e, "pinning the link of a renamed interface");
                errors.push(format!("pinning {}: {e}", path.display()));
            }
        }
        errors
    }

    /// The interface a link pin is for (`links/<ifname>_<hook>`, `%` for `.`), `None` for
    /// a name this layout does not make.
    fn pin_owner(file_name: &str) -> Option<String> {
        // Longest hook names first: `_block_ingress` also ends in `_ingress`.
        let mut hooks: Vec<&str> = Self::pin_names().collect();
        hooks.sort_by_key(|h| std::cmp::Reverse(h.len()));
        hooks.into_iter().find_map(|h| {
            file_name
                .strip_suffix(h)
                .and_then(|rest| rest.strip_suffix('_'))
                .filter(|ifname| !ifname.is_empty())
                .map(|ifname| ifname.replace('%', "."))
        })
    }

    /// Removes the link pins of interfaces this process holds no link on (after the
    /// start's attach) and `selected` does not name: links of interfaces deleted while no
    /// supervisor ran (defunct: the pin goes) and links a previous run attached to
    /// interfaces the configuration no longer selects (detached, then unpinned). A selected
    /// interface whose attach failed keeps what a previous run left enforcing. Only this
    /// ABI's `links/` directory, and only names of its layout; staging names are left to
    /// [`PinTree::open`]. Returns the pins removed, with whether their link was attached.
    pub fn sweep_unheld(
        &self,
        pins: &PinTree,
        selected: impl Fn(&str) -> bool,
    ) -> Vec<(PathBuf, bool)> {
        let dir = pins.dir.join("links");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for entry in rd.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(crate::paths::STAGING_PREFIX) {
                continue;
            }
            let Some(ifname) = Self::pin_owner(&name) else {
                continue;
            };
            if self.holds(&ifname) || selected(&ifname) {
                continue;
            }
            let live = palisade_ebpf::links::open_pinned(&path)
                .and_then(palisade_ebpf::links::ifindex)
                .is_ok_and(|i| i != 0);
            let done = if live {
                super::pin::unpin_link(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match done {
                Ok(()) => removed.push((path, live)),
                Err(e) => {
                    tracing::error!(pin = %path.display(), error = %e, "removing a stale link pin")
                }
            }
        }
        removed
    }

    /// Drift of the links this daemon holds: a link detached from outside (`bpftool link
    /// detach`, or its interface deleted: the kernel reports ifindex 0) is dropped with its
    /// pin, and its interface named for re-attachment; a link whose pin was removed while it
    /// still runs is pinned again from the descriptor this daemon holds. Returns the findings
    /// and the interfaces to attach again.
    pub fn drift(&mut self) -> (Vec<DriftFinding>, std::collections::BTreeSet<String>) {
        let mut findings = Vec::new();
        let mut reattach = std::collections::BTreeSet::new();
        let mut kept = Vec::with_capacity(self.pinned.len());
        for (ifname, direction, path, link) in std::mem::take(&mut self.pinned) {
            let object = format!("link {ifname}/{direction}");
            // aya's FdLink lends no descriptor: a missing pin is put back by pinning the
            // link itself (which hands it back), and the link is then read through its pin.
            let link = if path.exists() {
                link
            } else {
                let problem = format!("pin {} removed", path.display());
                match link.pin(&path) {
                    Ok(pinned) => {
                        findings.push(DriftFinding {
                            object: object.clone(),
                            problem,
                            action: "re-pinned".into(),
                            repaired: true,
                        });
                        FdLink::from(pinned)
                    }
                    Err(e) => {
                        // The link is gone with the error (dropped by pin()): attach again.
                        findings.push(DriftFinding {
                            object,
                            problem,
                            action: format!("re-pinning failed ({e}): attaching again"),
                            repaired: false,
                        });
                        reattach.insert(ifname);
                        continue;
                    }
                }
            };
            match palisade_ebpf::links::open_pinned(&path).and_then(palisade_ebpf::links::ifindex) {
                Ok(0) => {
                    findings.push(DriftFinding {
                        object,
                        problem: "detached from its interface (defunct link)".into(),
                        action: String::new(),
                        repaired: false,
                    });
                    reattach.insert(ifname.clone());
                    let _ = std::fs::remove_file(&path);
                    drop(link);
                }
                Ok(_) => kept.push((ifname, direction, path, link)),
                Err(e) => {
                    findings.push(DriftFinding {
                        object,
                        problem: format!("cannot read the link through its pin: {e}"),
                        action: "none".into(),
                        repaired: false,
                    });
                    kept.push((ifname, direction, path, link));
                }
            }
        }
        // Every link of an interface to re-attach leaves the list: the live ones are adopted
        // again from their pins by the re-attachment.
        kept.retain(|(ifname, ..)| !reattach.contains(ifname));
        self.pinned = kept;
        (findings, reattach)
    }

    /// Detaches and unpins every link (`--detach-on-exit`).
    pub fn detach_all(self) {
        for (ifname, direction, path, link) in self.pinned {
            match super::pin::unpin_link(&path) {
                Ok(()) => tracing::info!(interface = %ifname, direction, "detached"),
                Err(e) => {
                    tracing::error!(interface = %ifname, direction, error = %e, "unpin failed")
                }
            }
            drop(link);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_name_their_interface() {
        assert_eq!(Links::pin_owner("eth0_ingress").as_deref(), Some("eth0"));
        assert_eq!(
            Links::pin_owner("eth0_block_ingress").as_deref(),
            Some("eth0")
        );
        assert_eq!(
            Links::pin_owner("br_lan_xdp_native").as_deref(),
            Some("br_lan")
        );
        assert_eq!(
            Links::pin_owner("eth0%100_egress").as_deref(),
            Some("eth0.100")
        );
        assert_eq!(Links::pin_owner("_ingress"), None);
        assert_eq!(Links::pin_owner("something_else"), None);
    }
}
