//! The AF_PACKET input (capture without eBPF): frames from the receive-only packet socket the
//! supervisor created, filtered and locked, turned into the records the kernel program
//! would have written by the same user-space record builder `palisade replay` uses
//! (`palisade-record-builder`). The worker's protocol cannot tell them from ring-buffer
//! records.
//!
//! The socket carries every frame of the monitored interfaces that passes this worker's
//! classic BPF filter, both directions (`PACKET_OUTGOING` frames are egress). Each frame's
//! time is the kernel's receive stamp (`SO_TIMESTAMPNS`, set by the supervisor), wall clock,
//! and the worker's clock is the wall clock too (as replay's is the file's): every worker
//! reading a copy of a frame gets the very same stamp, so a flow's first-packet time, and
//! the `flow_id` made from it, is the same in the DNS, TLS and flow workers' events. (A
//! conversion to the boot clock would differ by the few nanoseconds between the clock
//! reads of each process.) Reads are `recvmsg` with `MSG_DONTWAIT`, a call the
//! seccomp allow-list already has for the IPC socket; nothing can be sent on the packet
//! socket (the allow-list refuses write/sendmsg on its descriptor, see [`crate::seccomp`]).

use std::{
    io::IoSliceMut,
    os::fd::{AsRawFd, OwnedFd, RawFd},
};

use nix::{
    errno::Errno,
    sys::{
        socket::{ControlMessageOwned, LinkAddr, MsgFlags, recvmsg},
        time::TimeSpec,
    },
};
use palisade_abi::{DIR_EGRESS, DIR_INGRESS};
use palisade_ipc::messages::{PacketCaptureConfig, WorkerKind};
use palisade_record_builder::{Builder, Frame, Kinds, Link, Timeouts};

/// Largest frame read whole: a GRO/GSO aggregate on a veth or a jumbo frame; a longer one
/// is cut (the builder then flags what it copies as truncated).
const FRAME_MAX: usize = 65_536 + 256;

/// `sll_pkttype` of a frame this host sent.
const PACKET_OUTGOING: u8 = 4;
/// `ARPHRD_*` of links whose frames start with an IP header.
const ARPHRD_NONE: u16 = 0xfffe;
const ARPHRD_PPP: u16 = 512;
const ARPHRD_TUNNEL: u16 = 768;
const ARPHRD_TUNNEL6: u16 = 769;
const ARPHRD_IPGRE: u16 = 778;

/// `SOL_PACKET`, `PACKET_AUXDATA` (linux/if_packet.h): the frame's metadata, the VLAN tag
/// the kernel removed from it among them.
const SOL_PACKET: i32 = 263;
const PACKET_AUXDATA: i32 = 8;
/// `struct tpacket_auxdata`: status, len, snaplen (u32), mac, net, vlan_tci, vlan_tpid (u16).
const AUXDATA_LEN: usize = 20;
const TP_STATUS_VLAN_VALID: u32 = 0x10;
const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;
const ETH_P_8021Q: u16 = 0x8100;

/// The VLAN tag (TPID, TCI) a `tpacket_auxdata` says the kernel took out of the frame.
fn vlan_tag(aux: &[u8]) -> Option<(u16, u16)> {
    let status = u32::from_ne_bytes(aux.get(0..4)?.try_into().ok()?);
    if status & TP_STATUS_VLAN_VALID == 0 {
        return None;
    }
    let tci = u16::from_ne_bytes(aux.get(16..18)?.try_into().ok()?);
    let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
        u16::from_ne_bytes(aux.get(18..20)?.try_into().ok()?)
    } else {
        ETH_P_8021Q
    };
    Some((tpid, tci))
}

/// Drop reason: a read from the packet socket failed (interface gone, a kernel error).
pub const DROP_PACKET_SOCKET: &str = "packet_socket_error";
/// Drop reason: a new flow found the record builder's flow table full.
pub const DROP_FLOW_TABLE_FULL: &str = "flow_table_full";

/// The record kinds a worker reads (its ring buffer's, live).
pub fn kinds(kind: WorkerKind) -> Kinds {
    Kinds {
        dns: kind == WorkerKind::Dns,
        dhcp: kind == WorkerKind::Dhcp,
        tls: kind == WorkerKind::Tls,
        flow: kind == WorkerKind::Flow,
    }
}

/// The packet sockets of a worker and its record builder.
#[derive(Debug)]
pub struct PacketInput {
    socks: Vec<OwnedFd>,
    kinds: Kinds,
    /// `None` until [`PacketInput::configure`]: frames wait in the socket meanwhile.
    builder: Option<Builder>,
    buf: Vec<u8>,
    /// A frame with its VLAN tag put back.
    tagged: Vec<u8>,
    /// `flows_refused` of the builder already counted.
    refused_counted: u64,
}

/// What one [`PacketInput::read`] did.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Frames read.
    pub frames: usize,
    /// Reads that failed.
    pub errors: u64,
    /// New flows refused since the last read (table full).
    pub flows_refused: u64,
}

/// The clock of a worker reading packets, and of its records: the wall clock, ns.
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .map(|t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.tv_nsec()).unwrap_or(0)
        })
        .unwrap_or(0)
}

fn link_of(hatype: u16) -> Link {
    match hatype {
        ARPHRD_NONE | ARPHRD_PPP | ARPHRD_TUNNEL | ARPHRD_TUNNEL6 | ARPHRD_IPGRE => Link::RawIp,
        _ => Link::Ethernet,
    }
}

impl PacketInput {
    /// The worker `kind`'s input over `socks`.
    pub fn new(kind: WorkerKind, socks: Vec<OwnedFd>) -> Self {
        Self {
            socks,
            kinds: kinds(kind),
            builder: None,
            buf: vec![0; FRAME_MAX],
            tagged: Vec::with_capacity(FRAME_MAX + 4),
            refused_counted: 0,
        }
    }

    /// The sockets' descriptors (for epoll and the seccomp filter).
    pub fn fds(&self) -> Vec<RawFd> {
        self.socks.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// The flow timeouts and table size the supervisor sent: reading starts.
    pub fn configure(&mut self, cfg: &PacketCaptureConfig) {
        let timeouts = Timeouts {
            idle_ns: cfg.idle_ns,
            tcp_idle_ns: cfg.tcp_idle_ns,
            update_ns: cfg.update_ns,
        };
        self.builder =
            Some(Builder::new(self.kinds, timeouts).with_max_flows(cfg.max_flows as usize));
    }

    /// Whether [`PacketInput::configure`] ran.
    pub fn configured(&self) -> bool {
        self.builder.is_some()
    }

    /// Reads up to `budget` frames (fewer when the sockets are empty) and hands every
    /// record they make to `on_record`; then lets the builder's sweeper end idle flows
    /// (at `now_ns`, wall clock, see [`now_ns`]). Returns what it did.
    pub fn read(
        &mut self,
        budget: usize,
        now_ns: u64,
        on_record: &mut impl FnMut(&[u8]),
    ) -> ReadStats {
        let mut st = ReadStats::default();
        let Some(builder) = self.builder.as_mut() else {
            return st;
        };
        let mut out = |_: u16, rec: &[u8]| on_record(rec);
        for sock in &self.socks {
            let fd = sock.as_raw_fd();
            while st.frames < budget {
                let mut cmsg = nix::cmsg_space!(TimeSpec, [u8; AUXDATA_LEN]);
                let mut iov = [IoSliceMut::new(&mut self.buf)];
                let msg = match recvmsg::<LinkAddr>(
                    fd,
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
                ) {
                    Ok(m) => m,
                    Err(Errno::EAGAIN | Errno::EINTR) => break,
                    Err(_) => {
                        st.errors += 1;
                        break;
                    }
                };
                let wire_len = msg.bytes;
                let mut ts_ns = now_ns;
                let mut tag = None;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        match c {
                            ControlMessageOwned::ScmTimestampns(t) => {
                                let wall = i128::from(t.tv_sec()) * 1_000_000_000
                                    + i128::from(t.tv_nsec());
                                ts_ns = u64::try_from(wall).unwrap_or(now_ns);
                            }
                            ControlMessageOwned::Unknown(u)
                                if u.cmsg_header.cmsg_level == SOL_PACKET
                                    && u.cmsg_header.cmsg_type == PACKET_AUXDATA =>
                            {
                                tag = vlan_tag(&u.data_bytes);
                            }
                            _ => {}
                        }
                    }
                }
                let (ifindex, direction, link) = match msg.address {
                    Some(a) => (
                        a.ifindex() as u32,
                        if a.pkttype() == PACKET_OUTGOING {
                            DIR_EGRESS
                        } else {
                            DIR_INGRESS
                        },
                        link_of(a.hatype()),
                    ),
                    None => (0, DIR_INGRESS, Link::Ethernet),
                };
                st.frames += 1;
                let mut data = self.buf.get(..wire_len.min(FRAME_MAX)).unwrap_or_default();
                let mut wire_len = wire_len;
                // The tag the kernel took out goes back where it was on the wire.
                if let (Some((tpid, tci)), Link::Ethernet, Some((macs, rest))) =
                    (tag, link, data.split_at_checked(12))
                {
                    self.tagged.clear();
                    self.tagged.extend_from_slice(macs);
                    self.tagged.extend_from_slice(&tpid.to_be_bytes());
                    self.tagged.extend_from_slice(&tci.to_be_bytes());
                    self.tagged.extend_from_slice(rest);
                    data = &self.tagged;
                    wire_len += 4;
                }
                let frame = Frame {
                    ts_ns,
                    data,
                    wire_len: u32::try_from(wire_len).unwrap_or(u32::MAX),
                    link,
                    ifindex,
                    direction,
                };
                builder.frame(&frame, &mut out);
            }
        }
        builder.tick(now_ns, &mut out);
        st.flows_refused = builder.flows_refused - self.refused_counted;
        self.refused_counted = builder.flows_refused;
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aux(status: u32, tci: u16, tpid: u16) -> Vec<u8> {
        let mut a = status.to_ne_bytes().to_vec();
        a.extend_from_slice(&[0; 12]); // len, snaplen, mac, net
        a.extend_from_slice(&tci.to_ne_bytes());
        a.extend_from_slice(&tpid.to_ne_bytes());
        a
    }

    #[test]
    fn the_stripped_vlan_tag_comes_from_auxdata() {
        assert_eq!(vlan_tag(&aux(0, 100, 0x8100)), None);
        assert_eq!(
            vlan_tag(&aux(TP_STATUS_VLAN_VALID, 100, 0)),
            Some((ETH_P_8021Q, 100))
        );
        assert_eq!(
            vlan_tag(&aux(
                TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID,
                0x2064,
                0x88a8
            )),
            Some((0x88a8, 0x2064))
        );
        assert_eq!(vlan_tag(&[0x10, 0, 0, 0]), None, "short");
    }

    #[test]
    fn each_worker_builds_only_its_records() {
        for kind in WorkerKind::ALL {
            let k = kinds(kind);
            let on = [k.dns, k.dhcp, k.tls, k.flow];
            assert_eq!(on.iter().filter(|b| **b).count(), 1, "{kind:?}");
        }
    }
}
