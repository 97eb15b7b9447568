//! Packets to records in user space: the records the TC observer (ebpf-programs/bpf/) makes
//! for a packet, byte for byte in layout and field by field in meaning, so that the workers'
//! parsers see what they see live. One parse (`pkt.bpf.h`), one flow table (`flows.bpf.h`,
//! with the sweeper's ends, `flow_sweeper.bpf.h`), and one small function per payload kind
//! (`capture.bpf.h`): adding a record kind is adding one such function and its line in
//! [`Builder::classify`].
//!
//! Differences from the kernel, all forced by the input: a capture file has no interface
//! index or direction (the caller says which), its packets may be cut at the snap length
//! (the copied payload is then what the file holds, flagged truncated), and its clock is the
//! file's (wall-clock ns stand where the kernel writes boot-clock ns).

use std::collections::HashMap;

mod tls;

use palisade_abi::{
    CAP_ARP, CAP_DHCP, CAP_DNS, CAP_ICMP6, CAP_QUIC, FLAG_TRUNCATED, FLAG_VLAN, FLOW_F_VLAN,
    FLOW_REASON_FIN, FLOW_REASON_NONE, FLOW_REASON_RST, FLOW_REASON_TIMEOUT, FlowKey, FlowValue,
    KIND_ARP, KIND_DHCP, KIND_DNS, KIND_FLOW_END, KIND_FLOW_START, KIND_FLOW_UPDATE, KIND_ND,
    KIND_QUIC, KIND_RA, QUIC_MIN_DATAGRAM, QUIC_V1, QUIC_V2, RecordHeader,
};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ETH_P_QINQ1: u16 = 0x9100;
const VLAN_MAX_TAGS: usize = 2;
const IPV6_MAX_EXT: usize = 4;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
/// ICMPv6 router advertisement, neighbour solicitation, neighbour advertisement
/// (`neigh_capture.bpf.h`).
const ICMP6_RA: u8 = 134;
const ICMP6_NA: u8 = 136;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

const FIN_CLIENT: u8 = 1;
const FIN_SERVER: u8 = 2;

const PORT_DNS: u16 = 53;
const PORT_DHCP_SERVER: u16 = 67;
const PORT_DHCP_CLIENT: u16 = 68;
/// DHCPv6 (RFC 8415): copied as DHCP records too; the worker tells it by port.
const PORT_DHCP6_CLIENT: u16 = 546;
const PORT_DHCP6_SERVER: u16 = 547;
/// `PAL_FLOW_CLOSE_LINGER_NS` (flow_sweeper.bpf.h): a closed TCP flow ends this long after its
/// last packet.
const CLOSE_LINGER_NS: u64 = 1_000_000_000;

/// Flows the table holds by default: the daemon's default `[flow] memory_mib` (256) over
/// the kernel's bytes per flow.
pub const DEFAULT_MAX_FLOWS: usize = ((256u64 << 20) / palisade_abi::FLOW_BYTES) as usize;

/// How often (file time) the sweeper's work runs: idle flows end within this of their timeout.
const SWEEP_NS: u64 = 1_000_000_000;

/// Where a frame's network layer starts: the capture's link type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Ethernet, with up to two VLAN tags (802.1Q, 802.1ad or 0x9100).
    Ethernet,
    /// An IP packet with no link header (LINKTYPE_RAW, IPV4, IPV6).
    RawIp,
    /// Linux cooked capture v1 (16-byte header).
    Sll,
    /// Linux cooked capture v2 (20-byte header).
    Sll2,
    /// BSD loopback / null: a 4-byte address family in the capturing host's byte order
    /// (`Loop`: network order).
    Null,
    /// OpenBSD loopback: the family in network order.
    Loop,
}

/// Which record kinds to build (the workers that will read them).
#[derive(Debug, Clone, Copy, Default)]
pub struct Kinds {
    /// DNS payload records (kind 1).
    pub dns: bool,
    /// DHCP payload records (kind 2).
    pub dhcp: bool,
    /// Flow start and end records (kinds 4, 5).
    pub flow: bool,
    /// TLS handshake segments (kind 3) and QUIC Initial datagrams (kind 11).
    pub tls: bool,
}

/// Flow timeouts, as `[flow]` sets them for the kernel's sweeper.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// UDP and ICMP flows end after this long without a packet.
    pub idle_ns: u64,
    /// TCP flows without a FIN pair or RST.
    pub tcp_idle_ns: u64,
    /// A flow whose last start or update record is this old gets an update record
    /// (`[flow] update_interval_s`); 0: none.
    pub update_ns: u64,
}

impl Default for Timeouts {
    /// The daemon's defaults (`[flow]` idle_timeout_s 60, tcp_idle_timeout_s 300).
    fn default() -> Self {
        Self {
            idle_ns: 60_000_000_000,
            tcp_idle_ns: 300_000_000_000,
            update_ns: 0,
        }
    }
}

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time, ns since the epoch: the records' `ts_boot_ns`.
    pub ts_ns: u64,
    /// The bytes the file holds (possibly cut at the snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub wire_len: u32,
    /// Its link type.
    pub link: Link,
    /// The record header's `ifindex`.
    pub ifindex: u32,
    /// `DIR_INGRESS` or `DIR_EGRESS`.
    pub direction: u8,
}

/// What the parser learnt about one packet (`struct pal_pkt`).
#[derive(Debug, Default, Clone, Copy)]
struct Pkt {
    saddr: [u8; 16],
    daddr: [u8; 16],
    now_ns: u64,
    flow_start_ns: u64,
    /// Offset of the L4 payload in the captured data, and its length on the wire.
    pay_off: usize,
    pay_len: u32,
    frame_len: u32,
    flow_pay: u32,
    vlan_id: u16,
    sport: u16,
    dport: u16,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    ifindex: u32,
    direction: u8,
    flags: u8,
    ip_version: u8,
    l4_proto: u8,
    tcp_flags: u8,
    tcp_seq: u32,
    tcp_ack: u32,
    /// The flow entry's `tls_follow` byte (set by the flow update).
    tls_follow: bool,
    ip_frag: bool,
    icmp_type: u8,
    icmp_code: u8,
}

fn be16(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(d.get(off..off + 2)?.try_into().ok()?))
}

fn byte(d: &[u8], off: usize) -> Option<u8> {
    d.get(off).copied()
}

fn is_vlan(proto: u16) -> bool {
    matches!(proto, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ1)
}

/// The link layer (`l2_walk()`): the offset of the network header and its EtherType, or
/// `None` when the frame is not IP to the observer.
fn parse_l2(f: &Frame<'_>, p: &mut Pkt) -> Option<(usize, u16)> {
    let d = f.data;
    match f.link {
        Link::Ethernet => {
            p.dst_mac = d.get(0..6)?.try_into().ok()?;
            p.src_mac = d.get(6..12)?.try_into().ok()?;
            let mut proto = be16(d, 12)?;
            let mut off = ETH_HLEN;
            for _ in 0..VLAN_MAX_TAGS {
                if !is_vlan(proto) {
                    break;
                }
                let tci = be16(d, off)?;
                if p.flags & FLAG_VLAN == 0 {
                    p.flags |= FLAG_VLAN;
                    p.vlan_id = tci & 0x0fff;
                }
                proto = be16(d, off + 2)?;
                off += 4;
            }
            (!is_vlan(proto)).then_some((off, proto))
        }
        Link::RawIp => {
            let proto = match byte(d, 0)? >> 4 {
                4 => ETH_P_IP,
                6 => ETH_P_IPV6,
                _ => return None,
            };
            Some((0, proto))
        }
        // Cooked: the protocol field is an EtherType; the address is the sender's.
        Link::Sll => {
            if let (Some(6), Some(src)) = (be16(d, 4), d.get(6..12)) {
                p.src_mac.copy_from_slice(src);
            }
            Some((16, be16(d, 14)?))
        }
        Link::Sll2 => {
            if let (Some(6), Some(src)) = (byte(d, 11), d.get(12..18)) {
                p.src_mac.copy_from_slice(src);
            }
            Some((20, be16(d, 0)?))
        }
        Link::Null | Link::Loop => {
            let raw: [u8; 4] = d.get(0..4)?.try_into().ok()?;
            // Null: the capturing host's byte order; a family is small, so its zero high
            // bytes tell which.
            let big = f.link == Link::Loop || raw.get(..2) == Some(&[0, 0]);
            let family = if big {
                u32::from_be_bytes(raw)
            } else {
                u32::from_le_bytes(raw)
            };
            // AF_INET is 2 everywhere; AF_INET6 is 10, 24, 28 or 30 depending on the OS.
            let proto = match family {
                2 => ETH_P_IP,
                10 | 24 | 28 | 30 => ETH_P_IPV6,
                _ => return None,
            };
            Some((4, proto))
        }
    }
}

/// Where the IP packet ends in wire terms: its length field, or the frame's.
fn l3_len(field: usize, l3_off: usize, wire_len: usize) -> usize {
    let avail = wire_len.saturating_sub(l3_off);
    if field == 0 || field > avail {
        avail
    } else {
        field
    }
}

/// IPv4 and IPv6 (`parse_ipv4()`, `parse_ipv6()`): the L4 header offset and the end of the
/// IP packet, both as offsets in the frame.
fn parse_l3(
    d: &[u8],
    wire_len: usize,
    l3_off: usize,
    proto: u16,
    p: &mut Pkt,
) -> Option<(usize, usize)> {
    let ip = d.get(l3_off..)?;
    if proto == ETH_P_IP {
        let vihl = byte(ip, 0)?;
        let ihl = usize::from(vihl & 0x0f) * 4;
        if vihl >> 4 != 4 || ihl < 20 || ip.len() < 20 {
            return None;
        }
        let len = l3_len(usize::from(be16(ip, 2)?), l3_off, wire_len);
        if len < ihl {
            return None;
        }
        let frag = be16(ip, 6)?;
        if frag & 0x1fff != 0 {
            return None;
        }
        p.ip_frag = frag & 0x2000 != 0;
        p.ip_version = 4;
        p.l4_proto = byte(ip, 9)?;
        p.saddr[..4].copy_from_slice(ip.get(12..16)?);
        p.daddr[..4].copy_from_slice(ip.get(16..20)?);
        return Some((l3_off + ihl, l3_off + len));
    }
    if proto != ETH_P_IPV6 {
        return None;
    }
    if byte(ip, 0)? >> 4 != 6 || ip.len() < 40 {
        return None;
    }
    let plen = usize::from(be16(ip, 4)?);
    let len = l3_len(if plen == 0 { 0 } else { 40 + plen }, l3_off, wire_len);
    let end = l3_off + len;
    let mut next = byte(ip, 6)?;
    let mut off = 40;
    let skippable = |n: u8| matches!(n, 0 | 43 | 60);
    for _ in 0..IPV6_MAX_EXT {
        if !skippable(next) {
            break;
        }
        let hdrlen = usize::from(byte(ip, off + 1)?);
        next = byte(ip, off)?;
        off += (hdrlen + 1) * 8;
    }
    if next == 44 {
        let fo = be16(ip, off + 2)?;
        if fo & !0x7 != 0 {
            return None;
        }
        p.ip_frag = fo & 1 != 0;
        next = byte(ip, off)?;
        off += 8;
    }
    if skippable(next) || next == 44 || l3_off + off > end {
        return None;
    }
    p.ip_version = 6;
    p.l4_proto = next;
    p.saddr.copy_from_slice(ip.get(8..24)?);
    p.daddr.copy_from_slice(ip.get(24..40)?);
    Some((l3_off + off, end))
}

/// TCP, UDP, ICMP and ICMPv6 (`parse_l4()`).
fn parse_l4(d: &[u8], l4_off: usize, l4_end: usize, p: &mut Pkt) -> Option<()> {
    let l4 = d.get(l4_off..)?;
    let mut udp_len = 0;
    match p.l4_proto {
        TCP => {
            let doff = usize::from(byte(l4, 12)? >> 4);
            if doff < 5 || l4.len() < 20 {
                return None;
            }
            p.pay_off = l4_off + doff * 4;
            p.sport = be16(l4, 0)?;
            p.dport = be16(l4, 2)?;
            p.tcp_flags = byte(l4, 13)?;
            p.tcp_seq = u32::from_be_bytes(l4.get(4..8)?.try_into().ok()?);
            p.tcp_ack = u32::from_be_bytes(l4.get(8..12)?.try_into().ok()?);
        }
        UDP => {
            if l4.len() < 8 {
                return None;
            }
            p.pay_off = l4_off + 8;
            p.sport = be16(l4, 0)?;
            p.dport = be16(l4, 2)?;
            udp_len = usize::from(be16(l4, 4)?);
        }
        ICMP | ICMPV6 => {
            if p.l4_proto != if p.ip_version == 4 { ICMP } else { ICMPV6 } {
                return None;
            }
            p.icmp_type = byte(l4, 0)?;
            p.icmp_code = byte(l4, 1)?;
            // The whole message, for the neighbour discovery records (`nd_capture()`).
            p.pay_off = l4_off;
            p.pay_len = u32::try_from(l4_end.checked_sub(l4_off)?).ok()?;
            return Some(());
        }
        _ => return None,
    }
    if p.pay_off > l4_end {
        return None;
    }
    let mut pay = l4_end - p.pay_off;
    if udp_len >= 8 && udp_len - 8 < pay {
        pay = udp_len - 8;
    }
    p.pay_len = u32::try_from(pay).ok()?;
    Some(())
}

/// The observer's parse of one frame, or `None` when it makes no record for it; `true`
/// with an ARP packet (`PAL_PARSE_ARP`: no flow, its own record).
fn parse(f: &Frame<'_>) -> Option<(Pkt, bool)> {
    let mut p = Pkt {
        now_ns: f.ts_ns,
        ifindex: f.ifindex,
        direction: f.direction,
        ..Pkt::default()
    };
    let wire = usize::try_from(f.wire_len).ok()?.max(f.data.len());
    let (l3_off, proto) = parse_l2(f, &mut p)?;
    if proto == ETH_P_ARP {
        // `arp_capture()`: from the hardware type on, at most the cap (Ethernet pads a
        // 28-byte packet to 46; the padding is not the packet's).
        p.pay_off = l3_off;
        p.pay_len = u32::try_from(wire.checked_sub(l3_off)?).ok()?.min(CAP_ARP);
        return Some((p, true));
    }
    let (l4_off, l4_end) = parse_l3(f.data, wire, l3_off, proto, &mut p)?;
    parse_l4(f.data, l4_off, l4_end, &mut p)?;
    // Flow counters count frames as an Ethernet capture would (`flow_sizes()`): other link
    // headers are replaced by an Ethernet one.
    let frame = if f.link == Link::Ethernet {
        wire
    } else {
        wire - l3_off + ETH_HLEN
    };
    p.frame_len = u32::try_from(frame).ok()?;
    p.flow_pay = if matches!(p.l4_proto, TCP | UDP) {
        p.pay_len
    } else {
        0
    };
    Some((p, false))
}

/// `struct pal_flow_key`: the direction-normalized tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    addr_lo: [u8; 16],
    addr_hi: [u8; 16],
    port_lo: u16,
    port_hi: u16,
    l4_proto: u8,
    ip_version: u8,
}

/// `struct pal_flow_value`, what the records need of it.
#[derive(Debug, Clone, Copy, Default)]
struct Value {
    first_seen_ns: u64,
    last_seen_ns: u64,
    pkts: [u64; 2],
    bytes: [u64; 2],
    payload_bytes: [u64; 2],
    tcp_flags: [u8; 2],
    client_is_lo: bool,
    fin_mask: u8,
    ifindex: u32,
    client_mac: [u8; 6],
    server_mac: [u8; 6],
    vlan_id: u16,
    flags: u8,
    direction: u8,
    icmp_type: u8,
    icmp_code: u8,
    /// `tls_follow`: the TLS capture follows this connection's handshake.
    tls_follow: bool,
    /// When its last start or update record was made.
    last_report_ns: u64,
}

impl Value {
    fn closed(&self) -> bool {
        self.fin_mask == FIN_CLIENT | FIN_SERVER
            || (self.tcp_flags[0] | self.tcp_flags[1]) & TCP_RST != 0
    }

    fn close_reason(&self) -> u8 {
        if (self.tcp_flags[0] | self.tcp_flags[1]) & TCP_RST != 0 {
            FLOW_REASON_RST
        } else {
            FLOW_REASON_FIN
        }
    }
}

fn key_fill(p: &Pkt) -> (Key, bool) {
    let lo = (p.saddr, p.sport) <= (p.daddr, p.dport);
    let (a, b) = if lo {
        ((p.saddr, p.sport), (p.daddr, p.dport))
    } else {
        ((p.daddr, p.dport), (p.saddr, p.sport))
    };
    (
        Key {
            addr_lo: a.0,
            addr_hi: b.0,
            port_lo: a.1,
            port_hi: b.1,
            l4_proto: p.l4_proto,
            ip_version: p.ip_version,
        },
        lo,
    )
}

/// Turns frames into records, in the order the kernel would write them.
#[derive(Debug)]
pub struct Builder {
    kinds: Kinds,
    timeouts: Timeouts,
    flows: HashMap<Key, Value>,
    next_sweep_ns: u64,
    /// The record being built (header, then payload).
    buf: Vec<u8>,
    /// Handshakes the TLS capture follows (`pal_tls_conns`).
    tls_conns: HashMap<Key, tls::Conn>,
    /// The flow table's capacity: a new flow finds no room beyond it (the kernel's map is
    /// full), and counts in `flows_refused`.
    max_flows: usize,
    /// Frames seen, frames that made no record because they were not parsable.
    pub packets: u64,
    /// New flows refused because the table was full (the kernel's `map_full` drop).
    pub flows_refused: u64,
}

impl Builder {
    /// A builder making `kinds`, flows ending after `timeouts`.
    pub fn new(kinds: Kinds, timeouts: Timeouts) -> Self {
        Self {
            kinds,
            timeouts,
            flows: HashMap::new(),
            next_sweep_ns: 0,
            buf: Vec::with_capacity(RecordHeader::SIZE + 4096),
            tls_conns: HashMap::new(),
            max_flows: DEFAULT_MAX_FLOWS,
            packets: 0,
            flows_refused: 0,
        }
    }

    /// Holds at most `flows` flows at once (the daemon's `[flow] memory_mib` capacity): a
    /// builder fed live traffic must not grow without bound.
    pub fn with_max_flows(mut self, flows: usize) -> Self {
        self.max_flows = flows.max(1);
        self
    }

    /// One frame: calls `out` with every record it makes (kind, whole record).
    pub fn frame(&mut self, f: &Frame<'_>, out: &mut impl FnMut(u16, &[u8])) {
        self.packets += 1;
        if f.ts_ns >= self.next_sweep_ns {
            self.sweep(f.ts_ns, false, out);
            self.next_sweep_ns = f.ts_ns.saturating_add(SWEEP_NS);
        }
        let Some((mut p, arp)) = parse(f) else { return };
        if arp {
            if self.kinds.dhcp {
                self.emit_payload(f.data, &p, KIND_ARP, CAP_ARP, false, out);
            }
            return;
        }
        let (start, follow) = self.flow_update(&p, out);
        p.flow_start_ns = start;
        p.tls_follow = follow;
        self.classify(f.data, &p, out);
    }

    /// Time passes without a frame (live input): the sweeper's work, at most once per second.
    pub fn tick(&mut self, now_ns: u64, out: &mut impl FnMut(u16, &[u8])) {
        if now_ns >= self.next_sweep_ns {
            self.sweep(now_ns, false, out);
            self.next_sweep_ns = now_ns.saturating_add(SWEEP_NS);
        }
    }

    /// The end of the capture: every flow still in the table ends, as at a daemon's stop
    /// the sweeper would end them (closed TCP flows with their FIN or RST, the others with
    /// `timeout`), stamped with the time of the last packet.
    pub fn finish(&mut self, now_ns: u64, out: &mut impl FnMut(u16, &[u8])) {
        self.sweep(now_ns, true, out);
    }

    /// The sweeper (`flow_sweeper.bpf.h`): ends closed flows a linger after their last
    /// packet and idle ones after their timeout; with `all`, every flow; gives the others
    /// an update record every `update_ns`. In first-seen order, so output does not depend
    /// on hashing.
    fn sweep(&mut self, now_ns: u64, all: bool, out: &mut impl FnMut(u16, &[u8])) {
        let t = self.timeouts;
        let mut ended: Vec<(Key, Value, u8)> = Vec::new();
        let mut updated: Vec<(Key, Value)> = Vec::new();
        self.flows.retain(|k, v| {
            let idle = now_ns.saturating_sub(v.last_seen_ns);
            let reason = if k.l4_proto == TCP && v.closed() {
                (all || idle >= CLOSE_LINGER_NS).then(|| v.close_reason())
            } else {
                let limit = if k.l4_proto == TCP {
                    t.tcp_idle_ns
                } else {
                    t.idle_ns
                };
                (all || idle >= limit).then_some(FLOW_REASON_TIMEOUT)
            };
            match reason {
                Some(r) => {
                    ended.push((*k, *v, r));
                    false
                }
                None => {
                    if t.update_ns > 0 && now_ns.saturating_sub(v.last_report_ns) >= t.update_ns {
                        v.last_report_ns = now_ns;
                        updated.push((*k, *v));
                    }
                    true
                }
            }
        });
        ended.sort_by_key(|(k, v, _)| (v.first_seen_ns, *k));
        for (k, v, r) in ended {
            self.emit_flow(&k, &v, KIND_FLOW_END, r, now_ns, out);
        }
        updated.sort_by_key(|(k, v)| (v.first_seen_ns, *k));
        for (k, v) in updated {
            self.emit_flow(&k, &v, KIND_FLOW_UPDATE, FLOW_REASON_NONE, now_ns, out);
        }
    }

    /// `flow_update()`: accounts the packet, reports a start (and the end of a closed flow
    /// a new SYN reuses); returns the flow's first_seen_ns, 0 when it has none, and its
    /// `tls_follow` byte.
    fn flow_update(&mut self, p: &Pkt, out: &mut impl FnMut(u16, &[u8])) -> (u64, bool) {
        if !matches!(p.l4_proto, TCP | UDP | ICMP | ICMPV6) {
            return (0, false);
        }
        let (key, sender_is_lo) = key_fill(p);
        if p.l4_proto == TCP
            && p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
            && self.flows.get(&key).is_some_and(Value::closed)
            && let Some(old) = self.flows.remove(&key)
        {
            self.emit_flow(&key, &old, KIND_FLOW_END, old.close_reason(), p.now_ns, out);
        }
        let Some(val) = self.flows.get_mut(&key) else {
            let may_start = p.l4_proto != TCP
                || (p.tcp_flags & TCP_RST == 0 && (p.tcp_flags & TCP_SYN != 0 || p.pay_len > 0));
            if !may_start {
                return (0, false);
            }
            if self.flows.len() >= self.max_flows {
                self.flows_refused += 1;
                return (0, false);
            }
            let mut v = Value {
                first_seen_ns: p.now_ns,
                last_seen_ns: p.now_ns,
                last_report_ns: p.now_ns,
                pkts: [1, 0],
                bytes: [u64::from(p.frame_len), 0],
                payload_bytes: [u64::from(p.flow_pay), 0],
                tcp_flags: [p.tcp_flags, 0],
                client_is_lo: sender_is_lo,
                fin_mask: if p.tcp_flags & TCP_FIN != 0 {
                    FIN_CLIENT
                } else {
                    0
                },
                ifindex: p.ifindex,
                client_mac: p.src_mac,
                server_mac: p.dst_mac,
                direction: p.direction,
                icmp_type: p.icmp_type,
                icmp_code: p.icmp_code,
                ..Value::default()
            };
            if p.flags & FLAG_VLAN != 0 {
                v.vlan_id = p.vlan_id;
                v.flags |= FLOW_F_VLAN;
            }
            self.flows.insert(key, v);
            self.emit_flow(&key, &v, KIND_FLOW_START, FLOW_REASON_NONE, p.now_ns, out);
            return (p.now_ns, false);
        };
        let to_client = usize::from(sender_is_lo != val.client_is_lo);
        if let (Some(pk), Some(b), Some(pb), Some(fl)) = (
            val.pkts.get_mut(to_client),
            val.bytes.get_mut(to_client),
            val.payload_bytes.get_mut(to_client),
            val.tcp_flags.get_mut(to_client),
        ) {
            *pk += 1;
            *b += u64::from(p.frame_len);
            *pb += u64::from(p.flow_pay);
            *fl |= p.tcp_flags;
        }
        val.last_seen_ns = p.now_ns;
        if p.tcp_flags & TCP_FIN != 0 {
            val.fin_mask |= if to_client == 1 {
                FIN_SERVER
            } else {
                FIN_CLIENT
            };
        }
        (val.first_seen_ns, val.tls_follow)
    }

    /// `emit_flow()`: a flow record made from the table entry alone.
    fn emit_flow(
        &mut self,
        key: &Key,
        val: &Value,
        kind: u16,
        reason: u8,
        now_ns: u64,
        out: &mut impl FnMut(u16, &[u8]),
    ) {
        if !self.kinds.flow {
            return;
        }
        let key = FlowKey {
            addr_lo: key.addr_lo,
            addr_hi: key.addr_hi,
            port_lo: key.port_lo,
            port_hi: key.port_hi,
            l4_proto: key.l4_proto,
            ip_version: key.ip_version,
            _pad: 0,
        };
        let val = FlowValue {
            first_seen_ns: val.first_seen_ns,
            last_seen_ns: val.last_seen_ns,
            last_report_ns: val.last_report_ns,
            pkts: val.pkts,
            bytes: val.bytes,
            payload_bytes: val.payload_bytes,
            tcp_flags: val.tcp_flags,
            client_is_lo: u8::from(val.client_is_lo),
            fin_mask: val.fin_mask,
            ifindex: val.ifindex,
            client_mac: val.client_mac,
            server_mac: val.server_mac,
            vlan_id: val.vlan_id,
            flags: val.flags,
            direction: val.direction,
            icmp_type: val.icmp_type,
            icmp_code: val.icmp_code,
            tls_follow: u8::from(val.tls_follow),
            ..FlowValue::default()
        };
        self.buf.clear();
        self.buf
            .extend_from_slice(&palisade_abi::flow_record(&key, &val, kind, reason, now_ns));
        out(kind, &self.buf);
    }

    /// `classify_payload()`: the payload records this packet makes. One line per kind.
    fn classify(&mut self, data: &[u8], p: &Pkt, out: &mut impl FnMut(u16, &[u8])) {
        let tcp = p.l4_proto == TCP;
        if !tcp && p.l4_proto != UDP {
            if p.l4_proto == ICMPV6 && (ICMP6_RA..=ICMP6_NA).contains(&p.icmp_type) {
                self.nd(data, p, out);
            }
            return;
        }
        let either = |port| p.sport == port || p.dport == port;
        if either(PORT_DNS) {
            self.dns(data, p, tcp, out);
        } else if !tcp {
            if either(PORT_DHCP_SERVER)
                || either(PORT_DHCP_CLIENT)
                || either(PORT_DHCP6_SERVER)
                || either(PORT_DHCP6_CLIENT)
            {
                self.dhcp(data, p, out);
            } else {
                self.quic(data, p, out);
            }
        } else if self.kinds.tls
            && (p.tls_follow || p.flow_start_ns == 0 || tls::hello_start(data, p) != 0)
        {
            self.tls_capture(data, p, out);
        }
    }

    /// `quic_capture()`: a UDP datagram of at least 1200 bytes whose first packet is a QUIC
    /// v1 or v2 Initial (long header; type 0 in v1, 1 in v2), whole up to the cap.
    fn quic(&mut self, data: &[u8], p: &Pkt, out: &mut impl FnMut(u16, &[u8])) {
        if !self.kinds.tls || p.pay_len < QUIC_MIN_DATAGRAM {
            return;
        }
        let Some(&[first, v0, v1, v2, v3]) = data.get(p.pay_off..p.pay_off + 5) else {
            return;
        };
        let version = u32::from_be_bytes([v0, v1, v2, v3]);
        let kind = (first >> 4) & 0x03;
        if first & 0x80 == 0
            || !((version == QUIC_V1 && kind == 0) || (version == QUIC_V2 && kind == 1))
        {
            return;
        }
        self.emit_payload(data, p, KIND_QUIC, CAP_QUIC, false, out);
    }

    /// `nd_capture()`: router advertisements, neighbour solicitations and advertisements,
    /// the whole ICMPv6 message up to the cap, for the DHCP worker's bindings and devices.
    /// (The DHCP guard's verdict is the kernel's policy: offline and over AF_PACKET, an RA
    /// carries none.)
    fn nd(&mut self, data: &[u8], p: &Pkt, out: &mut impl FnMut(u16, &[u8])) {
        if self.kinds.dhcp {
            let kind = if p.icmp_type == ICMP6_RA {
                KIND_RA
            } else {
                KIND_ND
            };
            self.emit_payload(data, p, kind, CAP_ICMP6, false, out);
        }
    }

    /// DHCP over UDP 67/68 and DHCPv6 over 546/547: the payload prefix.
    fn dhcp(&mut self, data: &[u8], p: &Pkt, out: &mut impl FnMut(u16, &[u8])) {
        if self.kinds.dhcp {
            self.emit_payload(data, p, KIND_DHCP, CAP_DHCP, false, out);
        }
    }

    /// `dns_capture()`: UDP always (a first fragment flagged truncated), TCP with payload.
    fn dns(&mut self, data: &[u8], p: &Pkt, tcp: bool, out: &mut impl FnMut(u16, &[u8])) {
        if !self.kinds.dns || (tcp && p.pay_len == 0) {
            return;
        }
        self.emit_payload(data, p, KIND_DNS, CAP_DNS, !tcp && p.ip_frag, out);
    }

    /// `emit_payload()`: header from the packet, the first `cap` payload bytes.
    fn emit_payload(
        &mut self,
        data: &[u8],
        p: &Pkt,
        kind: u16,
        cap: u32,
        cut: bool,
        out: &mut impl FnMut(u16, &[u8]),
    ) {
        let want = p.pay_len.min(cap);
        let have = data.get(p.pay_off..).unwrap_or_default();
        let taken = have.get(..want as usize).unwrap_or(have);
        let len = taken.len() as u32;
        let mut flags = p.flags;
        if cut || len < p.pay_len {
            flags |= FLAG_TRUNCATED;
        }
        let hdr = RecordHeader {
            kind,
            ifindex: p.ifindex,
            ts_boot_ns: p.now_ns,
            direction: p.direction,
            ip_version: p.ip_version,
            l4_proto: p.l4_proto,
            flags,
            vlan_id: p.vlan_id,
            src_port: p.sport,
            dst_port: p.dport,
            src_mac: p.src_mac,
            dst_mac: p.dst_mac,
            src_addr: p.saddr,
            dst_addr: p.daddr,
            orig_payload_len: p.pay_len,
            flow_start_ns: p.flow_start_ns,
            ..RecordHeader::new(palisade_abi::Kind::Dns, len)
        };
        self.buf.clear();
        self.buf.extend_from_slice(&hdr.to_bytes());
        self.buf.extend_from_slice(taken);
        out(kind, &self.buf);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use palisade_abi::FlowRecord;

    const T: u64 = 1_700_000_000_000_000_000;

    /// An IPv4/UDP DNS query (10.0.0.1:1000 -> 10.0.0.2:53), as an IP packet.
    fn ip_dns() -> Vec<u8> {
        let payload = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01";
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let total = (20 + 8 + payload.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&1000u16.to_be_bytes());
        p.extend_from_slice(&53u16.to_be_bytes());
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    fn records(link: Link, data: &[u8]) -> Vec<(u16, RecordHeader, Vec<u8>)> {
        let mut b = Builder::new(
            Kinds {
                dns: true,
                dhcp: true,
                flow: true,
                tls: true,
            },
            Timeouts::default(),
        );
        let mut out = Vec::new();
        let f = Frame {
            ts_ns: T,
            data,
            wire_len: data.len() as u32,
            link,
            ifindex: 1,
            direction: 0,
        };
        let mut push = |k: u16, r: &[u8]| {
            let (h, p) = RecordHeader::read(r).unwrap();
            out.push((k, h, p.to_vec()));
        };
        b.frame(&f, &mut push);
        b.finish(T + 5, &mut push);
        out
    }

    #[test]
    fn arp_and_neighbour_discovery_make_the_kernels_records() {
        // An ARP reply (padded to the Ethernet minimum): the packet only, no flow.
        let mut arp = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x06".to_vec();
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 2, 10, 0, 0, 2]);
        arp.resize(60, 0);
        let r = records(Link::Ethernet, &arp);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].0, KIND_ARP);
        assert_eq!(
            r[0].2,
            arp[14..],
            "the packet with its padding, within the cap"
        );
        assert_eq!(r[0].1.src_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(r[0].1.flow_start_ns, 0);

        // ICMPv6 from fe80::1 to ff02::1: an RA, a neighbour advertisement, an echo.
        let icmp6 = |msg: &[u8]| {
            let mut f = b"\x33\x33\0\0\0\x01\x02\0\0\0\0\x01\x86\xdd".to_vec();
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(msg.len() as u16).to_be_bytes());
            f.extend_from_slice(&[58, 255]);
            f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            f.extend_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            f.extend_from_slice(msg);
            f
        };
        let ra = [134, 0, 0, 0, 64, 0, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0];
        let na = [
            136, 0, 0, 0, 0x20, 0, 0, 0, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        for (msg, kind) in [(&ra[..], KIND_RA), (&na[..], KIND_ND)] {
            let r = records(Link::Ethernet, &icmp6(msg));
            let kinds: Vec<u16> = r.iter().map(|x| x.0).collect();
            assert_eq!(kinds, [KIND_FLOW_START, kind, KIND_FLOW_END], "{r:?}");
            assert_eq!(r[1].2, msg, "the whole ICMPv6 message");
            assert_eq!(r[1].1.ip_version, 6);
        }
        let echo = records(Link::Ethernet, &icmp6(&[128, 0, 0, 0, 0, 1, 0, 1]));
        let kinds: Vec<u16> = echo.iter().map(|x| x.0).collect();
        assert_eq!(kinds, [KIND_FLOW_START, KIND_FLOW_END], "an echo is not ND");
    }

    #[test]
    fn every_link_type_gives_the_same_records() {
        let ip = ip_dns();
        let mut eth = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00".to_vec();
        eth.extend_from_slice(&ip);
        let base = records(Link::Ethernet, &eth);
        let kinds: Vec<u16> = base.iter().map(|r| r.0).collect();
        assert_eq!(kinds, [KIND_FLOW_START, KIND_DNS, KIND_FLOW_END]);
        let dns = &base[1];
        assert_eq!(dns.1.src_port, 1000);
        assert_eq!(dns.1.dst_port, 53);
        assert_eq!(dns.1.ts_boot_ns, T);
        assert_eq!(dns.1.flow_start_ns, T);
        assert_eq!(dns.1.src_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(&dns.1.dst_addr[..4], &[10, 0, 0, 2]);
        assert_eq!(dns.2, ip[28..]);
        let end = FlowRecord::from_bytes(&base[2].2).unwrap();
        assert_eq!(end.end_reason, FLOW_REASON_TIMEOUT);
        assert_eq!(end.bytes_toserver, eth.len() as u64);

        let mut vlan = eth[..12].to_vec();
        vlan.extend_from_slice(b"\x88\xa8\x00\x64\x81\x00\x00\xc8\x08\x00");
        vlan.extend_from_slice(&ip);
        let mut sll = b"\x00\x00\x00\x01\x00\x06\x02\0\0\0\0\x01\0\0\x08\x00".to_vec();
        sll.extend_from_slice(&ip);
        let mut sll2 =
            b"\x08\x00\x00\x00\x00\x00\x00\x02\x00\x01\x00\x06\x02\0\0\0\0\x01\0\0".to_vec();
        sll2.extend_from_slice(&ip);
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        let mut lo = 2u32.to_be_bytes().to_vec();
        lo.extend_from_slice(&ip);
        for (link, data) in [
            (Link::Ethernet, vlan),
            (Link::RawIp, ip.clone()),
            (Link::Sll, sll),
            (Link::Sll2, sll2),
            (Link::Null, null),
            (Link::Loop, lo),
        ] {
            let got = records(link, &data);
            assert_eq!(got.len(), 3, "{link:?}");
            let (h, p) = (&got[1].1, &got[1].2);
            assert_eq!(p, &dns.2, "{link:?}");
            assert_eq!(
                (h.src_addr, h.dst_addr),
                (dns.1.src_addr, dns.1.dst_addr),
                "{link:?}"
            );
            assert_eq!((h.src_port, h.dst_port), (1000, 53), "{link:?}");
            if link == Link::Ethernet {
                // The outer tag's VID; the tags count in the frame bytes.
                assert_eq!(h.flags & FLAG_VLAN, FLAG_VLAN);
                assert_eq!(h.vlan_id, 100);
            }
            let end = FlowRecord::from_bytes(&got[2].2).unwrap();
            let want = if link == Link::Ethernet {
                eth.len() + 8
            } else {
                eth.len()
            };
            assert_eq!(end.bytes_toserver, want as u64, "{link:?}");
        }
    }

    #[test]
    fn tcp_flows_close_linger_and_port_reuse_as_the_kernel() {
        // SYN, SYN-ACK, FIN, FIN, then a new SYN on the same ports 0.5 s later: the closed
        // flow ends (fin) and a new one starts; a bare ACK of an unknown flow starts nothing.
        fn tcp(from_client: bool, flags: u8) -> Vec<u8> {
            let (s, d, sp, dp) = if from_client {
                ([10, 0, 0, 1], [10, 0, 0, 2], 4000u16, 443u16)
            } else {
                ([10, 0, 0, 2], [10, 0, 0, 1], 443, 4000)
            };
            let mut p = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0];
            p.extend_from_slice(&s);
            p.extend_from_slice(&d);
            p.extend_from_slice(&sp.to_be_bytes());
            p.extend_from_slice(&dp.to_be_bytes());
            p.extend_from_slice(&[0; 8]);
            p.extend_from_slice(&[0x50, flags, 0, 0, 0, 0, 0, 0]);
            p
        }
        let mut b = Builder::new(
            Kinds {
                flow: true,
                ..Kinds::default()
            },
            Timeouts::default(),
        );
        let mut out = Vec::new();
        let mut push = |_: u16, r: &[u8]| {
            let (h, p) = RecordHeader::read(r).unwrap();
            out.push((h, FlowRecord::from_bytes(p).unwrap()));
        };
        let pkts = [
            (0, true, TCP_SYN),
            (1, false, TCP_SYN | TCP_ACK),
            (2, true, TCP_FIN | TCP_ACK),
            (3, false, TCP_FIN | TCP_ACK),
            (500_000_000, true, TCP_SYN),
            (600_000_000, false, TCP_RST),
        ];
        for (dt, c, fl) in pkts {
            let data = tcp(c, fl);
            let f = Frame {
                ts_ns: T + dt,
                data: &data,
                wire_len: 40,
                link: Link::RawIp,
                ifindex: 1,
                direction: 0,
            };
            b.frame(&f, &mut push);
        }
        let ack = tcp(true, TCP_ACK);
        let mut other = ack.clone();
        other[15] = 9; // another client: unknown flow
        let f = Frame {
            ts_ns: T + 700_000_000,
            data: &other,
            wire_len: 40,
            link: Link::RawIp,
            ifindex: 1,
            direction: 0,
        };
        b.frame(&f, &mut push);
        b.finish(T + 700_000_000, &mut push);
        let seq: Vec<(u16, u8, u64, u64)> = out
            .iter()
            .map(|(h, r)| (h.kind, r.end_reason, r.pkts_toserver, r.pkts_toclient))
            .collect();
        assert_eq!(
            seq,
            [
                (KIND_FLOW_START, FLOW_REASON_NONE, 1, 0),
                (KIND_FLOW_END, FLOW_REASON_FIN, 2, 2),
                (KIND_FLOW_START, FLOW_REASON_NONE, 1, 0),
                (KIND_FLOW_END, FLOW_REASON_RST, 1, 1),
            ]
        );
        assert_eq!(out[1].0.ts_boot_ns, T + 500_000_000);
        assert_eq!(out[1].0.src_port, 4000);
    }

    /// An IPv4 TCP segment 10.0.0.1:4000 <-> 10.0.0.2:443 with `seq`, `ack` and payload.
    fn seg(from_client: bool, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
        let (s, d, sp, dp) = if from_client {
            ([10, 0, 0, 1], [10, 0, 0, 2], 4000u16, 443u16)
        } else {
            ([10, 0, 0, 2], [10, 0, 0, 1], 443, 4000)
        };
        let total = (40 + payload.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 64, 6, 0, 0]);
        p.extend_from_slice(&s);
        p.extend_from_slice(&d);
        p.extend_from_slice(&sp.to_be_bytes());
        p.extend_from_slice(&dp.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ack.to_be_bytes());
        p.extend_from_slice(&[0x50, flags, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn tls_handshakes_are_followed_as_the_kernel_follows_them() {
        use palisade_abi::{
            KIND_TLS, TLS_DIR_CLIENT, TLS_DIR_SERVER, TLS_SEG_FIRST, TLS_SEG_LAST, TlsSeg,
        };
        // A 300-byte ClientHello record in two segments, a ServerHello, then application
        // data each way (the direction ends there), then more data (not copied).
        let mut hello = vec![22, 3, 1, 1, 40, 1, 0, 1, 36];
        hello.resize(5 + 296, 0xab);
        let mut server = vec![22, 3, 3, 0, 4, 2, 0, 0, 0];
        server.extend_from_slice(&[23, 3, 3, 0, 2, 0xee, 0xee]);
        let (c0, s0) = (1000u32, 5000u32);
        let pkts = [
            seg(true, TCP_SYN, c0, 0, b""),
            seg(false, TCP_SYN | TCP_ACK, s0, c0 + 1, b""),
            seg(true, TCP_ACK, c0 + 1, s0 + 1, &hello[..100]),
            seg(true, TCP_ACK, c0 + 101, s0 + 1, &hello[100..]),
            seg(false, TCP_ACK, s0 + 1, c0 + 302, &server),
            seg(true, TCP_ACK, c0 + 302, s0 + 17, &[23, 3, 3, 0, 1, 0]),
            seg(true, TCP_ACK, c0 + 308, s0 + 17, &[23, 3, 3, 0, 1, 0]),
        ];
        let mut b = Builder::new(
            Kinds {
                tls: true,
                ..Kinds::default()
            },
            Timeouts::default(),
        );
        let mut out = Vec::new();
        for (i, data) in pkts.iter().enumerate() {
            let f = Frame {
                ts_ns: T + i as u64,
                data,
                wire_len: data.len() as u32,
                link: Link::RawIp,
                ifindex: 1,
                direction: 0,
            };
            b.frame(&f, &mut |k: u16, r: &[u8]| {
                let (h, p) = RecordHeader::read(r).unwrap();
                let (seg, bytes) = TlsSeg::read(p).unwrap();
                out.push((k, h, seg, bytes.to_vec()));
            });
        }
        let got: Vec<(u8, u32, usize, u8)> = out
            .iter()
            .map(|(k, _, s, d)| {
                assert_eq!(*k, KIND_TLS);
                (s.dir, s.offset, d.len(), s.flags)
            })
            .collect();
        assert_eq!(
            got,
            [
                (TLS_DIR_CLIENT, 0, 100, TLS_SEG_FIRST),
                (TLS_DIR_CLIENT, 100, 201, 0),
                // The ServerHello record, not the application data after it.
                (TLS_DIR_SERVER, 0, 9, TLS_SEG_FIRST | TLS_SEG_LAST),
            ]
        );
        // Every record names the handshake by the first hello's time and the flow's start.
        assert!(
            out.iter()
                .all(|(_, h, s, _)| s.conn_ns == T + 2 && h.flow_start_ns == T)
        );
        assert_eq!(out[1].3, hello[100..]);
        assert_eq!(out[0].2.seq, c0 + 1);
        // The client's application data ended the client direction too: the handshake is
        // no longer followed.
        assert!(b.tls_conns.is_empty());
    }

    #[test]
    fn long_flows_get_update_records_every_interval() {
        let mut b = Builder::new(
            Kinds {
                flow: true,
                ..Kinds::default()
            },
            Timeouts {
                update_ns: 2_000_000_000,
                ..Timeouts::default()
            },
        );
        let mut out = Vec::new();
        let mut push = |k: u16, r: &[u8]| {
            let (h, p) = RecordHeader::read(r).unwrap();
            out.push((
                k,
                h.ts_boot_ns,
                FlowRecord::from_bytes(p).unwrap().pkts_toserver,
            ));
        };
        let data = ip_dns();
        for s in 0..5u64 {
            let f = Frame {
                ts_ns: T + s * 1_000_000_000,
                data: &data,
                wire_len: data.len() as u32,
                link: Link::RawIp,
                ifindex: 1,
                direction: 0,
            };
            b.frame(&f, &mut push);
        }
        b.tick(T + 5_000_000_000, &mut push);
        let kinds: Vec<(u16, u64, u64)> = out
            .iter()
            .map(|(k, ts, pkts)| (*k, (ts - T) / 1_000_000_000, *pkts))
            .collect();
        // A start, then an update each 2 s (the sweeper runs before each frame's count).
        assert_eq!(
            kinds,
            [
                (KIND_FLOW_START, 0, 1),
                (KIND_FLOW_UPDATE, 2, 2),
                (KIND_FLOW_UPDATE, 4, 4),
            ]
        );
    }
}
