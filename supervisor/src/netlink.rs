//! rtnetlink: the links of this network namespace, dumped (`RTM_GETLINK`) and followed
//! (`RTMGRP_LINK` multicast: `RTM_NEWLINK` for a new, changed or renamed link,
//! `RTM_DELLINK` for one deleted or moved to another namespace).
//!
//! The monitor socket is non-blocking and read on the daemon's mio loop; the kernel drops
//! multicast messages when its receive buffer is full and says so once with ENOBUFS
//! ([`Batch::overrun`]): the caller then dumps every link again, since any event may
//! have been lost. Messages are parsed with `netlink-packet-route`; the kernel is trusted
//! but a message that does not parse is not guessed at: it, too, asks for a dump.

use std::{io, os::fd::AsRawFd, time::Duration};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{LinkAttribute, LinkFlags, LinkMessage, LinkXdp},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::interfaces::Link;

/// RTMGRP_LINK from <linux/rtnetlink.h>.
const RTMGRP_LINK: u32 = 1;
/// Receive buffer: a burst of a few thousand link messages (a bridge with hundreds of
/// ports coming up) fits; beyond it, ENOBUFS and a dump.
const RCVBUF: usize = 4 << 20;
/// One datagram: the kernel sends at most 32 KiB per dump part, events are smaller.
const DATAGRAM: usize = 64 << 10;
/// Longest a dump waits for the kernel.
const DUMP_TIMEOUT: Duration = Duration::from_secs(2);
/// Dumps interrupted by concurrent changes (`NLM_F_DUMP_INTR`) are retried this often.
const DUMP_TRIES: usize = 5;

/// One link message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `RTM_NEWLINK`: a link created or changed (renames included).
    New(Link),
    /// `RTM_DELLINK`: a link deleted (or moved to another namespace), by ifindex.
    Deleted(u32),
}

/// What one read of the monitor brought.
#[derive(Debug, Default)]
pub struct Batch {
    /// The link messages, in the kernel's order (a link can go and come back with the
    /// same ifindex within one batch: moved out of the namespace and back).
    pub changes: Vec<Change>,
    /// Messages were lost (ENOBUFS) or one did not parse: dump everything again.
    pub overrun: bool,
    /// Datagrams not from the kernel, ignored.
    pub spoofed: u64,
}

impl Batch {
    /// Nothing happened.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && !self.overrun
    }

    /// The links of the `RTM_NEWLINK` messages, in order.
    pub fn new_links(&self) -> impl Iterator<Item = &Link> {
        self.changes.iter().filter_map(|c| match c {
            Change::New(l) => Some(l),
            Change::Deleted(_) => None,
        })
    }
}

/// The link monitor: an rtnetlink socket subscribed to link events.
#[derive(Debug)]
pub struct Monitor {
    sock: Socket,
    buf: Vec<u8>,
}

impl Monitor {
    /// Opens and subscribes (before the first dump, so that nothing between the dump and
    /// the first read is missed).
    pub fn open() -> io::Result<Self> {
        Self::with_rcvbuf(RCVBUF)
    }

    fn with_rcvbuf(rcvbuf: usize) -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind(&SocketAddr::new(0, RTMGRP_LINK))?;
        sock.set_non_blocking(true)?;
        force_rcvbuf(&sock, rcvbuf);
        Ok(Self {
            sock,
            buf: Vec::with_capacity(DATAGRAM),
        })
    }

    /// Its descriptor, for mio.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }

    /// Reads every queued message (the socket is edge-triggered on mio: it is read until
    /// EAGAIN).
    pub fn read(&mut self) -> Batch {
        let mut batch = Batch::default();
        loop {
            self.buf.clear();
            match self.sock.recv_from(&mut self.buf, libc::MSG_TRUNC) {
                // Any process of this namespace may send a unicast datagram to this socket:
                // only the kernel's (port 0) count, or a forged RTM_DELLINK could make the
                // daemon let go of a live interface's links.
                Ok((_, from)) if from.port_number() != 0 => {
                    batch.spoofed += 1;
                }
                Ok((len, _)) if len > self.buf.len() => {
                    tracing::warn!(len, "rtnetlink: truncated datagram; re-reading every link");
                    batch.overrun = true;
                }
                Ok(_) => parse_datagram(&self.buf, &mut batch, None),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return batch,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    tracing::warn!("rtnetlink: link events lost (ENOBUFS); re-reading every link");
                    batch.overrun = true;
                }
                Err(e) => {
                    tracing::error!(error = %e, "rtnetlink: reading link events");
                    batch.overrun = true;
                    return batch;
                }
            }
        }
    }
}

/// Raises the receive buffer beyond `net.core.rmem_max` (SO_RCVBUFFORCE, the supervisor
/// has CAP_NET_ADMIN); falls back to what SO_RCVBUF allows.
fn force_rcvbuf(sock: &Socket, size: usize) {
    let value = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads an int from a valid pointer for its length.
    let ret = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        let _ = sock.set_rx_buf_sz(size);
    }
}

/// Every link of this network namespace, consistent (`RTM_GETLINK` dump, retried while
/// the kernel flags it interrupted by a concurrent change).
pub fn dump() -> io::Result<Vec<Link>> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    set_timeout(&sock, DUMP_TIMEOUT)?;
    let mut last = None;
    for seq in 1..=DUMP_TRIES as u32 {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = seq;
        let mut req = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(LinkMessage::default())),
        );
        req.finalize();
        let mut out = vec![0u8; req.buffer_len()];
        req.serialize(&mut out);
        sock.send_to(&out, &SocketAddr::new(0, 0), 0)?;
        let mut batch = Batch::default();
        let mut state = DumpState::default();
        let mut buf = Vec::with_capacity(DATAGRAM);
        while !state.done {
            buf.clear();
            let (len, from) = sock.recv_from(&mut buf, libc::MSG_TRUNC)?;
            if from.port_number() != 0 {
                // Not the kernel (see `Monitor::read`).
                continue;
            }
            if len > buf.len() {
                return Err(io::Error::other("rtnetlink dump: truncated datagram"));
            }
            parse_datagram(&buf, &mut batch, Some(&mut state));
            if let Some(e) = state.error.take() {
                return Err(e);
            }
        }
        if batch.overrun {
            return Err(io::Error::other("rtnetlink dump: a message did not parse"));
        }
        let links = || {
            batch
                .changes
                .iter()
                .filter_map(|c| match c {
                    Change::New(l) => Some(l.clone()),
                    Change::Deleted(_) => None,
                })
                .collect::<Vec<_>>()
        };
        if !state.interrupted {
            return Ok(links());
        }
        last = Some(links());
    }
    // Still changing after several tries: the last view, which the events that follow
    // correct.
    Ok(last.unwrap_or_default())
}

fn set_timeout(sock: &Socket, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(t.subsec_micros() as i32),
    };
    // SAFETY: setsockopt reads a timeval from a valid pointer for its length.
    let ret = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Where a dump is.
#[derive(Debug, Default)]
struct DumpState {
    done: bool,
    interrupted: bool,
    error: Option<io::Error>,
}

/// Parses the netlink messages of one datagram into `batch`.
fn parse_datagram(data: &[u8], batch: &mut Batch, mut dump: Option<&mut DumpState>) {
    let mut offset = 0;
    while offset < data.len() {
        let Some(rest) = data.get(offset..) else {
            break;
        };
        let len = match NetlinkBuffer::new_checked(rest) {
            Ok(b) => b.length() as usize,
            Err(e) => {
                tracing::warn!(error = %e, "rtnetlink: malformed message header");
                batch.overrun = true;
                return;
            }
        };
        let Some(one) = rest.get(..len) else {
            batch.overrun = true;
            return;
        };
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(one) {
            Ok(msg) => {
                if let Some(state) = dump.as_deref_mut()
                    && msg.header.flags & NLM_F_DUMP_INTR != 0
                {
                    state.interrupted = true;
                }
                match msg.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                        if let Some(link) = link_of(&m) {
                            batch.changes.push(Change::New(link));
                        }
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
                        batch.changes.push(Change::Deleted(m.header.index));
                    }
                    NetlinkPayload::Done(_) => {
                        if let Some(state) = dump.as_deref_mut() {
                            state.done = true;
                        }
                    }
                    NetlinkPayload::Error(e) => {
                        if let Some(state) = dump.as_deref_mut() {
                            state.done = true;
                            state.error = Some(e.to_io());
                        }
                    }
                    NetlinkPayload::Overrun(_) => batch.overrun = true,
                    _ => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "rtnetlink: message did not parse; re-reading every link");
                batch.overrun = true;
            }
        }
        // Messages are 4-byte aligned.
        offset += len.div_ceil(4).max(1) * 4;
    }
}

/// The link a `RTM_NEWLINK` describes (`None` without a name, which the kernel always
/// sends).
fn link_of(m: &LinkMessage) -> Option<Link> {
    let name = m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })?;
    Some(Link {
        index: m.header.index,
        name,
        hatype: u16::from(m.header.link_layer_type),
        up: m.header.flags.contains(LinkFlags::Up),
        loopback: m.header.flags.contains(LinkFlags::Loopback),
        xdp_prog: m
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Xdp(xdp) => xdp.iter().find_map(|x| match x {
                    LinkXdp::ProgId(id) => Some(*id),
                    _ => None,
                }),
                _ => None,
            })
            .unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_lists_loopback() {
        // Every network namespace has `lo` (index 1); the dump needs no privileges.
        let links = dump().expect("RTM_GETLINK dump");
        let lo = links.iter().find(|l| l.name == "lo").expect("lo");
        assert!(lo.loopback && !lo.is_ethernet(), "{lo:?}");
    }

    /// Sets `lo` up or down (SIOCSIFFLAGS) in the calling thread's network namespace.
    fn set_lo(up: bool) {
        #[repr(C)]
        struct IfReq {
            name: [u8; libc::IFNAMSIZ],
            flags: libc::c_short,
            _pad: [u8; 22],
        }
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        };
        req.name = *b"lo\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
        // SAFETY: plain socket(2), checked below and closed at the end.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket");
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write an ifreq that outlives the calls.
        unsafe {
            assert_eq!(libc::ioctl(fd, libc::SIOCGIFFLAGS, &raw mut req), 0);
            if up {
                req.flags |= libc::IFF_UP as libc::c_short;
            } else {
                req.flags &= !(libc::IFF_UP as libc::c_short);
            }
            assert_eq!(libc::ioctl(fd, libc::SIOCSIFFLAGS, &raw mut req), 0);
            libc::close(fd);
        }
    }

    #[test]
    fn link_events_are_read_and_an_overrun_is_reported() {
        if !nix::unistd::geteuid().is_root() {
            // A private network namespace needs CAP_SYS_ADMIN.
            return;
        }
        // A thread of its own in a network namespace of its own: `lo` is ours to flap.
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            let mut monitor = Monitor::with_rcvbuf(256 << 10).expect("monitor");
            set_lo(true);
            set_lo(false);
            let batch = monitor.read();
            assert!(!batch.overrun, "{batch:?}");
            let lo: Vec<&Link> = batch.new_links().filter(|l| l.name == "lo").collect();
            assert!(
                lo.len() >= 2 && lo.first().is_some_and(|l| l.up),
                "{batch:?}"
            );
            assert!(lo.last().is_some_and(|l| !l.up && l.loopback), "{batch:?}");

            // A receive buffer of a few messages and a burst of changes: the kernel drops
            // messages and says so once (ENOBUFS), which asks for a dump.
            let mut small = Monitor::with_rcvbuf(1).expect("monitor");
            // (The kernel raises a buffer of 1 byte to its minimum, a few KiB.)
            for i in 0..200 {
                set_lo(i % 2 == 0);
            }
            let batch = small.read();
            assert!(
                batch.overrun,
                "200 changes fit a minimal buffer? {:?}",
                batch.changes.len()
            );
            // And the socket works on after the overrun.
            set_lo(true);
            let batch = small.read();
            assert!(!batch.overrun && batch.new_links().any(|l| l.name == "lo" && l.up));
        })
        .join()
        .expect("netns thread");
    }

    #[test]
    fn datagrams_not_from_the_kernel_are_ignored() {
        let mut monitor = Monitor::open().expect("monitor");
        let mut own = SocketAddr::new(0, 0);
        monitor.sock.get_address(&mut own).expect("getsockname");
        // Any process may send a unicast datagram to the monitor's port: a forged
        // RTM_DELLINK of `lo`.
        let mut forged = LinkMessage::default();
        forged.header.index = 1;
        let mut msg = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(forged)),
        );
        msg.finalize();
        let mut bytes = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut bytes);
        let mut sender = Socket::new(NETLINK_ROUTE).expect("socket");
        sender.bind_auto().expect("bind");
        sender
            .send_to(&bytes, &SocketAddr::new(own.port_number(), 0), 0)
            .expect("send");
        let batch = monitor.read();
        assert_eq!(batch.spoofed, 1, "{batch:?}");
        // (Real changes of this namespace may arrive meanwhile; the forged one is not one.)
        assert!(!batch.changes.contains(&Change::Deleted(1)), "{batch:?}");
    }

    #[test]
    fn garbage_asks_for_a_dump() {
        let mut batch = Batch::default();
        parse_datagram(&[1, 2, 3], &mut batch, None);
        assert!(batch.overrun);
        let mut batch = Batch::default();
        // A header claiming 200 bytes in a 16-byte datagram.
        let mut h = vec![200u8, 0, 0, 0, 16, 0, 0, 0];
        h.extend([0u8; 8]);
        parse_datagram(&h, &mut batch, None);
        assert!(batch.overrun);
    }
}
