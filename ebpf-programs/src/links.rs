//! XDP and TCX links: which interface one is on, and detaching one now.

use std::{
    io,
    os::fd::{AsFd, OwnedFd},
    path::Path,
};

use crate::sys;

/// The interface an XDP or TCX link is attached to (`BPF_OBJ_GET_INFO_BY_FD`); 0 when the
/// link is defunct (its interface was deleted, or it was detached).
pub fn ifindex(link: impl AsFd) -> io::Result<u32> {
    Ok(sys::link_info(link.as_fd())?.ifindex)
}

/// A descriptor of a pinned link (`BPF_OBJ_GET`).
pub fn open_pinned(path: &Path) -> io::Result<OwnedFd> {
    sys::obj_get(path)
}

/// Detaches the link's program from its hook before returning (`BPF_LINK_DETACH`).
///
/// Removing a link's last pin or descriptor detaches it too, but only after an RCU grace
/// period and a kernel work item: a caller that must find the hook empty when it returns
/// (`palisade cleanup`, `--detach-on-exit`) detaches explicitly first. Detaching a defunct
/// link succeeds and does nothing.
pub fn detach(link: impl AsFd) -> io::Result<()> {
    sys::link_detach(link.as_fd())
}

/// `BPF_TCX_INGRESS` / `BPF_TCX_EGRESS` (Linux 6.6; stable UAPI numbers, absent from the
/// headers of Debian 12 this crate builds against).
const BPF_TCX_INGRESS: u32 = 46;
const BPF_TCX_EGRESS: u32 = 47;

/// The ids of the programs attached at an interface's TCX hook, in the order they run
/// (`BPF_PROG_QUERY`, which needs CAP_NET_ADMIN only: opening a program by its id, to read its
/// name, would need CAP_SYS_ADMIN).
pub fn tcx_program_ids(ifindex: u32, ingress: bool) -> io::Result<Vec<u32>> {
    sys::prog_query(
        ifindex,
        if ingress {
            BPF_TCX_INGRESS
        } else {
            BPF_TCX_EGRESS
        },
    )
}
