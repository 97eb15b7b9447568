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

/// An address's bytes (4 or 16) in a fixed buffer, and how many are used.
fn octets(addr: IpAddr) -> ([u8; 16], usize) {
    let mut out = [0u8; 16];
    match addr {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (out, 4)
        }
        IpAddr::V6(a) => (a.octets(), 16),
    }
}

/// A Community ID v1: `1:` and 28 base64 characters, kept inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CommunityId([u8; 30]);

impl CommunityId {
    /// The text form's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text form, `1:...=`.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommunityId({})", self.as_str())
    }
}

impl serde::Serialize for CommunityId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
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
) -> CommunityId {
    let ((src, len), (dst, _)) = (octets(src), octets(dst));
    let (mut src, mut dst) = (
        src.get(..len).unwrap_or_default(),
        dst.get(..len).unwrap_or_default(),
    );
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
    // The whole input in one buffer: one SHA-1 update.
    let mut input = [0u8; 2 + 16 + 16 + 2 + 4];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        if let Some(slot) = input.get_mut(n..n + bytes.len()) {
            slot.copy_from_slice(bytes);
            n += bytes.len();
        }
    };
    put(&seed.to_be_bytes());
    put(src);
    put(dst);
    put(&[proto, 0]);
    if matches!(proto, ICMP | ICMPV6 | 6 | 17 | 132) {
        put(&sport.to_be_bytes());
        put(&dport.to_be_bytes());
    }
    let digest = Sha1::digest(input.get(..n).unwrap_or_default());
    let mut out = [b'='; 30];
    let (prefix, text) = out.split_at_mut(2);
    prefix.copy_from_slice(b"1:");
    base64(&digest, text);
    CommunityId(out)
}

/// Standard base64 with padding (RFC 4648 section 4) of `bytes` into `out` (which is
/// pre-filled with `=` and has room for the whole encoding).
fn base64(bytes: &[u8], out: &mut [u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut at = 0;
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            let index = ((n >> (18 - 6 * i)) & 0x3f) as usize;
            if let (Some(slot), Some(&c)) = (out.get_mut(at + i), ALPHABET.get(index)) {
                *slot = c;
            }
        }
        at += 4;
    }
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
        .to_string()
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

    fn b64(bytes: &[u8]) -> String {
        let mut out = vec![b'='; bytes.len().div_ceil(3) * 4];
        base64(bytes, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn base64_pads() {
        assert_eq!(b64(b""), "");
        assert_eq!(b64(b"f"), "Zg==");
        assert_eq!(b64(b"fo"), "Zm8=");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(b"foob"), "Zm9vYg==");
    }
}
