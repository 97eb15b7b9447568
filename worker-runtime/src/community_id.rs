//! Community ID v1 (https://github.com/corelight/community-id-spec): a
//! hash of the flow tuple that other tools (Suricata, Zeek, Arkime, Elastic)
//! compute the same way, so records of one connection join across tools.
//!
//! `1:` + base64(SHA-1(seed (u16 BE) | src addr | dst addr | proto | 0 |
//! src port (u16 BE) | dst port (u16 BE))), endpoints ordered smaller
//! (address, port) first. ICMP "ports" are the type and code, or the type
//! and its counterpart type for request/reply pairs (which makes both
//! directions hash alike); other ICMP messages are one-way and keep their
//! order.

use std::net::IpAddr;

use sha1::{Digest, Sha1};

const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// The counterpart of an ICMP type in a request/reply pair, if it has one.
fn icmp_counterpart(proto: u8, icmp_type: u8) -> Option<u8> {
    match (proto, icmp_type) {
        // Echo, router solicitation/advertisement, timestamp, information, address mask.
        (ICMP, 8) => Some(0),
        (ICMP, 0) => Some(8),
        (ICMP, 10) => Some(9),
        (ICMP, 9) => Some(10),
        (ICMP, 13) => Some(14),
        (ICMP, 14) => Some(13),
        (ICMP, 15) => Some(16),
        (ICMP, 16) => Some(15),
        (ICMP, 17) => Some(18),
        (ICMP, 18) => Some(17),
        // Echo, multicast listener query/report, router and neighbour solicitation/
        // advertisement, node information query/response, home agent address discovery.
        (ICMPV6, 128) => Some(129),
        (ICMPV6, 129) => Some(128),
        (ICMPV6, 130) => Some(131),
        (ICMPV6, 131) => Some(130),
        (ICMPV6, 133) => Some(134),
        (ICMPV6, 134) => Some(133),
        (ICMPV6, 135) => Some(136),
        (ICMPV6, 136) => Some(135),
        (ICMPV6, 139) => Some(140),
        (ICMPV6, 140) => Some(139),
        (ICMPV6, 144) => Some(145),
        (ICMPV6, 145) => Some(144),
        _ => None,
    }
}

fn octets(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The Community ID of a flow. For ICMP/ICMPv6 pass the type as `sport` and the code as
/// `dport`; ports are ignored for protocols without them (pass 0).
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
) -> String {
    let (mut src, mut dst) = (octets(src), octets(dst));
    let (mut sport, mut dport) = (sport, dport);
    let mut one_way = false;
    if proto == ICMP || proto == ICMPV6 {
        let icmp_type = u8::try_from(sport).unwrap_or(u8::MAX);
        match icmp_counterpart(proto, icmp_type) {
            Some(other) => dport = u16::from(other),
            None => one_way = true,
        }
    }
    if !one_way && (&src, sport) > (&dst, dport) {
        std::mem::swap(&mut src, &mut dst);
        std::mem::swap(&mut sport, &mut dport);
    }
    let mut hasher = Sha1::new();
    hasher.update(seed.to_be_bytes());
    hasher.update(&src);
    hasher.update(&dst);
    hasher.update([proto, 0]);
    if matches!(proto, ICMP | ICMPV6 | 6 | 17 | 132) {
        hasher.update(sport.to_be_bytes());
        hasher.update(dport.to_be_bytes());
    }
    format!("1:{}", base64(&hasher.finalize()))
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = ((n >> (18 - 6 * i)) & 0x3f) as usize;
                out.push(ALPHABET.get(index).map_or('=', |&c| char::from(c)));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests: a panic is a test failure")]
mod tests {
    use super::*;

    fn id(src: &str, dst: &str, proto: u8, sport: u16, dport: u16) -> String {
        community_id(
            0,
            src.parse().unwrap(),
            dst.parse().unwrap(),
            proto,
            sport,
            dport,
        )
    }

    /// The spec's reference vectors (corelight/community-id-spec, also used by Elastic's
    /// ingest processor tests), in both directions.
    #[test]
    fn reference_vectors() {
        for (a, b, proto, pa, pb, want) in [
            (
                "128.232.110.120",
                "66.35.250.204",
                6,
                34855,
                80,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                "192.168.1.52",
                "8.8.8.8",
                17,
                54585,
                53,
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
            (
                "2001:470:e5bf:dead:4957:2174:e82c:4887",
                "2607:f8b0:400c:c03::1a",
                6,
                63943,
                25,
                "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            ),
            (
                "192.168.170.8",
                "192.168.170.56",
                132,
                7,
                7,
                "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            ),
        ] {
            assert_eq!(id(a, b, proto, pa, pb), want);
            assert_eq!(id(b, a, proto, pb, pa), want);
        }
    }

    #[test]
    fn icmp_vectors() {
        // Echo request and its reply hash alike.
        assert_eq!(
            id("192.168.0.89", "192.168.0.1", 1, 8, 0),
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="
        );
        assert_eq!(
            id("192.168.0.1", "192.168.0.89", 1, 0, 0),
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="
        );
        assert_eq!(
            id("fe80::260:97ff:fe07:69ea", "ff02::1", 58, 134, 0),
            "1:pkvHqCL88/tg1k4cPigmZXUtL00="
        );
        assert_eq!(
            id(
                "3ffe:507:0:1:200:86ff:fe05:80da",
                "3ffe:501:0:1001::2",
                58,
                128,
                0
            ),
            "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="
        );
        assert_eq!(
            id(
                "3ffe:501:0:1001::2",
                "3ffe:507:0:1:200:86ff:fe05:80da",
                58,
                129,
                0
            ),
            "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }
}
