//! One-core load generator: prebuilt Ethernet frames sent with `sendmmsg` on
//! an AF_PACKET socket with PACKET_QDISC_BYPASS (each frame goes straight to
//! the driver: on a veth, into the peer's receive path on this same CPU).
//!
//! The socket is bound to protocol 0, so it receives nothing and adds no
//! per-packet tap on the receive side. Frames are linear skbs (no TX_RING,
//! so no zero-copy pages for veth to copy).
//!
//! Traffic kinds:
//! - `udp`: 18-byte UDP datagrams to port 9, one fixed 5-tuple (one flow).
//! - `dns`: valid DNS queries (QTYPE A, RD set) to UDP 53, each with its own
//!   query id and name `q<9 base-32 chars of a counter>.bench.test`, from
//!   `--sports` source ports (1 = one flow).
//!
//! `--saddrs N` also walks N source addresses (counting up from `--src-ip`),
//! changing address every `--sports` packets: `sports x saddrs` distinct
//! flows, every packet a new flow until they repeat (flow-churn load).
//!
//! IPv4 and UDP checksums are valid. The destination MAC is a parameter:
//! `bench/run` uses one that is not the receiver's, so the receiver's stack
//! drops every frame right after the TC ingress hook (PACKET_OTHERHOST), a
//! drop-everything sink that adds almost no cost of its own.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{Result, os_err};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Small UDP datagrams to port 9 (no record beyond the flow start).
    Udp,
    /// Small DNS queries to UDP 53.
    Dns,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Interface to send on.
    #[arg(long)]
    iface: String,
    /// Traffic kind.
    #[arg(long, value_enum)]
    kind: Kind,
    /// How long to send.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Stop after this many packets (0 = no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Distinct source ports, used round-robin (1 = a fixed 5-tuple).
    #[arg(long, default_value_t = 1)]
    sports: u16,
    /// Distinct source addresses, counting up from --src-ip (1 = one).
    #[arg(long, default_value_t = 1)]
    saddrs: u32,
    /// First source port.
    #[arg(long, default_value_t = 40000)]
    sport_base: u16,
    /// Frames per sendmmsg call.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Pace to this many packets per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pps: u64,
    #[arg(long, default_value = "02:00:00:00:00:02")]
    src_mac: String,
    #[arg(long, default_value = "02:00:00:00:00:99")]
    dst_mac: String,
    #[arg(long, default_value = "198.18.0.2")]
    src_ip: Ipv4Addr,
    #[arg(long, default_value = "198.18.0.1")]
    dst_ip: Ipv4Addr,
}

#[derive(Debug, Serialize)]
struct Outcome {
    kind: &'static str,
    sent: u64,
    /// Packets the kernel refused (ENOBUFS etc.).
    errors: u64,
    elapsed_s: f64,
    pps: f64,
    frame_bytes: usize,
    sports: u16,
    /// The pacing target (0 = unpaced).
    target_pps: u64,
}

const ETH_LEN: usize = 14;
const IP_LEN: usize = 20;
const UDP_LEN: usize = 8;
const L4_OFF: usize = ETH_LEN + IP_LEN;
const PAY_OFF: usize = L4_OFF + UDP_LEN;
const FRAME_CAP: usize = 128;
/// Characters of the varying label (after the leading 'q').
const NAME_VAR: usize = 9;
/// Offset of the varying characters inside the DNS payload: 12-byte header,
/// label length, 'q'.
const DNS_NAME_VAR_OFF: usize = 12 + 1 + 1;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("MAC {s:?}: {e}"))?;
    <[u8; 6]>::try_from(parts.as_slice()).map_err(|_| format!("MAC {s:?}: need 6 bytes"))
}

/// RFC 1071 one's-complement sum, not yet folded.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        if let [a, b] = c {
            acc += u32::from(u16::from_be_bytes([*a, *b]));
        }
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Length field of the UDP header of an IPv4 frame.
fn udp_len(frame: &[u8]) -> usize {
    match frame.get(L4_OFF + 4..L4_OFF + 6) {
        Some(&[a, b]) => usize::from(u16::from_be_bytes([a, b])),
        _ => 0,
    }
}

/// UDP checksum over the IPv4 pseudo header and the datagram.
fn udp_csum(frame: &[u8]) -> u16 {
    let len = udp_len(frame);
    let mut acc = sum16(frame.get(ETH_LEN + 12..ETH_LEN + 20).unwrap_or_default(), 0);
    acc += 17 + len as u32;
    acc = sum16(frame.get(L4_OFF..L4_OFF + len).unwrap_or_default(), acc);
    fold(acc)
}

/// Recomputes the UDP checksum in place (0 is sent as 0xffff).
fn set_udp_csum(frame: &mut [u8]) {
    if let Some(c) = frame.get_mut(L4_OFF + 6..L4_OFF + 8) {
        c.copy_from_slice(&[0, 0]);
    }
    let c = match udp_csum(frame) {
        0 => 0xffff,
        c => c,
    };
    if let Some(dst) = frame.get_mut(L4_OFF + 6..L4_OFF + 8) {
        dst.copy_from_slice(&c.to_be_bytes());
    }
}

/// A frame template and where its varying fields are.
struct Template {
    bytes: Vec<u8>,
    kind: Kind,
}

impl Template {
    fn new(args: &Args) -> Result<Self> {
        let payload: Vec<u8> = match args.kind {
            Kind::Udp => vec![b'a'; 18],
            Kind::Dns => {
                let mut p = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
                p.push(1 + NAME_VAR as u8);
                p.push(b'q');
                p.extend_from_slice(&[b'a'; NAME_VAR]);
                for label in ["bench", "test"] {
                    p.push(label.len() as u8);
                    p.extend_from_slice(label.as_bytes());
                }
                p.extend_from_slice(&[0, 0, 1, 0, 1]); // root, QTYPE A, QCLASS IN
                p
            }
        };
        let dport: u16 = if args.kind == Kind::Dns { 53 } else { 9 };
        let mut f = Vec::with_capacity(FRAME_CAP);
        f.extend_from_slice(&parse_mac(&args.dst_mac)?);
        f.extend_from_slice(&parse_mac(&args.src_mac)?);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let ip_total = (IP_LEN + UDP_LEN + payload.len()) as u16;
        let mut ip = [0u8; IP_LEN];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&ip_total.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&args.src_ip.octets());
        ip[16..20].copy_from_slice(&args.dst_ip.octets());
        let csum = fold(sum16(&ip, 0));
        ip[10..12].copy_from_slice(&csum.to_be_bytes());
        f.extend_from_slice(&ip);
        let udp_len = (UDP_LEN + payload.len()) as u16;
        f.extend_from_slice(&args.sport_base.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&payload);
        if f.len() > FRAME_CAP {
            return Err("frame too large".into());
        }
        // Ethernet minimum (without FCS): veth does not pad.
        if f.len() < 60 {
            f.resize(60, 0);
        }
        let mut t = Self {
            bytes: f,
            kind: args.kind,
        };
        t.set_udp_csum();
        Ok(t)
    }

    fn set_udp_csum(&mut self) {
        set_udp_csum(&mut self.bytes);
    }

    /// Writes packet number `seq` into `frame` (a copy of the template).
    fn vary(&self, frame: &mut [u8], seq: u64, sport: u16, saddr: Option<Ipv4Addr>) {
        let mut changed = false;
        if let Some(addr) = saddr
            && let Some(ip) = frame.get_mut(ETH_LEN..L4_OFF)
            && ip.get(12..16) != Some(&addr.octets()[..])
        {
            if let Some(src) = ip.get_mut(12..16) {
                src.copy_from_slice(&addr.octets());
            }
            if let Some(c) = ip.get_mut(10..12) {
                c.copy_from_slice(&[0, 0]);
            }
            let csum = fold(sum16(ip, 0));
            if let Some(c) = ip.get_mut(10..12) {
                c.copy_from_slice(&csum.to_be_bytes());
            }
            changed = true;
        }
        if let Some(p) = frame.get_mut(L4_OFF..L4_OFF + 2)
            && p != sport.to_be_bytes()
        {
            p.copy_from_slice(&sport.to_be_bytes());
            changed = true;
        }
        if self.kind == Kind::Dns {
            // Query id: a cheap mix of the counter, so ids do not just count.
            let id = (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 48) as u16;
            if let Some(p) = frame.get_mut(PAY_OFF..PAY_OFF + 2) {
                p.copy_from_slice(&id.to_be_bytes());
            }
            let off = PAY_OFF + DNS_NAME_VAR_OFF;
            if let Some(name) = frame.get_mut(off..off + NAME_VAR) {
                let mut v = seq;
                for c in name.iter_mut().rev() {
                    *c = BASE32.get((v & 31) as usize).copied().unwrap_or(b'a');
                    v >>= 5;
                }
            }
            changed = true;
        }
        if changed {
            set_udp_csum(frame);
        }
    }
}

struct Socket(libc::c_int);

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

fn open_socket(iface: &str) -> Result<(Socket, libc::sockaddr_ll)> {
    let name = std::ffi::CString::new(iface).map_err(|_| "bad interface name".to_string())?;
    // SAFETY: valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(os_err(&format!("interface {iface}")));
    }
    // Protocol 0: this socket receives nothing.
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_err("socket(AF_PACKET)"));
    }
    let sock = Socket(fd);
    let one: libc::c_int = 1;
    // SAFETY: option value is a valid c_int.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(os_err("PACKET_QDISC_BYPASS"));
    }
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    addr.sll_halen = 6;
    Ok((sock, addr))
}

pub fn main(args: &Args) -> Result<()> {
    if args.batch == 0 || args.batch > 1024 {
        return Err("--batch must be 1..=1024".into());
    }
    let template = Template::new(args)?;
    let (sock, mut addr) = open_socket(&args.iface)?;
    let len = template.bytes.len();
    let mut frames: Vec<[u8; FRAME_CAP]> = vec![[0u8; FRAME_CAP]; args.batch];
    for f in &mut frames {
        if let Some(dst) = f.get_mut(..len) {
            dst.copy_from_slice(&template.bytes);
        }
    }
    let mut iovs: Vec<libc::iovec> = frames
        .iter_mut()
        .map(|f| libc::iovec {
            iov_base: f.as_mut_ptr().cast(),
            iov_len: len,
        })
        .collect();
    // SAFETY: mmsghdr is plain data; all-zero is valid.
    let mut msgs: Vec<libc::mmsghdr> = (0..args.batch)
        .map(|_| unsafe { std::mem::zeroed() })
        .collect();
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr.msg_name = (&raw mut addr).cast();
        m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }

    let sports = args.sports.max(1);
    let limit = if args.count == 0 {
        u64::MAX
    } else {
        args.count
    };
    let duration = Duration::from_secs_f64(args.seconds.max(0.0));
    let (mut sent, mut errors, mut seq) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while sent < limit && start.elapsed() < duration {
        if args.pps > 0 {
            // Pacing: never run ahead of pps * elapsed (a batch at a time).
            let due = Duration::from_secs_f64(sent as f64 / args.pps as f64);
            let now = start.elapsed();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let n = usize::try_from((limit - sent).min(args.batch as u64)).unwrap_or(args.batch);
        for (i, f) in frames.iter_mut().take(n).enumerate() {
            let s = seq + i as u64;
            let sport = args.sport_base.wrapping_add((s % u64::from(sports)) as u16);
            let saddr = (args.saddrs > 1).then(|| {
                let step = (s / u64::from(sports)) % u64::from(args.saddrs);
                Ipv4Addr::from(u32::from(args.src_ip).wrapping_add(step as u32))
            });
            template.vary(f, s, sport, saddr);
        }
        // SAFETY: msgs[..n] point at live iovecs/frames/addr owned by this
        // function; the kernel only reads them.
        let rc = unsafe { libc::sendmmsg(sock.0, msgs.as_mut_ptr(), n as libc::c_uint, 0) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR) => {
                    errors += 1;
                    continue;
                }
                _ => return Err(format!("sendmmsg: {err}")),
            }
        }
        let done = rc as u64;
        sent += done;
        seq += done.max(1);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let out = Outcome {
        kind: match args.kind {
            Kind::Udp => "udp",
            Kind::Dns => "dns",
        },
        sent,
        errors,
        elapsed_s: elapsed,
        pps: if elapsed > 0.0 {
            sent as f64 / elapsed
        } else {
            0.0
        },
        frame_bytes: len,
        sports,
        target_pps: args.pps,
    };
    println!(
        "{}",
        serde_json::to_string(&out).map_err(|e| e.to_string())?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(kind: Kind) -> Args {
        Args {
            iface: "lo".into(),
            kind,
            seconds: 0.0,
            count: 0,
            sports: 1,
            sport_base: 40000,
            batch: 1,
            pps: 0,
            saddrs: 1,
            src_mac: "02:00:00:00:00:02".into(),
            dst_mac: "02:00:00:00:00:99".into(),
            src_ip: Ipv4Addr::new(198, 18, 0, 2),
            dst_ip: Ipv4Addr::new(198, 18, 0, 1),
        }
    }

    fn udp_csum_ok(f: &[u8]) -> bool {
        udp_csum(f) == 0
    }

    #[test]
    #[allow(clippy::indexing_slicing)]
    fn frames_are_valid() {
        for kind in [Kind::Udp, Kind::Dns] {
            let t = Template::new(&args(kind)).expect("template");
            assert_eq!(
                fold(sum16(&t.bytes[ETH_LEN..L4_OFF], 0)),
                0,
                "IPv4 checksum"
            );
            assert!(udp_csum_ok(&t.bytes));
            let mut f = t.bytes.clone();
            t.vary(&mut f, 123_456_789, 40007, None);
            assert!(udp_csum_ok(&f));
            assert_eq!(u16::from_be_bytes([f[L4_OFF], f[L4_OFF + 1]]), 40007);
            // Another source address: both checksums stay valid.
            t.vary(&mut f, 5, 40008, Some(Ipv4Addr::new(198, 18, 7, 9)));
            assert_eq!(&f[ETH_LEN + 12..ETH_LEN + 16], &[198, 18, 7, 9]);
            assert_eq!(fold(sum16(&f[ETH_LEN..L4_OFF], 0)), 0, "IPv4 checksum");
            assert!(udp_csum_ok(&f));
        }
        let t = Template::new(&args(Kind::Dns)).expect("template");
        let mut a = t.bytes.clone();
        let mut b = t.bytes.clone();
        t.vary(&mut a, 1, 40000, None);
        t.vary(&mut b, 2, 40000, None);
        assert_ne!(
            a[PAY_OFF..PAY_OFF + 2],
            b[PAY_OFF..PAY_OFF + 2],
            "ids differ"
        );
        let name = PAY_OFF + 12;
        assert_ne!(a[name..name + 11], b[name..name + 11], "names differ");
        assert_eq!(&a[name + 11..name + 11 + 6], b"\x05bench");
    }
}
