//! The IP policy's hooks: XDP (native or generic) or TCX on ingress, and
//! TCX on egress, chosen per interface by `[ip] xdp_mode`, pinned like the
//! observer's links and adopted after a restart (never attached twice).
//!
//! `auto` takes native XDP only on drivers where it is the fast path
//! ([`NATIVE_XDP_DRIVERS`], found with the ethtool `GDRVINFO` ioctl in
//! `interfaces::driver`) and TCX everywhere else: on veth, native XDP
//! measured 0.75x and generic XDP 0.89x of the no-program rate against
//! 0.95-0.97x for TC (docs/PERFORMANCE.md), and generic XDP runs after the
//! skb is built, like TC, but costs more. If native attach fails under
//! `auto`, TCX is used and the log says why;
//! under `native` the failure is the interface's error in `status`.
//!
//! Pins: `links/<ifname>_xdp_native`, `_xdp_generic`, `_block_ingress`,
//! `_block_egress`. A pin of a hook the current mode does not use is removed
//! (the link detaches) once the new hook is in place. Native and generic XDP
//! cannot be attached to one device at once: switching between them removes
//! the old link first (a window of a few microseconds without the XDP hook).

use std::{io, path::Path};

use aya::programs::{
    LinkOrder, SchedClassifier, TcAttachType, Xdp,
    links::{FdLink, PinnedLink},
    tc::{SchedClassifierLink, TcAttachOptions},
    xdp::XdpLink,
};
use palisade_ipc::messages::Attachment;

use super::{
    attach::{Hook, Links, adopt, has_tcx},
    loader::Loaded,
    pin::PinTree,
};

/// `[ip] xdp_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native XDP where the driver makes it the fast hook, TCX elsewhere.
    #[default]
    Auto,
    /// Native (driver) XDP; an error on interfaces whose driver lacks it.
    Native,
    /// Generic (skb) XDP.
    Generic,
    /// TCX ingress, first in the chain.
    Tc,
}

impl XdpMode {
    /// Parses the configuration value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "auto" => Self::Auto,
            "native" => Self::Native,
            "generic" => Self::Generic,
            "tc" => Self::Tc,
            _ => return None,
        })
    }

    /// The configuration value.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Tc => "tc",
        }
    }
}

/// Drivers whose native XDP runs in the driver's receive loop before an skb exists: there
/// it is the cheapest hook. veth is deliberately absent (native XDP on veth is slower than
/// TC, see the module documentation).
pub const NATIVE_XDP_DRIVERS: &[&str] = &[
    "i40e",
    "ice",
    "ixgbe",
    "ixgbevf",
    "igb",
    "igc",
    "mlx4_en",
    "mlx5_core",
    "bnxt_en",
    "nfp",
    "qede",
    "ena",
    "sfc",
    "virtio_net",
    "mvneta",
    "mvpp2",
    "stmmac",
    "fec",
    "gve",
    "atlantic",
    "dpaa2-eth",
    "hv_netvsc",
    "tsnep",
];

/// One hook of the IP policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpHook {
    /// `pal_xdp_block` in driver mode.
    XdpNative,
    /// `pal_xdp_block` in skb mode.
    XdpGeneric,
    /// `pal_tc_block_ingress`, TCX ingress, first.
    TcIngress,
    /// `pal_tc_block_egress`, TCX egress, first.
    TcEgress,
}

impl IpHook {
    /// Every hook.
    pub const ALL: [Self; 4] = [
        Self::XdpNative,
        Self::XdpGeneric,
        Self::TcIngress,
        Self::TcEgress,
    ];

    /// Last part of its pin name (and its key in the supervisor's link table).
    pub const fn pin_name(self) -> &'static str {
        match self {
            Self::XdpNative => "xdp_native",
            Self::XdpGeneric => "xdp_generic",
            Self::TcIngress => "block_ingress",
            Self::TcEgress => "block_egress",
        }
    }

    /// The program.
    pub const fn program(self) -> &'static str {
        match self {
            Self::XdpNative | Self::XdpGeneric => palisade_abi::PROG_XDP_BLOCK,
            Self::TcIngress => palisade_abi::PROG_TC_BLOCK_INGRESS,
            Self::TcEgress => palisade_abi::PROG_TC_BLOCK_EGRESS,
        }
    }

    /// `mode` of its [`Attachment`] in `status`.
    pub const fn mode(self) -> &'static str {
        match self {
            Self::XdpNative => "xdp-native",
            Self::XdpGeneric => "xdp-generic",
            Self::TcIngress | Self::TcEgress => "tcx",
        }
    }

    const fn direction(self) -> &'static str {
        match self {
            Self::TcEgress => "egress",
            _ => "ingress",
        }
    }

    const fn tc_hook(self) -> Option<Hook> {
        match self {
            Self::TcIngress => Some(Hook {
                direction: "ingress",
                program: palisade_abi::PROG_TC_BLOCK_INGRESS,
                attach_type: TcAttachType::Ingress,
            }),
            Self::TcEgress => Some(Hook {
                direction: "egress",
                program: palisade_abi::PROG_TC_BLOCK_EGRESS,
                attach_type: TcAttachType::Egress,
            }),
            _ => None,
        }
    }
}

/// IP hook errors.
#[derive(Debug, thiserror::Error)]
pub enum XdpAttachError {
    /// A program handle is missing (a bug).
    #[error("program {0} not loaded")]
    Program(&'static str),
    /// Attaching failed.
    #[error("attaching {program} to {ifname} as {mode} (BPF_LINK_CREATE)")]
    Attach {
        program: &'static str,
        ifname: String,
        mode: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// The link is not a BPF link (netlink XDP on kernels before 5.9): not pinnable.
    #[error("{ifname}: the kernel gave no BPF link for {mode} (needs Linux >= 5.9)")]
    Link {
        ifname: String,
        mode: &'static str,
        #[source]
        source: aya::programs::links::LinkError,
    },
    /// Pinning failed.
    #[error("pinning link {path} (BPF_OBJ_PIN)")]
    Pin {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// The ingress hook `mode` asks for on `ifname`, and why (for the log).
pub fn choose(mode: XdpMode, ifname: &str) -> (IpHook, String) {
    match mode {
        XdpMode::Native => (IpHook::XdpNative, "xdp_mode = native".into()),
        XdpMode::Generic => (IpHook::XdpGeneric, "xdp_mode = generic".into()),
        XdpMode::Tc => (IpHook::TcIngress, "xdp_mode = tc".into()),
        XdpMode::Auto => match crate::interfaces::driver(ifname) {
            Ok(d) if NATIVE_XDP_DRIVERS.contains(&d.as_str()) => (
                IpHook::XdpNative,
                format!("auto: driver {d} has fast native XDP"),
            ),
            Ok(d) => (
                IpHook::TcIngress,
                format!("auto: driver {d} has no fast native XDP; TCX is the cheaper hook"),
            ),
            Err(e) => (
                IpHook::TcIngress,
                format!("auto: driver unknown ({e}); using TCX"),
            ),
        },
    }
}

impl Links {
    /// Attaches (or adopts) the IP policy's hooks on one interface for `mode`, then removes
    /// pins of hooks the mode does not use. Returns the attachments and the error, if any.
    pub fn attach_ip_policy(
        &mut self,
        loaded: &mut Loaded,
        pins: &PinTree,
        ifname: &str,
        ifindex: u32,
        mode: XdpMode,
    ) -> (Vec<Attachment>, Option<String>) {
        let (wanted, why) = choose(mode, ifname);
        let mut attachments = Vec::new();
        let mut error = None;
        let mut ingress = Some(wanted);
        match self.ip_hook(loaded, pins, ifname, ifindex, wanted) {
            Ok(a) => {
                tracing::info!(interface = ifname, mode = wanted.mode(), reason = %why, adopted = a.adopted, "IP policy hook");
                attachments.push(a);
            }
            Err(e) if mode == XdpMode::Auto && wanted == IpHook::XdpNative => {
                tracing::warn!(interface = ifname, error = %crate::error_chain(&e), "native XDP failed; IP policy falls back to TCX");
                ingress = Some(IpHook::TcIngress);
                match self.ip_hook(loaded, pins, ifname, ifindex, IpHook::TcIngress) {
                    Ok(a) => attachments.push(a),
                    Err(e) => {
                        ingress = None;
                        error = Some(crate::error_chain(&e));
                    }
                }
            }
            Err(e) => {
                ingress = None;
                let msg = crate::error_chain(&e);
                tracing::error!(interface = ifname, mode = wanted.mode(), error = %msg, "IP policy not enforced on ingress");
                error = Some(msg);
            }
        }
        match self.ip_hook(loaded, pins, ifname, ifindex, IpHook::TcEgress) {
            Ok(a) => attachments.push(a),
            Err(e) => {
                let msg = crate::error_chain(&e);
                tracing::error!(interface = ifname, error = %msg, "IP policy not enforced on egress");
                error.get_or_insert(msg);
            }
        }
        // Hooks of another mode: only once the wanted ingress hook holds (if it failed, the
        // old one keeps enforcing).
        if let Some(ingress) = ingress {
            for stale in IpHook::ALL {
                if stale != ingress && stale != IpHook::TcEgress {
                    self.remove_ip_hook(pins, ifname, stale);
                }
            }
        }
        (attachments, error)
    }

    /// Detaches one IP hook and removes its pin.
    fn remove_ip_hook(&mut self, pins: &PinTree, ifname: &str, hook: IpHook) {
        let path = pins.link(ifname, hook.pin_name());
        self.pinned
            .retain(|(i, d, _, _)| !(i == ifname && *d == hook.pin_name()));
        match super::pin::unpin_link(&path) {
            Ok(()) => tracing::info!(
                interface = ifname,
                hook = hook.pin_name(),
                "removed IP policy hook of another mode"
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(pin = %path.display(), error = %e, "removing a stale IP policy pin")
            }
        }
    }

    fn ip_hook(
        &mut self,
        loaded: &mut Loaded,
        pins: &PinTree,
        ifname: &str,
        ifindex: u32,
        hook: IpHook,
    ) -> Result<Attachment, XdpAttachError> {
        let path = pins.link(ifname, hook.pin_name());
        let attach_err = |source| XdpAttachError::Attach {
            program: hook.program(),
            ifname: ifname.to_owned(),
            mode: hook.mode(),
            source: Box::new(source),
        };
        let link_err = |source| XdpAttachError::Link {
            ifname: ifname.to_owned(),
            mode: hook.mode(),
            source,
        };
        let our_id = loaded
            .ebpf
            .program(hook.program())
            .and_then(|p| p.info().ok())
            .map(|i| i.id())
            .ok_or(XdpAttachError::Program(hook.program()))?;
        if let Some(tc_hook) = hook.tc_hook().filter(|_| !has_tcx()) {
            // clsact (super::clsact). The observer is attached first, so this filter,
            // added ahead of those present, runs before it, as TCX's first place does.
            let prog: &mut SchedClassifier = loaded
                .ebpf
                .program_mut(hook.program())
                .and_then(|p| p.try_into().ok())
                .ok_or(XdpAttachError::Program(hook.program()))?;
            let program_id = super::clsact::attach(
                prog,
                ifname,
                ifindex,
                tc_hook.direction == "ingress",
                hook.program(),
            )
            .map_err(attach_err)?;
            return Ok(Attachment {
                direction: hook.direction().to_owned(),
                program: hook.program().to_owned(),
                program_id,
                link_id: 0,
                mode: "clsact".to_owned(),
                adopted: false,
            });
        }
        let mut attachment = Attachment {
            direction: hook.direction().to_owned(),
            program: hook.program().to_owned(),
            program_id: our_id,
            link_id: 0,
            mode: hook.mode().to_owned(),
            adopted: false,
        };
        if path.exists() {
            if let Some((link, link_id, prog_id)) = adopt_ip(&path, ifindex, hook) {
                attachment.adopted = true;
                attachment.link_id = link_id;
                // As for the observer's links (`attach::Links::attach_hook`): the link stays,
                // its program becomes ours, swapped in place, unless it already is.
                let link = if prog_id == our_id {
                    link
                } else {
                    tracing::info!(
                        interface = ifname,
                        hook = hook.pin_name(),
                        link = link_id,
                        old_program = prog_id,
                        new_program = our_id,
                        "adopted pinned IP policy link, replaced the program in place"
                    );
                    self.relink(loaded, hook, link).map_err(|e| match e {
                        Relink::Attach(s) => attach_err(s),
                        Relink::Link(s) => link_err(s),
                    })?
                };
                self.pinned
                    .retain(|(i, d, _, _)| !(i == ifname && *d == hook.pin_name()));
                self.pinned
                    .push((ifname.to_owned(), hook.pin_name(), path, link));
                return Ok(attachment);
            }
            tracing::warn!(pin = %path.display(), "pinned IP policy link is stale (interface recreated?); replacing it");
            let _ = std::fs::remove_file(&path);
        }
        // Native and generic XDP exclude each other on one device: drop the other first.
        match hook {
            IpHook::XdpNative => self.remove_ip_hook(pins, ifname, IpHook::XdpGeneric),
            IpHook::XdpGeneric => self.remove_ip_hook(pins, ifname, IpHook::XdpNative),
            _ => {}
        }
        let fd_link: FdLink = match hook {
            IpHook::XdpNative | IpHook::XdpGeneric => {
                let prog: &mut Xdp = loaded
                    .ebpf
                    .program_mut(hook.program())
                    .and_then(|p| p.try_into().ok())
                    .ok_or(XdpAttachError::Program(hook.program()))?;
                let flags = if hook == IpHook::XdpNative {
                    aya::programs::XdpMode::Driver
                } else {
                    aya::programs::XdpMode::Skb
                };
                let id = prog.attach(ifname, flags).map_err(attach_err)?;
                let link = prog.take_link(id).map_err(attach_err)?;
                link.try_into().map_err(link_err)?
            }
            IpHook::TcIngress | IpHook::TcEgress => {
                let attach_type = hook
                    .tc_hook()
                    .map_or(TcAttachType::Ingress, |h| h.attach_type);
                let prog: &mut SchedClassifier = loaded
                    .ebpf
                    .program_mut(hook.program())
                    .and_then(|p| p.try_into().ok())
                    .ok_or(XdpAttachError::Program(hook.program()))?;
                // First in the TCX chain: before the observer, which then never sees
                // (records, counts) a dropped packet.
                let id = prog
                    .attach_with_options(
                        ifname,
                        attach_type,
                        TcAttachOptions::TcxOrder(LinkOrder::first()),
                    )
                    .map_err(attach_err)?;
                let link = prog.take_link(id).map_err(attach_err)?;
                link.try_into().map_err(link_err)?
            }
        };
        attachment.link_id = fd_link.info().map(|i| i.id()).unwrap_or(0);
        self.pin(ifname, hook.pin_name(), &path, fd_link)
            .map_err(|source| XdpAttachError::Pin {
                path: path.display().to_string(),
                source,
            })?;
        Ok(attachment)
    }

    fn relink(
        &mut self,
        loaded: &mut Loaded,
        hook: IpHook,
        link: FdLink,
    ) -> Result<FdLink, Relink> {
        match hook {
            IpHook::XdpNative | IpHook::XdpGeneric => {
                let prog: &mut Xdp = loaded
                    .ebpf
                    .program_mut(hook.program())
                    .and_then(|p| p.try_into().ok())
                    .ok_or(Relink::Attach(aya::programs::ProgramError::NotLoaded))?;
                let xdp_link = XdpLink::try_from(link).map_err(Relink::Link)?;
                let id = prog.attach_to_link(xdp_link).map_err(Relink::Attach)?;
                prog.take_link(id)
                    .map_err(Relink::Attach)?
                    .try_into()
                    .map_err(Relink::Link)
            }
            IpHook::TcIngress | IpHook::TcEgress => {
                let prog: &mut SchedClassifier = loaded
                    .ebpf
                    .program_mut(hook.program())
                    .and_then(|p| p.try_into().ok())
                    .ok_or(Relink::Attach(aya::programs::ProgramError::NotLoaded))?;
                let tc_link = SchedClassifierLink::try_from(link).map_err(Relink::Link)?;
                let id = prog.attach_to_link(tc_link).map_err(Relink::Attach)?;
                prog.take_link(id)
                    .map_err(Relink::Attach)?
                    .try_into()
                    .map_err(Relink::Link)
            }
        }
    }
}

enum Relink {
    Attach(aya::programs::ProgramError),
    Link(aya::programs::links::LinkError),
}

/// A pinned IP hook link that is live on this interface: (link, link id, program id).
fn adopt_ip(path: &Path, ifindex: u32, hook: IpHook) -> Option<(FdLink, u32, u32)> {
    if let Some(tc) = hook.tc_hook() {
        let (link, a) = adopt(path, ifindex, &tc)?;
        return Some((link, a.link_id, a.program_id));
    }
    // XDP: the link names its interface; 0 (or another index) means defunct.
    if palisade_ebpf::links::open_pinned(path)
        .and_then(palisade_ebpf::links::ifindex)
        .ok()?
        != ifindex
        || ifindex == 0
    {
        return None;
    }
    let link = FdLink::from(PinnedLink::from_pin(path).ok()?);
    let info = link.info().ok()?;
    Some((link, info.id(), info.program_id()))
}
