//! ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861: router advertisements, neighbour
//! solicitations and advertisements) as the kernel copies them to the DHCP ring
//! (`KIND_ARP`, `KIND_RA`, `KIND_ND`): what each says about which MAC holds which IP
//! address, and an RA's router lifetime and prefixes for the guard's alerts.
//!
//! Safe Rust over the runtime's checked cursor, no I/O; malformed input is a small `Copy`
//! error whose reason the worker counts. Bounded: at most [`MAX_OPTIONS`] options and
//! [`MAX_PREFIXES`] prefixes per message.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade_worker_runtime::cursor::Cursor;

/// Options read per ND message at most.
const MAX_OPTIONS: usize = 32;
/// Prefixes of an RA kept at most.
pub const MAX_PREFIXES: usize = 8;

/// ICMPv6 types.
const RA: u8 = 134;
const NS: u8 = 135;
const NA: u8 = 136;

/// ND option types (RFC 4861 4.6).
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
const OPT_PREFIX: u8 = 3;

/// Why a message was not read (the worker's drop reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighError {
    /// ARP cut short, or not Ethernet/IPv4 lengths.
    ArpMalformed,
    /// ARP for another hardware or protocol type (not Ethernet and IPv4).
    ArpOther,
    /// An NS/NA/RA cut short, with a non-zero code, an option of length 0 or past the end.
    NdMalformed,
}

impl NeighError {
    /// The drop reason counted for it.
    pub fn reason(self) -> &'static str {
        match self {
            Self::ArpMalformed => "arp_malformed",
            Self::ArpOther => "arp_not_ethernet_ipv4",
            Self::NdMalformed => "nd_malformed",
        }
    }
}

/// An ARP packet (Ethernet, IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// 1 request, 2 reply (others kept).
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

/// Reads an ARP packet; bytes after it (Ethernet padding) are ignored.
pub fn parse_arp(payload: &[u8]) -> Result<Arp, NeighError> {
    let mut c = Cursor::new(payload);
    let bad = |_| NeighError::ArpMalformed;
    let htype = c.u16().map_err(bad)?;
    let ptype = c.u16().map_err(bad)?;
    let hlen = c.u8().map_err(bad)?;
    let plen = c.u8().map_err(bad)?;
    if htype != 1 || ptype != 0x0800 {
        return Err(NeighError::ArpOther);
    }
    if hlen != 6 || plen != 4 {
        return Err(NeighError::ArpMalformed);
    }
    let op = c.u16().map_err(bad)?;
    let sender_mac = c.array::<6>().map_err(bad)?;
    let sender_ip = Ipv4Addr::from(c.array::<4>().map_err(bad)?);
    let target_mac = c.array::<6>().map_err(bad)?;
    let target_ip = Ipv4Addr::from(c.array::<4>().map_err(bad)?);
    Ok(Arp {
        op,
        sender_mac,
        sender_ip,
        target_mac,
        target_ip,
    })
}

impl Arp {
    /// The binding this packet announces: the sender's address and MAC, unless the sender
    /// has no address yet (an RFC 5227 probe from 0.0.0.0).
    pub fn binding(&self) -> Option<(IpAddr, [u8; 6])> {
        (!self.sender_ip.is_unspecified() && !self.sender_ip.is_broadcast())
            .then_some((IpAddr::V4(self.sender_ip), self.sender_mac))
    }
}

/// A prefix information option of an RA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub prefix: Ipv6Addr,
    pub len: u8,
    /// On-link (L) flag.
    pub on_link: bool,
    /// Autonomous address configuration (A) flag: clients make addresses in it.
    pub autonomous: bool,
    pub valid_lifetime: u32,
}

/// An NS, NA or RA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nd {
    /// 134, 135 or 136.
    pub icmp_type: u8,
    /// NS and NA: the target address.
    pub target: Option<Ipv6Addr>,
    /// Source link-layer address option (NS, RA).
    pub source_ll: Option<[u8; 6]>,
    /// Target link-layer address option (NA).
    pub target_ll: Option<[u8; 6]>,
    /// RA: router lifetime in seconds (0: not a default router).
    pub router_lifetime: u16,
    /// RA: managed (M) and other-configuration (O) flags.
    pub managed: bool,
    pub other_config: bool,
    /// RA: prefix information options (at most [`MAX_PREFIXES`]).
    pub prefixes: Vec<Prefix>,
}

impl Nd {
    /// The router advertisement's name, for events.
    pub fn type_name(&self) -> &'static str {
        match self.icmp_type {
            RA => "router_advertisement",
            NS => "neighbor_solicitation",
            _ => "neighbor_advertisement",
        }
    }

    /// The binding this message announces, given the IPv6 source and the frame's source
    /// MAC: an NA binds its target to its target link-layer option (or the frame's
    /// sender); an NS and an RA bind their source address to their source link-layer
    /// option (an NS from :: is duplicate address detection: nothing to bind).
    pub fn binding(&self, src: Ipv6Addr, frame_mac: [u8; 6]) -> Option<(IpAddr, [u8; 6])> {
        let (ip, mac) = match self.icmp_type {
            NA => (self.target?, self.target_ll.unwrap_or(frame_mac)),
            NS => (src, self.source_ll?),
            _ => (src, self.source_ll.unwrap_or(frame_mac)),
        };
        (!ip.is_unspecified() && !ip.is_multicast()).then_some((IpAddr::V6(ip), mac))
    }
}

fn mac_option(body: &[u8]) -> Option<[u8; 6]> {
    // RFC 4861 4.6.1: on Ethernet the option is 8 bytes, the address its first 6 of 6.
    body.get(..6).and_then(|b| b.try_into().ok())
}

/// Reads an ICMPv6 NS (135), NA (136) or RA (134), the whole message from its type byte.
pub fn parse_nd(payload: &[u8]) -> Result<Nd, NeighError> {
    let mut c = Cursor::new(payload);
    let bad = |_| NeighError::NdMalformed;
    let icmp_type = c.u8().map_err(bad)?;
    let code = c.u8().map_err(bad)?;
    c.skip(2).map_err(bad)?; // checksum (the kernel checks it on receive)
    if code != 0 || !matches!(icmp_type, RA | NS | NA) {
        return Err(NeighError::NdMalformed);
    }
    let mut nd = Nd {
        icmp_type,
        target: None,
        source_ll: None,
        target_ll: None,
        router_lifetime: 0,
        managed: false,
        other_config: false,
        prefixes: Vec::new(),
    };
    if icmp_type == RA {
        c.skip(1).map_err(bad)?; // current hop limit
        let flags = c.u8().map_err(bad)?;
        nd.managed = flags & 0x80 != 0;
        nd.other_config = flags & 0x40 != 0;
        nd.router_lifetime = c.u16().map_err(bad)?;
        c.skip(8).map_err(bad)?; // reachable time, retrans timer
    } else {
        c.skip(4).map_err(bad)?; // reserved / NA flags
        nd.target = Some(Ipv6Addr::from(c.array::<16>().map_err(bad)?));
    }
    for _ in 0..MAX_OPTIONS {
        if c.remaining() == 0 {
            break;
        }
        let kind = c.u8().map_err(bad)?;
        let units = c.u8().map_err(bad)?;
        if units == 0 {
            return Err(NeighError::NdMalformed);
        }
        let body = c.take(usize::from(units) * 8 - 2).map_err(bad)?;
        match kind {
            OPT_SOURCE_LL => nd.source_ll = mac_option(body),
            OPT_TARGET_LL => nd.target_ll = mac_option(body),
            OPT_PREFIX if icmp_type == RA && nd.prefixes.len() < MAX_PREFIXES => {
                let mut p = Cursor::new(body);
                let len = p.u8().map_err(bad)?;
                let flags = p.u8().map_err(bad)?;
                let valid_lifetime = p.u32().map_err(bad)?;
                p.skip(8).map_err(bad)?; // preferred lifetime, reserved
                let prefix = Ipv6Addr::from(p.array::<16>().map_err(bad)?);
                if len > 128 {
                    return Err(NeighError::NdMalformed);
                }
                nd.prefixes.push(Prefix {
                    prefix,
                    len,
                    on_link: flags & 0x80 != 0,
                    autonomous: flags & 0x40 != 0,
                    valid_lifetime,
                });
            }
            _ => {}
        }
    }
    Ok(nd)
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "tests: a panic is a test failure")]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0, 0x11, 0x32, 1, 2, 3];

    #[test]
    fn arp_reply_binds_its_sender() {
        let mut p = vec![0, 1, 8, 0, 6, 4, 0, 2];
        p.extend_from_slice(&MAC);
        p.extend_from_slice(&[198, 18, 0, 2]);
        p.extend_from_slice(&[2, 0, 0, 0, 0, 1, 198, 18, 0, 1]);
        p.resize(46, 0); // Ethernet padding
        let a = parse_arp(&p).expect("arp");
        assert_eq!(a.op, 2);
        assert_eq!(
            a.binding(),
            Some((IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)), MAC))
        );
        // A probe has no sender address.
        let mut probe = p.clone();
        probe[14..18].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(parse_arp(&probe).expect("probe").binding(), None);
        // Cut short, other types.
        assert_eq!(parse_arp(&p[..20]), Err(NeighError::ArpMalformed));
        let mut other = p.clone();
        other[3] = 6;
        assert_eq!(parse_arp(&other), Err(NeighError::ArpOther));
        let mut lengths = p;
        lengths[4] = 8;
        assert_eq!(parse_arp(&lengths), Err(NeighError::ArpMalformed));
    }

    fn ra() -> Vec<u8> {
        let mut m = vec![134, 0, 0, 0, 64, 0xc0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[1, 1]);
        m.extend_from_slice(&MAC);
        m.extend_from_slice(&[
            3, 4, 64, 0xc0, 0, 0, 0x0e, 0x10, 0, 0, 0x0e, 0x10, 0, 0, 0, 0,
        ]);
        m.extend_from_slice(&"2001:db8:1::".parse::<Ipv6Addr>().expect("ip").octets());
        m
    }

    #[test]
    fn router_advertisement() {
        let nd = parse_nd(&ra()).expect("ra");
        assert_eq!(nd.router_lifetime, 1800);
        assert!(nd.managed && nd.other_config);
        assert_eq!(nd.source_ll, Some(MAC));
        assert_eq!(nd.prefixes.len(), 1);
        assert_eq!(nd.prefixes[0].len, 64);
        assert!(nd.prefixes[0].autonomous);
        assert_eq!(nd.prefixes[0].valid_lifetime, 3600);
        let ll: Ipv6Addr = "fe80::211:32ff:fe01:203".parse().expect("ip");
        assert_eq!(nd.binding(ll, [2; 6]), Some((IpAddr::V6(ll), MAC)));
        // An option of length 0 would loop forever: malformed. So is one past the end.
        let mut zero = ra();
        zero[17] = 0;
        assert_eq!(parse_nd(&zero), Err(NeighError::NdMalformed));
        let mut long = ra();
        long[17] = 9;
        assert_eq!(parse_nd(&long), Err(NeighError::NdMalformed));
        assert_eq!(parse_nd(&ra()[..10]), Err(NeighError::NdMalformed));
    }

    #[test]
    fn neighbor_advertisement_and_solicitation() {
        let target: Ipv6Addr = "2001:db8::5".parse().expect("ip");
        let mut na = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
        na.extend_from_slice(&target.octets());
        na.extend_from_slice(&[2, 1]);
        na.extend_from_slice(&MAC);
        let nd = parse_nd(&na).expect("na");
        assert_eq!(nd.binding(target, [9; 6]), Some((IpAddr::V6(target), MAC)));
        // Without the option: the frame's sender.
        let nd = parse_nd(&na[..24]).expect("na");
        assert_eq!(
            nd.binding(target, [2; 6]),
            Some((IpAddr::V6(target), [2; 6]))
        );
        // DAD: an NS from :: binds nothing.
        let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
        ns.extend_from_slice(&target.octets());
        let nd = parse_nd(&ns).expect("ns");
        assert_eq!(nd.binding(Ipv6Addr::UNSPECIFIED, [2; 6]), None);
        // A non-zero code is malformed.
        ns[1] = 1;
        assert_eq!(parse_nd(&ns), Err(NeighError::NdMalformed));
    }
}
