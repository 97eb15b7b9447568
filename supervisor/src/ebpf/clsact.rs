//! The observer on kernels without TCX (before 6.6), or with `tc_attach = "clsact"`: a bpf
//! filter at the clsact qdisc's ingress or egress hook, which netlink lists and removes.
//!
//! A clsact filter is not a link: it cannot be pinned, outlives the process that added it,
//! and a second one of the same program can sit beside it. So each start adds its filter
//! first (the kernel puts a new filter without a priority ahead of those present), then
//! removes the filters of the same program name left by earlier runs ([`attach`]):
//! no window without an observer, never two for long. Drift checks look for the filter of
//! the running program ([`filters`]), and `--detach-on-exit` removes it ([`remove_ours`]).

use std::io;

use aya::programs::{
    ProgramError, SchedClassifier, TcAttachType,
    links::Link as _,
    tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle as AyaHandle},
};
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcFilterBpfOption, TcHandle, TcMessage, TcOption},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Attaches `prog` (named `name`) as a clsact filter at `ifname`'s ingress or egress hook,
/// ahead of the filters present, then removes the earlier runs' filters of that name.
/// Returns the program's id. The filter stays when the process ends.
pub fn attach(
    prog: &mut SchedClassifier,
    ifname: &str,
    ifindex: u32,
    ingress: bool,
    name: &str,
) -> Result<u32, ProgramError> {
    if let Err(e) = tc::qdisc_add_clsact(ifname) {
        tracing::debug!(interface = ifname, error = %e, "clsact qdisc (may already exist)");
    }
    let id = prog.attach_with_options(
        ifname,
        attach_type(ingress),
        TcAttachOptions::Netlink(NlOptions::default()),
    )?;
    let program_id = prog.info().map(|i| i.id()).unwrap_or(0);
    let link = prog.take_link(id)?;
    let added = (link.priority()?, u32::from(link.handle()?));
    // Dropping the link would detach it: it is the kernel's to keep, and the next start's
    // to replace.
    std::mem::forget(link);
    match replace_older(ifname, ifindex, ingress, name, added) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            interface = ifname,
            program = name,
            removed = n,
            "clsact: replaced an earlier run's filter"
        ),
        Err(e) => tracing::warn!(
            interface = ifname,
            program = name,
            error = %e,
            "clsact: could not list or remove earlier runs' filters (packets may pass two of them)"
        ),
    }
    Ok(program_id)
}

/// A bpf filter at a clsact hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Its priority (lower runs first).
    pub priority: u16,
    /// Its handle within the priority.
    pub handle: u32,
    /// The program's id.
    pub prog_id: u32,
    /// The name the filter was given (the program's, as aya attaches it).
    pub name: String,
}

/// The bpf filters at `ifindex`'s clsact `ingress` or egress hook, in the order they run.
pub fn filters(ifindex: u32, ingress: bool) -> io::Result<Vec<Filter>> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    let mut tc = TcMessage::default();
    tc.header.index = ifindex as i32;
    tc.header.parent = TcHandle {
        major: TcHandle::CLSACT.major,
        minor: if ingress {
            TcHandle::MIN_INGRESS
        } else {
            TcHandle::MIN_EGRESS
        },
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let mut req = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetTrafficFilter(tc)),
    );
    req.finalize();
    let mut out = vec![0u8; req.buffer_len()];
    req.serialize(&mut out);
    sock.send_to(&out, &SocketAddr::new(0, 0), 0)?;
    let mut found = Vec::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        buf.clear();
        let (len, _) = sock.recv_from(&mut buf, 0)?;
        let mut offset = 0;
        while offset < len {
            let bytes = buf.get(offset..len).unwrap_or_default();
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                .map_err(|e| io::Error::other(format!("tc filter dump: {e}")))?;
            let size = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(sorted(found)),
                NetlinkPayload::Error(e) => return Err(e.to_io()),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewTrafficFilter(m)) => {
                    if let Some(f) = bpf_filter(&m) {
                        found.push(f);
                    }
                }
                _ => {}
            }
            if size == 0 {
                break;
            }
            offset += size.div_ceil(4) * 4;
        }
    }
}

fn sorted(mut found: Vec<Filter>) -> Vec<Filter> {
    found.sort_by_key(|f| (f.priority, f.handle));
    found.dedup();
    found
}

/// The bpf filter a `RTM_NEWTFILTER` describes (the kernel also sends one message per
/// priority without options: skipped).
fn bpf_filter(m: &TcMessage) -> Option<Filter> {
    let bpf = m
        .attributes
        .iter()
        .any(|a| matches!(a, TcAttribute::Kind(k) if k == "bpf"));
    if !bpf {
        return None;
    }
    let options = m.attributes.iter().find_map(|a| match a {
        TcAttribute::Options(o) => Some(o),
        _ => None,
    })?;
    let mut prog_id = None;
    let mut name = String::new();
    for o in options {
        match o {
            TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => prog_id = Some(*id),
            TcOption::Bpf(TcFilterBpfOption::ProgName(n)) => name = n.clone(),
            _ => {}
        }
    }
    Some(Filter {
        priority: (m.header.info >> 16) as u16,
        handle: u32::from(m.header.handle),
        prog_id: prog_id?,
        name,
    })
}

fn attach_type(ingress: bool) -> TcAttachType {
    if ingress {
        TcAttachType::Ingress
    } else {
        TcAttachType::Egress
    }
}

/// Removes one filter.
fn remove(ifname: &str, ingress: bool, f: &Filter) -> io::Result<()> {
    let link = SchedClassifierLink::attached(
        ifname,
        attach_type(ingress),
        f.priority,
        AyaHandle::from(f.handle),
        None,
    )?;
    link.detach().map_err(|e| io::Error::other(e.to_string()))
}

/// After adding the filter `added` (priority, handle) of program `name`: removes the other
/// filters of that name at the hook (earlier runs', or this run's before a repair). Returns
/// how many went.
fn replace_older(
    ifname: &str,
    ifindex: u32,
    ingress: bool,
    name: &str,
    added: (u16, u32),
) -> io::Result<usize> {
    let mut removed = 0;
    for f in filters(ifindex, ingress)? {
        if f.name == name && (f.priority, f.handle) != added {
            remove(ifname, ingress, &f)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes every filter of program name `name` at the hook (`--detach-on-exit`).
pub fn remove_ours(ifname: &str, ifindex: u32, ingress: bool, name: &str) -> io::Result<usize> {
    let mut removed = 0;
    for f in filters(ifindex, ingress)? {
        if f.name == name {
            remove(ifname, ingress, &f)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The program names Palisade attaches as clsact filters.
const OURS: [&str; 4] = [
    palisade_abi::PROG_TC_INGRESS,
    palisade_abi::PROG_TC_EGRESS,
    palisade_abi::PROG_TC_BLOCK_INGRESS,
    palisade_abi::PROG_TC_BLOCK_EGRESS,
];

/// `palisade cleanup`: removes Palisade's clsact filters from every interface of this network
/// namespace (interfaces without a clsact qdisc have none). Returns how many went.
pub fn remove_everywhere() -> io::Result<usize> {
    let mut removed = 0;
    for link in crate::netlink::dump()? {
        for ingress in [true, false] {
            let Ok(found) = filters(link.index, ingress) else {
                continue; // no clsact qdisc there
            };
            for f in found.iter().filter(|f| OURS.contains(&f.name.as_str())) {
                remove(&link.name, ingress, f)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}
