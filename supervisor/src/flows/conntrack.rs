//! Reading the kernel's conntrack table over netlink (`NETLINK_NETFILTER`,
//! ctnetlink `IPCTNL_MSG_CT_GET` dump), for seeding the flow table at start.
//!
//! Only what seeding needs is decoded: both tuples (addresses, protocol,
//! ports), the TCP state, and the start timestamp when
//! `net.netfilter.nf_conntrack_timestamp` is on. Attributes are walked with
//! bounds checks; a malformed message ends the dump with an error, never a
//! panic.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

// <linux/netlink.h>, <linux/netfilter/nfnetlink.h>, <linux/netfilter/nfnetlink_conntrack.h>.
const NETLINK_NETFILTER: libc::c_int = 12;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_PROTOINFO: u16 = 4;
const CTA_TIMESTAMP: u16 = 20;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
const CTA_TIMESTAMP_START: u16 = 1;

/// One direction of a conntrack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// `IPPROTO_*`.
    pub proto: u8,
    /// Source port (0 for ICMP).
    pub sport: u16,
    /// Destination port (0 for ICMP).
    pub dport: u16,
}

/// One conntrack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Original direction: `src` is the connection's initiator.
    pub orig: Tuple,
    /// Reply direction (differs from the reversed original under NAT).
    pub reply: Option<Tuple>,
    /// TCP state (`TCP_CONNTRACK_*`), TCP only.
    pub tcp_state: Option<u8>,
    /// Start, CLOCK_REALTIME ns (only with `nf_conntrack_timestamp`).
    pub start_realtime_ns: Option<u64>,
}

impl Entry {
    /// Whether the entry is a live connection worth seeding: TCP before its close
    /// (SYN_SENT, SYN_RECV, ESTABLISHED, SYN_SENT2), any UDP/ICMP entry.
    pub fn is_live(&self) -> bool {
        match self.tcp_state {
            // TCP_CONNTRACK_{SYN_SENT, SYN_RECV, ESTABLISHED, SYN_SENT2}.
            Some(state) => matches!(state, 1 | 2 | 3 | 9),
            None => self.orig.proto != libc::IPPROTO_TCP as u8,
        }
    }
}

/// Dumps the conntrack table of the calling thread's network namespace.
pub fn dump() -> io::Result<Vec<Entry>> {
    // SAFETY: plain socket(2); the result is checked and owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let timeout = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: valid socket, option value of the right type and size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };

    let mut req = Vec::with_capacity(NLMSG_HDRLEN + NFGENMSG_LEN);
    let len = (NLMSG_HDRLEN + NFGENMSG_LEN) as u32;
    req.extend_from_slice(&len.to_ne_bytes());
    req.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET).to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    // nfgenmsg: AF_UNSPEC (every family), NFNETLINK_V0, res_id 0.
    req.extend_from_slice(&[0, 0, 0, 0]);
    // SAFETY: sending an initialised buffer of its own length.
    let sent = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }

    let mut entries = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: receiving into a buffer we own, of its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let data = buf.get(..n.unsigned_abs()).unwrap_or_default();
        if parse_datagram(data, &mut entries)? {
            return Ok(entries);
        }
    }
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("conntrack dump: malformed {what}"),
    )
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses one datagram of netlink messages; returns `true` at `NLMSG_DONE`.
fn parse_datagram(mut data: &[u8], out: &mut Vec<Entry>) -> io::Result<bool> {
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0).ok_or_else(|| malformed("header"))? as usize;
        let kind = u16_at(data, 4).ok_or_else(|| malformed("header"))?;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(malformed("message length"));
        }
        let body = data.get(NLMSG_HDRLEN..len).unwrap_or_default();
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(body, 0).map_or(0, |e| e as i32);
                if errno != 0 {
                    return Err(io::Error::from_raw_os_error(-errno));
                }
            }
            k if k == (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW => {
                let attrs = body
                    .get(NFGENMSG_LEN..)
                    .ok_or_else(|| malformed("message"))?;
                if let Some(entry) = parse_entry(attrs)? {
                    out.push(entry);
                }
            }
            _ => {}
        }
        let aligned = (len + 3) & !3;
        data = data.get(aligned..).unwrap_or_default();
    }
    Ok(false)
}

/// Iterates the netlink attributes of `data`: `(type, payload)`.
fn attrs(mut data: &[u8]) -> impl Iterator<Item = io::Result<(u16, &[u8])>> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let (Some(len), Some(kind)) = (u16_at(data, 0), u16_at(data, 2)) else {
            return Some(Err(malformed("attribute")));
        };
        let len = usize::from(len);
        let Some(payload) = data.get(4..len).filter(|_| len >= 4) else {
            data = &[];
            return Some(Err(malformed("attribute length")));
        };
        data = data.get((len + 3) & !3..).unwrap_or_default();
        Some(Ok((kind & NLA_TYPE_MASK, payload)))
    })
}

fn addr(payload: &[u8]) -> Option<IpAddr> {
    match payload.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(
            <[u8; 4]>::try_from(payload).ok()?,
        ))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(payload).ok()?,
        ))),
        _ => None,
    }
}

fn be16(payload: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(payload.get(..2)?.try_into().ok()?))
}

fn parse_tuple(data: &[u8]) -> io::Result<Option<Tuple>> {
    let (mut src, mut dst, mut proto, mut sport, mut dport) = (None, None, None, 0, 0);
    for attr in attrs(data) {
        let (kind, payload) = attr?;
        match kind {
            CTA_TUPLE_IP => {
                for ip in attrs(payload) {
                    let (kind, payload) = ip?;
                    match kind {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => src = addr(payload),
                        CTA_IP_V4_DST | CTA_IP_V6_DST => dst = addr(payload),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for p in attrs(payload) {
                    let (kind, payload) = p?;
                    match kind {
                        CTA_PROTO_NUM => proto = payload.first().copied(),
                        CTA_PROTO_SRC_PORT => sport = be16(payload).unwrap_or(0),
                        CTA_PROTO_DST_PORT => dport = be16(payload).unwrap_or(0),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(match (src, dst, proto) {
        (Some(src), Some(dst), Some(proto)) => Some(Tuple {
            src,
            dst,
            proto,
            sport,
            dport,
        }),
        _ => None,
    })
}

fn parse_entry(data: &[u8]) -> io::Result<Option<Entry>> {
    let (mut orig, mut reply, mut tcp_state, mut start) = (None, None, None, None);
    for attr in attrs(data) {
        let (kind, payload) = attr?;
        match kind {
            CTA_TUPLE_ORIG => orig = parse_tuple(payload)?,
            CTA_TUPLE_REPLY => reply = parse_tuple(payload)?,
            CTA_PROTOINFO => {
                for info in attrs(payload) {
                    let (kind, payload) = info?;
                    if kind == CTA_PROTOINFO_TCP {
                        for tcp in attrs(payload) {
                            let (kind, payload) = tcp?;
                            if kind == CTA_PROTOINFO_TCP_STATE {
                                tcp_state = payload.first().copied();
                            }
                        }
                    }
                }
            }
            CTA_TIMESTAMP => {
                for ts in attrs(payload) {
                    let (kind, payload) = ts?;
                    if kind == CTA_TIMESTAMP_START {
                        start = payload
                            .get(..8)
                            .and_then(|b| b.try_into().ok())
                            .map(u64::from_be_bytes);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(orig.map(|orig| Entry {
        orig,
        reply,
        tcp_state,
        start_realtime_ns: start,
    }))
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "tests: a panic is a test failure")]
mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(4 + payload.len() as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(payload);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    fn tuple(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let ip = [attr(CTA_IP_V4_SRC, &src), attr(CTA_IP_V4_DST, &dst)].concat();
        let proto = [
            attr(CTA_PROTO_NUM, &[6]),
            attr(CTA_PROTO_SRC_PORT, &sport.to_be_bytes()),
            attr(CTA_PROTO_DST_PORT, &dport.to_be_bytes()),
        ]
        .concat();
        [
            attr(CTA_TUPLE_IP | 0x8000, &ip),
            attr(CTA_TUPLE_PROTO | 0x8000, &proto),
        ]
        .concat()
    }

    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&[0; 10]);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn parses_an_entry_and_done() {
        let tcp = attr(
            CTA_PROTOINFO_TCP | 0x8000,
            &attr(CTA_PROTOINFO_TCP_STATE, &[3]),
        );
        let body = [
            vec![2, 0, 0, 0],
            attr(
                CTA_TUPLE_ORIG | 0x8000,
                &tuple([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80),
            ),
            attr(
                CTA_TUPLE_REPLY | 0x8000,
                &tuple([10, 0, 0, 2], [192, 0, 2, 1], 80, 40000),
            ),
            attr(CTA_PROTOINFO | 0x8000, &tcp),
        ]
        .concat();
        let mut data = message((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, &body);
        data.extend(message(NLMSG_DONE, &[0; 4]));
        let mut out = Vec::new();
        assert!(parse_datagram(&data, &mut out).expect("parses"));
        assert_eq!(out.len(), 1);
        let e = out[0];
        assert_eq!(e.orig.src, IpAddr::from([10, 0, 0, 1]));
        assert_eq!((e.orig.sport, e.orig.dport, e.orig.proto), (40000, 80, 6));
        assert_eq!(e.reply.map(|r| r.dst), Some(IpAddr::from([192, 0, 2, 1])));
        assert_eq!(e.tcp_state, Some(3));
        assert!(e.is_live());
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        // A message longer than the datagram.
        let mut data = message(NLMSG_DONE, &[0; 4]);
        data[0] = 200;
        assert!(parse_datagram(&data, &mut out).is_err());
        // An attribute whose length runs past its message.
        let body = [vec![2, 0, 0, 0], vec![0xff, 0, 1, 0]].concat();
        let data = message((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, &body);
        assert!(parse_datagram(&data, &mut out).is_err());
        // Every truncation of a valid message: no panic.
        let body = [
            vec![2, 0, 0, 0],
            attr(
                CTA_TUPLE_ORIG | 0x8000,
                &tuple([10, 0, 0, 1], [10, 0, 0, 2], 1, 2),
            ),
        ]
        .concat();
        let data = message((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, &body);
        for cut in 0..data.len() {
            let _ = parse_datagram(&data[..cut], &mut out);
        }
    }
}
