//! Fields every event shares, named as in Suricata's EVE JSON.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use palisade_abi::RecordHeader;
use palisade_ipc::messages::InterfaceName;
use serde::{Serialize, Serializer};

/// Converts kernel boot-time stamps to wall-clock time and ifindexes to names.
#[derive(Debug, Default)]
pub struct Context {
    names: HashMap<u32, String>,
    /// CLOCK_REALTIME - CLOCK_BOOTTIME, in ns, refreshed once per drain.
    boot_to_wall_ns: i128,
    /// CLOCK_BOOTTIME at the last refresh (the kernel's record clock).
    boot_now_ns: u64,
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; clock ids are constants.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl Context {
    /// Replaces the interface names.
    pub fn set_interfaces(&mut self, ifaces: &[InterfaceName]) {
        self.names = ifaces.iter().map(|i| (i.ifindex, i.name.clone())).collect();
    }

    /// Re-reads the clocks (call once per drain).
    pub fn refresh_clock(&mut self) {
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        self.boot_to_wall_ns = clock_ns(libc::CLOCK_REALTIME) - boot;
        self.boot_now_ns = u64::try_from(boot).unwrap_or(0);
    }

    /// A capture file's clock instead of the host's: record stamps are wall-clock ns
    /// already (offline analysis, `palisade replay`) and "now" is `now_ns` of the file.
    pub fn set_file_clock(&mut self, now_ns: u64) {
        self.boot_to_wall_ns = 0;
        self.boot_now_ns = now_ns;
    }

    /// Boot-clock time of the last refresh, comparable with record stamps.
    pub fn boot_now_ns(&self) -> u64 {
        self.boot_now_ns
    }

    /// Wall-clock time of a boot-time stamp.
    pub fn wall(&self, ts_boot_ns: u64) -> Timestamp {
        Timestamp((i128::from(ts_boot_ns) + self.boot_to_wall_ns).max(0) as u64)
    }

    /// Name of an interface; `ifN` when unknown.
    pub fn iface(&self, ifindex: u32) -> String {
        self.names
            .get(&ifindex)
            .cloned()
            .unwrap_or_else(|| format!("if{ifindex}"))
    }
}

/// Nanoseconds since the Unix epoch, serialized like Suricata:
/// `2026-11-22T02:45:13.123456+0000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub u64);

thread_local! {
    /// The last second formatted (`YYYY-MM-DDTHH:MM:SS`): events come in bursts within
    /// the same second, so most timestamps only need their microseconds.
    static LAST_SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
}

impl Timestamp {
    /// Appends the text form (as `Display`) without going through `fmt`.
    pub fn write_to(self, out: &mut Vec<u8>) {
        let secs = self.0 / 1_000_000_000;
        let micros = (self.0 % 1_000_000_000) / 1000;
        let (last, text) = LAST_SECOND.get();
        if last == secs {
            out.extend_from_slice(&text);
        } else {
            let at = out.len();
            self.write_second(out);
            if let Some(fresh) = out.get(at..).and_then(|t| <[u8; 19]>::try_from(t).ok()) {
                LAST_SECOND.set((secs, fresh));
            }
        }
        out.push(b'.');
        let mut digits = [b'0'; 6];
        let mut m = micros;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (m % 10) as u8;
            m /= 10;
        }
        out.extend_from_slice(&digits);
        out.extend_from_slice(b"+0000");
    }

    /// `YYYY-MM-DDTHH:MM:SS` of this timestamp's second.
    fn write_second(self, out: &mut Vec<u8>) {
        let (year, month, day, sod, _) = self.civil();
        let two = |out: &mut Vec<u8>, v: u64| {
            out.push(b'0' + (v / 10 % 10) as u8);
            out.push(b'0' + (v % 10) as u8);
        };
        let year = year.clamp(0, 9999) as u64;
        two(out, year / 100);
        two(out, year % 100);
        out.push(b'-');
        two(out, month as u64);
        out.push(b'-');
        two(out, day as u64);
        out.push(b'T');
        two(out, sod / 3600);
        out.push(b':');
        two(out, (sod / 60) % 60);
        out.push(b':');
        two(out, sod % 60);
    }

    /// (year, month, day, second of the day, microseconds).
    fn civil(self) -> (i64, i64, i64, u64, u64) {
        let secs = self.0 / 1_000_000_000;
        let micros = (self.0 % 1_000_000_000) / 1000;
        let sod = secs % 86_400;
        let (year, month, day) = civil_date((secs / 86_400) as i64);
        (year, month, day, sod, micros)
    }
}

/// (year, month, day) of a day counted from 1970-01-01 (negative before it).
pub use palisade_abi::time::civil_date;

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&palisade_abi::time::eve_timestamp(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A MAC address, serialized `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let [a, b, c, d, e, g] = self.0;
        s.collect_str(&format_args!(
            "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}"
        ))
    }
}

/// EVE `ether` object.
#[derive(Debug, Clone, Serialize)]
pub struct Ether {
    /// Ethernet source.
    pub src_mac: Mac,
    /// Ethernet destination.
    pub dest_mac: Mac,
}

/// Protocol name as EVE spells it.
pub fn proto_name(l4: u8) -> &'static str {
    match l4 {
        6 => "TCP",
        17 => "UDP",
        1 => "ICMP",
        58 => "IPv6-ICMP",
        132 => "SCTP",
        _ => "unknown",
    }
}

/// An address from a record (network order, IPv4 in the first 4 bytes).
pub fn addr(ip_version: u8, raw: [u8; 16]) -> IpAddr {
    if ip_version == 4 {
        let [a, b, c, d, ..] = raw;
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    } else {
        IpAddr::V6(Ipv6Addr::from(raw))
    }
}

/// Identity of one flow instance, as EVE's `flow_id`: stable over every event of the flow
/// (its flow records, and the dns/tls/dhcp/alert events of its packets), different for a
/// later flow on the same tuple. FNV-1a over the Community ID and the boot-clock time of
/// the flow's first packet (`flow_start_ns` of the records), kept below 2^53 so JSON
/// consumers that read numbers as doubles keep it exact.
pub fn flow_id(community_id: &[u8], first_seen_ns: u64) -> u64 {
    let mut h = palisade_abi::dns_name::fnv1a64(community_id);
    for b in first_seen_ns.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(palisade_abi::FNV64_PRIME);
    }
    h & ((1 << 53) - 1)
}

/// The fields every event starts with, named and typed as in Suricata's EVE.
#[derive(Debug, Clone, Serialize)]
pub struct Common {
    /// Capture time.
    pub timestamp: Timestamp,
    /// The flow this event belongs to (see [`flow_id`]); absent when the packet had no
    /// flow entry (table full, a dropped packet, TCP teardown of an unknown flow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<u64>,
    /// Interface name.
    pub in_iface: String,
    /// `dns`, `dhcp`, `tls`, `flow`, ...
    pub event_type: &'static str,
    /// VLAN ids, outermost first (EVE's `vlan` array).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<[u16; 1]>,
    /// Source address.
    pub src_ip: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dest_ip: IpAddr,
    /// Destination port.
    pub dest_port: u16,
    /// `TCP`, `UDP`, ...
    pub proto: &'static str,
    /// Community ID v1 of the tuple (see [`crate::community_id`]); absent for ICMP when
    /// the record does not carry the type and code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community_id: Option<crate::community_id::CommunityId>,
    /// Ethernet addresses.
    pub ether: Ether,
    /// `ingress` or `egress` on `in_iface` (where the packet was seen): Palisade's own
    /// field, written in the event's [`Vendor`] object, not here.
    #[serde(skip)]
    pub iface_direction: &'static str,
}

/// Palisade's own fields of an event: the one top-level vendor object, `palisade`, beside
/// Suricata's objects (whose schema allows no unknown key). `extra` is flattened into it,
/// typically `{"<protocol>": {...}}`.
#[derive(Debug, Clone, Serialize)]
pub struct Vendor<T: Serialize> {
    /// `ingress` or `egress` on `in_iface`.
    pub iface_direction: &'static str,
    /// The event type's own fields.
    #[serde(flatten)]
    pub extra: T,
}

impl<T: Serialize> Vendor<T> {
    /// The vendor object of the event whose shared fields are `common`.
    pub fn new(common: &Common, extra: T) -> Self {
        Self {
            iface_direction: common.iface_direction,
            extra,
        }
    }
}

impl Common {
    /// Builds the shared fields from a record header. The Community ID and `flow_id` are
    /// those of the header's tuple and `flow_start_ns`; ICMP records carry no type and code
    /// in the header, so their Community ID is left to the caller ([`Common::set_flow`]).
    pub fn new(ctx: &Context, event_type: &'static str, hdr: &RecordHeader) -> Self {
        let src_ip = addr(hdr.ip_version, hdr.src_addr);
        let dest_ip = addr(hdr.ip_version, hdr.dst_addr);
        let mut common = Self {
            timestamp: ctx.wall(hdr.ts_boot_ns),
            flow_id: None,
            in_iface: ctx.iface(hdr.ifindex),
            event_type,
            vlan: (hdr.flags & palisade_abi::FLAG_VLAN != 0).then_some([hdr.vlan_id]),
            src_ip,
            src_port: hdr.src_port,
            dest_ip,
            dest_port: hdr.dst_port,
            proto: proto_name(hdr.l4_proto),
            community_id: None,
            iface_direction: if hdr.direction == palisade_abi::DIR_EGRESS {
                "egress"
            } else {
                "ingress"
            },
            ether: Ether {
                src_mac: Mac(hdr.src_mac),
                dest_mac: Mac(hdr.dst_mac),
            },
        };
        if !matches!(hdr.l4_proto, 1 | 58) {
            common.set_flow(hdr.l4_proto, hdr.src_port, hdr.dst_port, hdr.flow_start_ns);
        }
        common
    }

    /// Writes the shared fields into the event object `w` is in, in the order serde writes
    /// them (the hot path's [`crate::EventOut::emit_with`]).
    pub fn write(&self, w: &mut crate::json::JsonWriter<'_>) {
        w.key("timestamp").timestamp(self.timestamp);
        if let Some(id) = self.flow_id {
            w.key("flow_id").u64(id);
        }
        w.key("in_iface").str(&self.in_iface);
        w.key("event_type").str(self.event_type);
        if let Some([vlan]) = self.vlan {
            w.key("vlan").begin_array().u64(u64::from(vlan)).end_array();
        }
        w.key("src_ip").ip(self.src_ip);
        w.key("src_port").u64(u64::from(self.src_port));
        w.key("dest_ip").ip(self.dest_ip);
        w.key("dest_port").u64(u64::from(self.dest_port));
        w.key("proto").str(self.proto);
        if let Some(cid) = &self.community_id {
            w.key("community_id").str_bytes(cid.as_bytes());
        }
        w.key("ether").begin_object();
        w.key("src_mac").mac(self.ether.src_mac);
        w.key("dest_mac").mac(self.ether.dest_mac);
        w.end_object();
    }

    /// Sets `community_id` from the tuple (`sport`/`dport`: the ICMP type and code for
    /// ICMP) and `flow_id` from it and the flow's first-packet time (none when 0).
    pub fn set_flow(&mut self, l4_proto: u8, sport: u16, dport: u16, flow_start_ns: u64) {
        let cid =
            crate::community_id::community_id(0, self.src_ip, self.dest_ip, l4_proto, sport, dport);
        self.flow_id = (flow_start_ns != 0).then(|| flow_id(cid.as_bytes(), flow_start_ns));
        self.community_id = Some(cid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_like_suricata() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000+0000");
        // 2026-11-22T02:45:13.123456Z
        assert_eq!(
            Timestamp(1_795_315_513_123_456_789).to_string(),
            "2026-11-22T02:45:13.123456+0000"
        );
        // Leap day.
        assert_eq!(
            Timestamp(951_782_400_000_000_000).to_string(),
            "2000-02-29T00:00:00.000000+0000"
        );
    }

    #[test]
    fn timestamps_written_in_place_match_display() {
        // Same second twice (the cached prefix), the next second, a leap day, the epoch.
        for ns in [
            1_795_315_513_123_456_789,
            1_795_315_513_999_999_999,
            1_795_315_514_000_000_001,
            951_782_400_000_000_000,
            0,
            1_795_315_513_000_000_000,
        ] {
            let mut out = Vec::new();
            Timestamp(ns).write_to(&mut out);
            assert_eq!(String::from_utf8(out).ok(), Some(Timestamp(ns).to_string()));
        }
    }

    #[test]
    fn mac_and_addr() {
        assert_eq!(
            serde_json::to_string(&Mac([0, 0x1b, 0x2c, 0xff, 1, 2]))
                .ok()
                .as_deref(),
            Some("\"00:1b:2c:ff:01:02\"")
        );
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&[198, 18, 0, 1]);
        assert_eq!(addr(4, raw).to_string(), "198.18.0.1");
    }
}
