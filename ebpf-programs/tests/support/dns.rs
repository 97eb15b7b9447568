//! DNS messages, checksummed frames, an independent frame parser, and BPF_PROG_TEST_RUN, for
//! the domain-policy tests.
//!
//! Everything here is written from the RFCs, not from the C program: frames are built with
//! correct IPv4 header and UDP checksums (RFC 791, 768, 8200), so that a test can run one
//! through a classifier and check the kernel's output byte by byte.

use std::{io, os::fd::BorrowedFd};

pub const MAC_CLIENT: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
pub const MAC_SERVER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x53];
pub const V4_CLIENT: [u8; 4] = [198, 18, 7, 1];
pub const V4_SERVER: [u8; 4] = [198, 18, 7, 53];
/// fd00:198:18:7::1 and ::53: ULA, inside the test only.
pub const V6_CLIENT: [u8; 16] = [0xfd, 0, 0x01, 0x98, 0, 0x18, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1];
pub const V6_SERVER: [u8; 16] = [
    0xfd, 0, 0x01, 0x98, 0, 0x18, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0x53,
];

pub const TYPE_A: u16 = 1;
pub const TYPE_OPT: u16 = 41;
pub const CLASS_IN: u16 = 1;

/// Wire labels of a dotted name (no escapes: a test that needs odd bytes builds labels itself).
pub fn labels(name: &str) -> Vec<Vec<u8>> {
    name.split('.')
        .filter(|l| !l.is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

/// Wire QNAME of `labels` (no compression).
pub fn qname(labels: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for label in labels {
        out.push(u8::try_from(label.len()).expect("label <= 255 for the test"));
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

/// An EDNS(0) OPT record: UDP size 1232, no options... plus a cookie-sized option so that
/// something non-trivial follows the question.
pub fn opt_record() -> Vec<u8> {
    let mut rr = vec![0]; // root owner
    rr.extend_from_slice(&TYPE_OPT.to_be_bytes());
    rr.extend_from_slice(&1232_u16.to_be_bytes());
    rr.extend_from_slice(&[0, 0, 0, 0]); // ext rcode, version, flags
    let option = [0_u8, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]; // COOKIE, 8-byte client cookie
    rr.extend_from_slice(&u16::try_from(option.len()).unwrap_or(0).to_be_bytes());
    rr.extend_from_slice(&option);
    rr
}

/// A DNS query: `qname` bytes as given (so tests can put pointers or odd bytes in), type A,
/// RD set, with an OPT record when `edns`.
pub fn query_with_qname(id: u16, qname: &[u8], edns: bool) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[0x01, 0x00]); // RD
    msg.extend_from_slice(&1_u16.to_be_bytes()); // QDCOUNT
    msg.extend_from_slice(&[0, 0, 0, 0]); // AN, NS
    msg.extend_from_slice(&u16::from(edns).to_be_bytes()); // AR
    msg.extend_from_slice(qname);
    msg.extend_from_slice(&TYPE_A.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    if edns {
        msg.extend_from_slice(&opt_record());
    }
    msg
}

pub fn query(id: u16, name: &str, edns: bool) -> Vec<u8> {
    query_with_qname(id, &qname(&labels(name)), edns)
}

/// The answer a resolver would give to `query` (A record `addr` for the question, TTL 300,
/// compressed owner name, and an OPT record).
pub fn answer(query: &[u8], addr: [u8; 4]) -> Vec<u8> {
    let question_end = question_end(query).expect("query with a plain QNAME");
    let mut msg = query[..question_end].to_vec();
    msg[2] = 0x81; // QR, RD
    msg[3] = 0x80; // RA, NOERROR
    msg[6..8].copy_from_slice(&1_u16.to_be_bytes()); // ANCOUNT
    msg[8..10].copy_from_slice(&0_u16.to_be_bytes()); // NSCOUNT
    msg[10..12].copy_from_slice(&1_u16.to_be_bytes()); // ARCOUNT
    msg.extend_from_slice(&[0xc0, 12]); // pointer to the QNAME
    msg.extend_from_slice(&TYPE_A.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    msg.extend_from_slice(&300_u32.to_be_bytes());
    msg.extend_from_slice(&4_u16.to_be_bytes());
    msg.extend_from_slice(&addr);
    msg.extend_from_slice(&opt_record());
    msg
}

/// End of the first question (header + QNAME + type + class), for an uncompressed QNAME.
pub fn question_end(msg: &[u8]) -> Option<usize> {
    let mut pos = 12;
    loop {
        let len = usize::from(*msg.get(pos)?);
        if len & 0xc0 != 0 {
            return None;
        }
        pos += 1 + len;
        if len == 0 {
            break;
        }
    }
    Some(pos + 4).filter(|&end| end <= msg.len())
}

/// Ones' complement sum of 16-bit big-endian words (odd length padded with a zero byte).
pub fn ones_sum(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

pub fn finish(sum: u32) -> u16 {
    !(u16::try_from(ones_sum(sum, &[])).unwrap_or(0))
}

/// UDP checksum over the pseudo header of (src, dst) and `segment` (with its checksum field
/// zero), 0 mapped to 0xffff.
pub fn udp_checksum(src: &[u8], dst: &[u8], segment: &[u8]) -> u16 {
    let len = u32::try_from(segment.len()).unwrap_or(0);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(src);
    pseudo.extend_from_slice(dst);
    if src.len() == 4 {
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&u16::try_from(len).unwrap_or(0).to_be_bytes());
    } else {
        pseudo.extend_from_slice(&len.to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 17]);
    }
    let mut zeroed = segment.to_vec();
    zeroed[6] = 0;
    zeroed[7] = 0;
    match finish(ones_sum(ones_sum(0, &pseudo), &zeroed)) {
        0 => 0xffff,
        sum => sum,
    }
}

/// What to put in a frame.
#[derive(Debug, Clone)]
pub struct Udp<'a> {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// 4 or 16 bytes each.
    pub src: &'a [u8],
    pub dst: &'a [u8],
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
    /// Compute the UDP checksum (IPv4 may send 0).
    pub checksum: bool,
    pub ttl: u8,
    /// IPv6 only: a hop-by-hop options header before UDP.
    pub hop_by_hop: bool,
}

impl<'a> Udp<'a> {
    pub fn v4(payload: &'a [u8], sport: u16, dport: u16) -> Self {
        Self {
            src_mac: MAC_CLIENT,
            dst_mac: MAC_SERVER,
            src: &V4_CLIENT,
            dst: &V4_SERVER,
            sport,
            dport,
            payload,
            checksum: true,
            ttl: 61,
            hop_by_hop: false,
        }
    }

    pub fn v6(payload: &'a [u8], sport: u16, dport: u16) -> Self {
        Self {
            src: &V6_CLIENT,
            dst: &V6_SERVER,
            ..Self::v4(payload, sport, dport)
        }
    }

    /// The Ethernet frame, all checksums right.
    pub fn frame(&self) -> Vec<u8> {
        let len = u16::try_from(8 + self.payload.len()).expect("small datagram");
        let mut segment = Vec::new();
        segment.extend_from_slice(&self.sport.to_be_bytes());
        segment.extend_from_slice(&self.dport.to_be_bytes());
        segment.extend_from_slice(&len.to_be_bytes());
        segment.extend_from_slice(&[0, 0]);
        segment.extend_from_slice(self.payload);
        if self.checksum {
            let sum = udp_checksum(self.src, self.dst, &segment);
            segment[6..8].copy_from_slice(&sum.to_be_bytes());
        }
        let mut frame = Vec::new();
        frame.extend_from_slice(&self.dst_mac);
        frame.extend_from_slice(&self.src_mac);
        if self.src.len() == 4 {
            frame.extend_from_slice(&0x0800_u16.to_be_bytes());
            let total = u16::try_from(20 + segment.len()).expect("small packet");
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&[0xbe, 0xef, 0x40, 0]); // id, DF
            ip.extend_from_slice(&[self.ttl, 17, 0, 0]);
            ip.extend_from_slice(self.src);
            ip.extend_from_slice(self.dst);
            let check = finish(ones_sum(0, &ip));
            ip[10..12].copy_from_slice(&check.to_be_bytes());
            frame.extend_from_slice(&ip);
        } else {
            frame.extend_from_slice(&0x86dd_u16.to_be_bytes());
            let ext: &[u8] = if self.hop_by_hop {
                &[17, 0, 1, 4, 0, 0, 0, 0] // next UDP, PadN
            } else {
                &[]
            };
            let payload_len = u16::try_from(ext.len() + segment.len()).expect("small packet");
            frame.extend_from_slice(&[0x60, 0, 0, 0]);
            frame.extend_from_slice(&payload_len.to_be_bytes());
            frame.push(if self.hop_by_hop { 0 } else { 17 });
            frame.push(self.ttl);
            frame.extend_from_slice(self.src);
            frame.extend_from_slice(self.dst);
            frame.extend_from_slice(ext);
        }
        frame.extend_from_slice(&segment);
        frame
    }
}

/// An Ethernet + IP + UDP frame taken apart, with every length and checksum checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: Vec<u8>,
    pub dst: Vec<u8>,
    pub ttl: u8,
    pub sport: u16,
    pub dport: u16,
    /// The UDP checksum field (0: none, IPv4 only).
    pub udp_check: u16,
    pub payload: Vec<u8>,
}

/// Parses a frame made by [`Udp::frame`] (or rewritten by the kernel), checking the IPv4 header
/// checksum, every length, and the UDP checksum when present; `Err` says what is wrong.
pub fn parse(frame: &[u8]) -> Result<Parsed, String> {
    let get = |range: std::ops::Range<usize>| {
        frame
            .get(range.clone())
            .ok_or_else(|| format!("frame of {} bytes has no {range:?}", frame.len()))
    };
    let dst_mac: [u8; 6] = get(0..6)?.try_into().map_err(|_| "mac")?;
    let src_mac: [u8; 6] = get(6..12)?.try_into().map_err(|_| "mac")?;
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let (src, dst, ttl, l4) = match ethertype {
        0x0800 => {
            let ip = get(14..34)?;
            if ip[0] != 0x45 {
                return Err(format!("IPv4 version/IHL {:#x}", ip[0]));
            }
            if finish(ones_sum(0, ip)) != 0 {
                return Err("bad IPv4 header checksum".into());
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if 14 + total != frame.len() {
                return Err(format!("IPv4 total length {total}, frame {}", frame.len()));
            }
            (ip[12..16].to_vec(), ip[16..20].to_vec(), ip[8], 34)
        }
        0x86dd => {
            let ip = get(14..54)?;
            let payload_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            if 54 + payload_len != frame.len() {
                return Err(format!(
                    "IPv6 payload length {payload_len}, frame {}",
                    frame.len()
                ));
            }
            if ip[6] != 17 {
                return Err(format!("IPv6 next header {}", ip[6]));
            }
            (ip[8..24].to_vec(), ip[24..40].to_vec(), ip[7], 54)
        }
        other => return Err(format!("ethertype {other:#x}")),
    };
    let segment = get(l4..frame.len())?;
    if segment.len() < 8 {
        return Err("short UDP".into());
    }
    let udp_len = usize::from(u16::from_be_bytes([segment[4], segment[5]]));
    if udp_len != segment.len() {
        return Err(format!("UDP length {udp_len}, segment {}", segment.len()));
    }
    let udp_check = u16::from_be_bytes([segment[6], segment[7]]);
    if (udp_check != 0 || src.len() == 16) && udp_check != udp_checksum(&src, &dst, segment) {
        return Err(format!(
            "bad UDP checksum {udp_check:#06x}, expected {:#06x}",
            udp_checksum(&src, &dst, segment)
        ));
    }
    Ok(Parsed {
        dst_mac,
        src_mac,
        src,
        dst,
        ttl,
        sport: u16::from_be_bytes([segment[0], segment[1]]),
        dport: u16::from_be_bytes([segment[2], segment[3]]),
        udp_check,
        payload: segment[8..].to_vec(),
    })
}

/// `TC_ACT_*` as the classifier returns them (u32 view of the int).
pub const TC_ACT_UNSPEC: u32 = u32::MAX;
pub const TC_ACT_SHOT: u32 = 2;
pub const TC_ACT_REDIRECT: u32 = 7;

/// Runs a classifier once over `frame` (`BPF_PROG_TEST_RUN`): its return value and the frame as
/// it left the program (rewrites and trims included; redirects are not carried out).
pub fn test_run(prog: BorrowedFd<'_>, frame: &[u8]) -> io::Result<(u32, Vec<u8>)> {
    test_run_repeat(prog, frame, 1).map(|(ret, out, _)| (ret, out))
}

/// [`test_run`] `repeat` times in the kernel; also returns the average run time in ns.
pub fn test_run_repeat(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    repeat: u32,
) -> io::Result<(u32, Vec<u8>, u32)> {
    palisade_ebpf::prog_test_run_frame(prog, frame, repeat)
}

/// `dig` output, reduced to what the tests look at.
#[derive(Debug, Clone)]
pub struct Dig {
    /// Exit status (9: no reply).
    pub code: i32,
    /// The query's id (`+qr`).
    pub query_id: Option<u16>,
    /// The answer's header: status and id.
    pub status: Option<String>,
    pub answer_id: Option<u16>,
    /// A records in the answer section.
    pub addresses: Vec<String>,
    pub text: String,
}

impl Dig {
    pub fn parse(code: i32, text: String) -> Self {
        let mut headers = text.lines().filter_map(|line| {
            line.split_once("->>HEADER<<-")
                .map(|(_, rest)| rest.to_owned())
        });
        let field = |header: &str, name: &str| {
            header
                .split(',')
                .find_map(|part| part.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
        };
        let query = headers.next();
        let reply = headers.next();
        let query_id = query
            .as_deref()
            .and_then(|h| field(h, "id:"))
            .and_then(|v| v.parse().ok());
        let status = reply.as_deref().and_then(|h| field(h, "status:"));
        let answer_id = reply
            .as_deref()
            .and_then(|h| field(h, "id:"))
            .and_then(|v| v.parse().ok());
        let mut addresses = Vec::new();
        let mut in_answer = false;
        for line in text.lines() {
            if line.starts_with(";; ANSWER SECTION") {
                in_answer = true;
                continue;
            }
            if in_answer {
                if line.trim().is_empty() {
                    in_answer = false;
                    continue;
                }
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.get(3) == Some(&"A") {
                    addresses.extend(fields.get(4).map(|s| (*s).to_owned()));
                }
            }
        }
        Self {
            code,
            query_id,
            status,
            answer_id,
            addresses,
            text,
        }
    }
}
