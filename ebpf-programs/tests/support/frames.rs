//! Hand-made Ethernet frames for the parser cases real sockets do not produce: a VLAN tag in
//! the frame, IPv4 options and fragments, IPv6 extension headers, truncated headers.
//!
//! Checksums are left zero: the program never looks at them, and the receiving namespace
//! drops these frames, which is fine since only the sender's egress hook is observed.
//! IPv6 addresses are IPv4-mapped (`::ffff:198.18.0.x`) to stay inside the test range.

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_DSTOPTS: u8 = 60;

pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_PSH: u8 = 0x08;

/// The VLAN of the tagged frames.
pub const VLAN_ID: u16 = 100;

/// `::ffff:a.b.c.d`
pub fn mapped_v6(v4: [u8; 4]) -> [u8; 16] {
    let mut addr = [0; 16];
    addr[10] = 0xff;
    addr[11] = 0xff;
    addr[12..].copy_from_slice(&v4);
    addr
}

/// Ethernet header, optionally with one 802.1Q tag, then `ethertype`.
pub fn ethernet(vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&MAC_B);
    frame.extend_from_slice(&MAC_A);
    if let Some(vid) = vlan {
        frame.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        frame.extend_from_slice(&vid.to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).unwrap();
    let mut segment = Vec::new();
    for word in [sport, dport, len, 0] {
        segment.extend_from_slice(&word.to_be_bytes());
    }
    segment.extend_from_slice(payload);
    segment
}

pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut segment = Vec::new();
    segment.extend_from_slice(&sport.to_be_bytes());
    segment.extend_from_slice(&dport.to_be_bytes());
    segment.extend_from_slice(&1_u32.to_be_bytes()); // seq
    segment.extend_from_slice(&0_u32.to_be_bytes()); // ack
    segment.push(5 << 4); // data offset: 20 bytes
    segment.push(flags);
    segment.extend_from_slice(&65535_u16.to_be_bytes()); // window
    segment.extend_from_slice(&[0; 4]); // checksum, urgent pointer
    segment.extend_from_slice(payload);
    segment
}

/// IPv4 header with `options` (a multiple of 4 bytes) and `frag_offset` in 8-byte units.
pub fn ipv4(proto: u8, options: &[u8], frag_offset: u16, l4: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let ihl = u8::try_from(5 + options.len() / 4).unwrap();
    let total = u16::try_from(20 + options.len() + l4.len()).unwrap();
    let mut packet = vec![0x40 | ihl, 0];
    packet.extend_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&[0x12, 0x34]); // id
    packet.extend_from_slice(&frag_offset.to_be_bytes());
    packet.extend_from_slice(&[64, proto, 0, 0]); // ttl, protocol, checksum
    packet.extend_from_slice(&super::ADDR_A);
    packet.extend_from_slice(&super::ADDR_B);
    packet.extend_from_slice(options);
    packet.extend_from_slice(l4);
    packet
}

/// IPv6 header; `ext` is a chain of extension headers already linked to `first_next`'s chain.
pub fn ipv6(first_next: u8, ext_and_l4: &[u8]) -> Vec<u8> {
    let payload_len = u16::try_from(ext_and_l4.len()).unwrap();
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend_from_slice(&payload_len.to_be_bytes());
    packet.extend_from_slice(&[first_next, 64]);
    packet.extend_from_slice(&mapped_v6(super::ADDR_A));
    packet.extend_from_slice(&mapped_v6(super::ADDR_B));
    packet.extend_from_slice(ext_and_l4);
    packet
}

/// An 8-byte hop-by-hop or destination-options header holding one PadN option.
pub fn ipv6_options_header(next: u8) -> Vec<u8> {
    vec![next, 0, 1, 4, 0, 0, 0, 0]
}

/// An IPv6 fragment header: first fragment, more fragments follow.
pub fn ipv6_fragment_header(next: u8) -> Vec<u8> {
    vec![next, 0, 0, 1, 0, 0, 0x56, 0x78]
}

/// Concatenates frame pieces.
pub fn cat(pieces: &[&[u8]]) -> Vec<u8> {
    pieces.concat()
}
