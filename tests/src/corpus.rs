//! The reference capture corpus (`../shared/corpus`, beside the repository)
//! and live replay of its captures into a [`Lab`].
//!
//! * [`dir`] finds the corpus, [`read_jsonl`] reads its expected records.
//! * [`Capture::read`] reads a pcap or pcapng file and converts every packet
//!   to an Ethernet frame (raw IP, BSD loopback and Linux cooked captures get
//!   a synthetic Ethernet header, see [`to_ethernet`]); frame numbers stay
//!   those of the original file (1-based, as tshark and the corpus count).
//! * [`Capture::replay`] writes the frames as an Ethernet pcap into the lab's
//!   scratch directory and sends them with `tcpreplay` out of the peer's
//!   interface, so the daemon's TC programs see them on `pal0` ingress.
//! * [`decode`] reads the addresses, ports and payload of a frame, to tie
//!   events back to the frame they came from.
//! * [`EventCursor`] hands out the events that arrived since the last call,
//!   to keep one capture's events apart from the next one's.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{Daemon, Lab, PEER_IF};

/// Source MAC given to frames whose capture has no Ethernet header.
pub const SYNTH_SRC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0xc0, 0x00, 0x01];
/// Destination MAC given to frames whose capture has no Ethernet header
/// (deliberately not pal0's address).
pub const SYNTH_DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0xc0, 0x00, 0x02];

/// The corpus directory; panics with a clear message when it is missing.
pub fn dir() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"));
    assert!(
        p.join("README.md").is_file() && p.join("expected").is_dir() && p.join("pcaps").is_dir(),
        "reference corpus not found at {} (expected the `shared/` checkout beside the repository, \
         with README.md, expected/ and pcaps/)",
        p.display()
    );
    p.canonicalize().unwrap_or(p)
}

/// Reads a JSON-lines file (blank lines skipped); panics naming the line.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// The captures (`*.pcap`, `*.pcapng`) of one corpus folder, sorted.
pub fn captures(folder: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("listing {}: {e}", folder.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    v.sort();
    v
}

/// One packet of a capture, as an Ethernet frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// 1-based packet number in the original file.
    pub number: usize,
    /// Capture time, ns since the epoch.
    pub ts_ns: u64,
    /// The frame, starting with an Ethernet header.
    pub data: Vec<u8>,
    /// Whether the Ethernet header was made up (capture had none).
    pub synthetic_ether: bool,
}

/// A capture file, converted to Ethernet.
#[derive(Debug, Clone)]
pub struct Capture {
    /// Path of the original file.
    pub path: PathBuf,
    /// Link type of the original file (first interface for pcapng).
    pub linktype: u32,
    /// Every packet, in file order.
    pub frames: Vec<Frame>,
}

/// What `tcpreplay` reported.
#[derive(Debug, Clone, Default)]
pub struct ReplayStats {
    /// Packets sent.
    pub sent: u64,
    /// Packets that failed to send.
    pub failed: u64,
    /// tcpreplay's stdout and stderr.
    pub output: String,
}

fn u16_at(b: &[u8], off: usize, le: bool) -> Option<u16> {
    let s: [u8; 2] = b.get(off..off + 2)?.try_into().ok()?;
    Some(if le {
        u16::from_le_bytes(s)
    } else {
        u16::from_be_bytes(s)
    })
}

fn u32_at(b: &[u8], off: usize, le: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(s)
    } else {
        u32::from_be_bytes(s)
    })
}

/// Ethertype for an IP packet, from its version nibble.
fn ip_ethertype(ip: &[u8]) -> Option<u16> {
    match ip.first()? >> 4 {
        4 => Some(0x0800),
        6 => Some(0x86dd),
        _ => None,
    }
}

fn ether(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Converts one packet of link type `linktype` to an Ethernet frame.
/// Returns the frame and whether its Ethernet header is synthetic; `None`
/// for link types this does not handle or packets too short to convert.
///
/// * 1 (Ethernet): unchanged.
/// * 0 (BSD null) and 108 (OpenBSD loop): the 4-byte family header is
///   dropped; IPv4/IPv6 is told by the IP version nibble.
/// * 101, 12, 14 (raw IP), 228 (IPv4), 229 (IPv6): header added.
/// * 113 (Linux cooked v1), 276 (v2): protocol kept; the link-layer source
///   address becomes the source MAC when it is 6 bytes long.
pub fn to_ethernet(linktype: u32, pkt: &[u8]) -> Option<(Vec<u8>, bool)> {
    match linktype {
        1 => Some((pkt.to_vec(), false)),
        0 | 108 => {
            let ip = pkt.get(4..)?;
            Some((
                ether(SYNTH_DST_MAC, SYNTH_SRC_MAC, ip_ethertype(ip)?, ip),
                true,
            ))
        }
        101 | 12 | 14 | 228 | 229 => Some((
            ether(SYNTH_DST_MAC, SYNTH_SRC_MAC, ip_ethertype(pkt)?, pkt),
            true,
        )),
        113 => {
            let halen = usize::from(u16_at(pkt, 4, false)?);
            let proto = u16_at(pkt, 14, false)?;
            let src = if halen == 6 {
                pkt.get(6..12)?.try_into().ok()?
            } else {
                SYNTH_SRC_MAC
            };
            Some((ether(SYNTH_DST_MAC, src, proto, pkt.get(16..)?), true))
        }
        276 => {
            let proto = u16_at(pkt, 0, false)?;
            let halen = *pkt.get(11)?;
            let src = if halen == 6 {
                pkt.get(12..18)?.try_into().ok()?
            } else {
                SYNTH_SRC_MAC
            };
            Some((ether(SYNTH_DST_MAC, src, proto, pkt.get(20..)?), true))
        }
        _ => None,
    }
}

impl Capture {
    /// Reads a pcap (micro- or nanosecond, either byte order) or pcapng
    /// file and converts its packets to Ethernet; panics on anything else.
    pub fn read(path: &Path) -> Self {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let (linktype, raw) = match u32_at(&bytes, 0, true) {
            Some(0x0a0d_0d0a) => read_pcapng(&bytes),
            Some(m) if [0xa1b2_c3d4, 0xa1b2_3c4d, 0xd4c3_b2a1, 0x4d3c_b2a1].contains(&m) => {
                read_pcap(&bytes)
            }
            _ => None,
        }
        .unwrap_or_else(|| panic!("{}: not a readable pcap/pcapng file", path.display()));
        let frames = raw
            .into_iter()
            .enumerate()
            .map(|(i, (lt, ts_ns, pkt))| {
                let (data, synthetic_ether) = to_ethernet(lt, &pkt).unwrap_or_else(|| {
                    panic!(
                        "{} frame {}: cannot convert link type {lt} to Ethernet",
                        path.display(),
                        i + 1
                    )
                });
                Frame {
                    number: i + 1,
                    ts_ns,
                    data,
                    synthetic_ether,
                }
            })
            .collect();
        Self {
            path: path.to_owned(),
            linktype,
            frames,
        }
    }

    /// Writes the frames as a classic Ethernet pcap (microseconds, little endian).
    pub fn write_ethernet_pcap(&self, out: &Path) {
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        for v in [0u32, 0, 262_144, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for f in &self.frames {
            let len = u32::try_from(f.data.len()).expect("frame length");
            for v in [
                (f.ts_ns / 1_000_000_000) as u32,
                ((f.ts_ns % 1_000_000_000) / 1000) as u32,
                len,
                len,
            ] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&f.data);
        }
        fs::write(out, b).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    }

    /// Sends every frame, in order, out of the peer's interface with
    /// `tcpreplay --pps=<pps>` (run inside the peer namespace): they arrive
    /// on the sensor interface's ingress. Panics if tcpreplay fails to run.
    pub fn replay(&self, lab: &Lab, pps: u32) -> ReplayStats {
        let name = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let out = lab.dir.join(format!("replay-{name}.pcap"));
        self.write_ethernet_pcap(&out);
        let result = lab
            .peer("tcpreplay")
            .args(["-i", PEER_IF, &format!("--pps={pps}")])
            .arg(&out)
            .output()
            .unwrap_or_else(|e| panic!("running tcpreplay (Debian package `tcpreplay`): {e}"));
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
        assert!(
            result.status.success(),
            "tcpreplay failed on {} ({}):\n{output}",
            out.display(),
            result.status
        );
        // "Actual: 4 packets (514 bytes) sent in ..." / "Failed packets: 0"
        let number_after = |key: &str| {
            output
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        ReplayStats {
            sent: number_after("Actual:"),
            failed: number_after("Failed packets:"),
            output,
        }
    }
}

type RawPacket = (u32, u64, Vec<u8>);

fn read_pcap(b: &[u8]) -> Option<(u32, Vec<RawPacket>)> {
    let magic_le = u32_at(b, 0, true)?;
    let le = magic_le == 0xa1b2_c3d4 || magic_le == 0xa1b2_3c4d;
    let nanos = magic_le == 0xa1b2_3c4d || magic_le == 0x4d3c_b2a1;
    let linktype = u32_at(b, 20, le)? & 0x0fff_ffff;
    let mut off = 24;
    let mut out = Vec::new();
    while off < b.len() {
        let sec = u64::from(u32_at(b, off, le)?);
        let frac = u64::from(u32_at(b, off + 4, le)?);
        let caplen = usize::try_from(u32_at(b, off + 8, le)?).ok()?;
        let data = b.get(off + 16..off + 16 + caplen)?.to_vec();
        let ts = sec * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        out.push((linktype, ts, data));
        off += 16 + caplen;
    }
    Some((linktype, out))
}

fn read_pcapng(b: &[u8]) -> Option<(u32, Vec<RawPacket>)> {
    let mut le = true;
    let mut links: Vec<(u32, u64)> = Vec::new(); // (linktype, ticks per second)
    let mut out = Vec::new();
    let mut off = 0;
    while off + 12 <= b.len() {
        let btype = u32_at(b, off, true)?;
        if btype == 0x0a0d_0d0a {
            le = u32_at(b, off + 8, true)? == 0x1a2b_3c4d;
            links.clear();
        }
        let blen = usize::try_from(u32_at(b, off + 4, le)?).ok()?;
        if blen < 12 {
            return None;
        }
        let body = b.get(off + 8..off + blen - 4)?;
        match u32_at(b, off, le)? {
            1 => {
                // IDB: linktype, reserved, snaplen, options (if_tsresol = 9).
                let lt = u32::from(u16_at(body, 0, le)?);
                let mut tps = 1_000_000u64;
                let mut o = 8;
                while o + 4 <= body.len() {
                    let code = u16_at(body, o, le)?;
                    let len = usize::from(u16_at(body, o + 2, le)?);
                    if code == 0 {
                        break;
                    }
                    if code == 9 && len >= 1 {
                        let r = *body.get(o + 4)?;
                        tps = if r & 0x80 != 0 {
                            1u64 << (r & 0x7f)
                        } else {
                            10u64.pow(u32::from(r))
                        };
                    }
                    o += 4 + len.div_ceil(4) * 4;
                }
                links.push((lt, tps));
            }
            6 => {
                // EPB: interface, ts high, ts low, caplen, origlen, data.
                let iface = usize::try_from(u32_at(body, 0, le)?).ok()?;
                let (lt, tps) = *links.get(iface)?;
                let ticks =
                    (u64::from(u32_at(body, 4, le)?) << 32) | u64::from(u32_at(body, 8, le)?);
                let caplen = usize::try_from(u32_at(body, 12, le)?).ok()?;
                let data = body.get(20..20 + caplen)?.to_vec();
                let ts = u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(tps.max(1)))
                    .unwrap_or(0);
                out.push((lt, ts, data));
            }
            3 => {
                // SPB: original length, data (no timestamp).
                let (lt, _) = *links.first()?;
                let orig = usize::try_from(u32_at(body, 0, le)?).ok()?;
                let data = body.get(4..)?;
                out.push((lt, 0, data.get(..orig.min(data.len()))?.to_vec()));
            }
            _ => {}
        }
        off += blen;
    }
    let first = links
        .first()
        .map_or(out.first().map_or(1, |p| p.0), |l| l.0);
    Some((first, out))
}

/// Addresses, ports and payload of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// VLAN ids, outermost first.
    pub vlans: Vec<u16>,
    /// Innermost IP source.
    pub src_ip: IpAddr,
    /// Innermost IP destination.
    pub dst_ip: IpAddr,
    /// 6 (TCP) or 17 (UDP); other protocols are not decoded.
    pub l4_proto: u8,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// TCP sequence number (0 for UDP).
    pub tcp_seq: u32,
    /// Transport payload (as captured).
    pub payload: Vec<u8>,
}

impl Packet {
    /// `udp` or `tcp`.
    pub fn transport(&self) -> &'static str {
        if self.l4_proto == 6 { "tcp" } else { "udp" }
    }
}

/// Formats a MAC as EVE does (`aa:bb:cc:dd:ee:ff`).
pub fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Decodes Ethernet (any number of 802.1Q/802.1ad tags), IPv4 or IPv6
/// (common extension headers skipped; non-first fragments rejected) and
/// UDP or TCP. `None` for anything else.
pub fn decode(frame: &[u8]) -> Option<Packet> {
    let dst_mac: [u8; 6] = frame.get(0..6)?.try_into().ok()?;
    let src_mac: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
    let mut ethertype = u16_at(frame, 12, false)?;
    let mut off = 14;
    let mut vlans = Vec::new();
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        vlans.push(u16_at(frame, off, false)? & 0x0fff);
        ethertype = u16_at(frame, off + 2, false)?;
        off += 4;
    }
    let ip = frame.get(off..)?;
    let (src_ip, dst_ip, mut proto, l4) = match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(u16_at(ip, 2, false)?).clamp(ihl, ip.len());
            if u16_at(ip, 6, false)? & 0x1fff != 0 {
                return None;
            }
            let s: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (
                IpAddr::V4(Ipv4Addr::from(s)),
                IpAddr::V4(Ipv4Addr::from(d)),
                *ip.get(9)?,
                ip.get(ihl..total)?,
            )
        }
        0x86dd => {
            let s: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            let plen = usize::from(u16_at(ip, 4, false)?);
            let end = (40 + plen).min(ip.len());
            (
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                *ip.get(6)?,
                ip.get(40..end)?,
            )
        }
        _ => return None,
    };
    let mut l4 = l4;
    // IPv6 extension headers: hop-by-hop, routing, destination options, fragment.
    while matches!(proto, 0 | 43 | 60 | 44) && matches!(src_ip, IpAddr::V6(_)) {
        if proto == 44 {
            if u16_at(l4, 2, false)? & 0xfff8 != 0 {
                return None;
            }
            proto = *l4.first()?;
            l4 = l4.get(8..)?;
        } else {
            let len = (usize::from(*l4.get(1)?) + 1) * 8;
            proto = *l4.first()?;
            l4 = l4.get(len..)?;
        }
    }
    let src_port = u16_at(l4, 0, false)?;
    let dst_port = u16_at(l4, 2, false)?;
    let (payload, tcp_flags, tcp_seq) = match proto {
        17 => (l4.get(8..)?, 0, 0),
        6 => {
            let doff = usize::from(l4.get(12)? >> 4) * 4;
            (l4.get(doff..)?, *l4.get(13)?, u32_at(l4, 4, false)?)
        }
        _ => return None,
    };
    Some(Packet {
        dst_mac,
        src_mac,
        vlans,
        src_ip,
        dst_ip,
        l4_proto: proto,
        src_port,
        dst_port,
        tcp_flags,
        tcp_seq,
        payload: payload.to_vec(),
    })
}

/// Follows TCP byte streams in frame order, one per direction: data is
/// appended in sequence order; retransmitted bytes are skipped and a gap
/// (lost or reordered segment) restarts the stream at the new segment.
#[derive(Debug, Default)]
pub struct TcpFollower {
    streams: std::collections::HashMap<Direction, (Option<u32>, Vec<u8>)>,
}

/// One direction of a TCP connection: source address and port, destination
/// address and port.
pub type Direction = (IpAddr, u16, IpAddr, u16);

impl TcpFollower {
    /// Feeds one TCP packet; returns its direction's buffer of bytes not yet
    /// consumed (the caller drains what it used).
    pub fn push(&mut self, p: &Packet) -> &mut Vec<u8> {
        let (next, buf) = self
            .streams
            .entry((p.src_ip, p.src_port, p.dst_ip, p.dst_port))
            .or_default();
        let syn = p.tcp_flags & 0x02 != 0;
        let seq = if syn {
            p.tcp_seq.wrapping_add(1)
        } else {
            p.tcp_seq
        };
        if syn {
            buf.clear();
            *next = Some(seq);
        }
        let expected = next.unwrap_or(seq);
        let ahead = seq.wrapping_sub(expected) as i32;
        let data: &[u8] = if ahead > 0 {
            buf.clear();
            &p.payload
        } else {
            p.payload
                .get(usize::try_from(-i64::from(ahead)).unwrap_or(usize::MAX)..)
                .unwrap_or(&[])
        };
        buf.extend_from_slice(data);
        let end = seq.wrapping_add(u32::try_from(p.payload.len()).unwrap_or(0));
        *next = Some(if end.wrapping_sub(expected) as i32 > 0 || next.is_none() {
            end
        } else {
            expected
        });
        buf
    }
}

/// Builds an Ethernet/IPv4/UDP frame (IPv4 header checksum set, UDP
/// checksum 0), e.g. to probe what the sensor sees.
pub fn udp4_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let total = u16::try_from(20 + 8 + payload.len()).expect("payload fits");
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    if let Some(t) = ip.get_mut(2..4) {
        t.copy_from_slice(&total.to_be_bytes());
    }
    ip.extend_from_slice(&src.0.octets());
    ip.extend_from_slice(&dst.0.octets());
    let sum: u32 = ip
        .chunks(2)
        .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
        .sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    if let Some(c) = ip.get_mut(10..12) {
        c.copy_from_slice(&sum.to_be_bytes());
    }
    ip.extend_from_slice(&src.1.to_be_bytes());
    ip.extend_from_slice(&dst.1.to_be_bytes());
    ip.extend_from_slice(&(total - 20).to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend_from_slice(payload);
    ether(dst_mac, src_mac, 0x0800, &ip)
}

/// Hands out, in arrival order, the daemon's events that arrived since
/// the previous call (events are never removed, so a position suffices).
#[derive(Debug, Default)]
pub struct EventCursor {
    seen: usize,
}

impl EventCursor {
    /// Starts after every event received so far.
    pub fn now(daemon: &Daemon) -> Self {
        Self {
            seen: daemon.events().len(),
        }
    }

    /// Waits for new events matching `keep` and returns them: until at least
    /// `want` have arrived and then nothing more for `settle`, or — when
    /// fewer arrive — until nothing new for `quiet`; never longer than `max`.
    pub fn take(
        &mut self,
        daemon: &Daemon,
        want: usize,
        settle: Duration,
        quiet: Duration,
        max: Duration,
        keep: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let start = Instant::now();
        let mut last_len = self.seen;
        let mut last_change = Instant::now();
        loop {
            daemon.assert_alive();
            let all = daemon.events();
            if all.len() != last_len {
                last_len = all.len();
                last_change = Instant::now();
            }
            let kept = all.iter().skip(self.seen).filter(|e| keep(e)).count();
            let idle = last_change.elapsed();
            if (kept >= want && idle >= settle) || idle >= quiet || start.elapsed() >= max {
                let out: Vec<Value> = all
                    .iter()
                    .skip(self.seen)
                    .filter(|e| keep(e))
                    .cloned()
                    .collect();
                self.seen = all.len();
                return out;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
