//! The device inventory: one entry per MAC address, fed by DHCP (and, where the kernel
//! reports them, ARP and IPv6 neighbour discovery), with the vendor from the IEEE
//! registries, the DHCP fingerprint and its classification (docs/devices.md).
//!
//! Bounded: at most [`MAX_DEVICES`] devices (the least recently seen one makes room) and
//! [`MAX_ADDRESSES`] addresses of each family per device (the oldest goes).

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use serde::{Deserialize, Serialize};

/// Devices kept at most.
pub const MAX_DEVICES: usize = 8192;
/// Addresses per family kept per device at most.
pub const MAX_ADDRESSES: usize = 8;
/// Longest host name, client id or fingerprint kept (bytes).
const MAX_TEXT: usize = 255;

/// What the IEEE registries say about a MAC's prefix.
#[derive(Debug, Default)]
pub struct Registry {
    /// MA-L (24-bit), MA-M (28-bit) and MA-S (36-bit) assignments: prefix bits -> name.
    by_prefix: [HashMap<u64, String>; 3],
    /// Where the data came from (`ieee-data`, or `none`).
    pub source: String,
}

/// Prefix lengths in nibbles, longest first: MA-S, MA-M, MA-L.
const NIBBLES: [usize; 3] = [9, 7, 6];

fn mac_bits(mac: [u8; 6]) -> u64 {
    mac.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b))
}

impl Registry {
    /// Reads the compact form the supervisor hands over: one `HEX<TAB>Organization` line
    /// per assignment, HEX being 6 (MA-L), 7 (MA-M) or 9 (MA-S) hex digits. Lines that are
    /// not in that form are skipped and counted (returned).
    pub fn from_compact(text: &str, source: &str) -> (Self, usize) {
        let mut r = Self {
            source: source.to_owned(),
            ..Self::default()
        };
        let mut bad = 0;
        for line in text.lines() {
            let Some((hex, name)) = line.split_once('\t') else {
                bad += 1;
                continue;
            };
            let Some(slot) = NIBBLES.iter().position(|n| *n == hex.len()) else {
                bad += 1;
                continue;
            };
            let Ok(prefix) = u64::from_str_radix(hex, 16) else {
                bad += 1;
                continue;
            };
            if let Some(map) = r.by_prefix.get_mut(slot) {
                map.insert(prefix, name.trim().to_owned());
            }
        }
        (r, bad)
    }

    /// Entries loaded.
    pub fn len(&self) -> usize {
        self.by_prefix.iter().map(HashMap::len).sum()
    }

    /// No entries (no registry data).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The organisation of the longest assigned prefix of `mac`; `None` when no registry
    /// has it (and for locally administered addresses, which are not assigned).
    pub fn vendor(&self, mac: [u8; 6]) -> Option<&str> {
        if locally_administered(mac) {
            return None;
        }
        let bits = mac_bits(mac);
        NIBBLES.iter().zip(&self.by_prefix).find_map(|(n, map)| {
            let prefix = bits >> (48 - 4 * n);
            map.get(&prefix).map(String::as_str)
        })
    }
}

/// The U/L bit: set on locally administered addresses (randomised "private" MACs of
/// phones and laptops, virtual machines, containers).
pub fn locally_administered(mac: [u8; 6]) -> bool {
    mac[0] & 0x02 != 0
}

/// A classification of a DHCP client: OS family and device type, or `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Class {
    pub os: &'static str,
    pub device_type: &'static str,
}

impl Class {
    pub const UNKNOWN: Self = Self {
        os: "unknown",
        device_type: "unknown",
    };
}

/// Classifies a client from what it says about itself in its DHCP vendor class
/// (option 60 / DHCPv6 option 16). The table is Palisade's own, documented in
/// docs/devices.md; a client that does not name itself is `unknown` (no guessing from
/// the parameter list alone).
pub fn classify(vendor_class: Option<&str>) -> Class {
    let Some(v) = vendor_class else {
        return Class::UNKNOWN;
    };
    let class = |os, device_type| Class { os, device_type };
    let lower = v.to_ascii_lowercase();
    if lower.starts_with("msft 5.0") || lower.starts_with("msft 98") {
        class("windows", "computer")
    } else if lower.starts_with("android-dhcp-") {
        class("android", "phone")
    } else if lower.starts_with("udhcp ") {
        class("linux", "embedded")
    } else if let Some(rest) = lower.strip_prefix("dhcpcd-") {
        // dhcpcd-VERSION:SYSTEM-RELEASE:MACHINE[:PLATFORM]
        let system = rest.split(':').nth(1).unwrap_or_default();
        if system.starts_with("linux") {
            class("linux", "unknown")
        } else if system.starts_with("netbsd")
            || system.starts_with("freebsd")
            || system.starts_with("openbsd")
        {
            class("bsd", "unknown")
        } else {
            Class::UNKNOWN
        }
    } else if lower.starts_with("cisco systems, inc. ip phone") {
        class("unknown", "voip_phone")
    } else if lower.starts_with("pxeclient") {
        class("unknown", "network_boot")
    } else {
        Class::UNKNOWN
    }
}

/// One device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Wall-clock seconds since the epoch.
    pub first_seen: u64,
    pub last_seen: u64,
    /// IPv4 addresses (leases and ARP), oldest first.
    pub ipv4: Vec<String>,
    /// IPv6 addresses (DHCPv6 leases and neighbour discovery), oldest first.
    pub ipv6: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hostname: Option<String>,
    /// DHCPv4 client identifier (option 61), hex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    /// DHCPv6 DUID, hex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duid: Option<String>,
    /// Organisation from the IEEE registries; `unknown` when not assigned or no data.
    pub vendor: String,
    /// The U/L bit is set (randomised or virtual MAC).
    pub locally_administered: bool,
    /// DHCP fingerprint (docs/devices.md).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vendor_class: Option<String>,
    /// OS family from the classification table, or `unknown`.
    pub os: String,
    /// Device type from the classification table, or `unknown`.
    pub device_type: String,
    /// Current lease (DHCPv4 ACK): address, lease seconds, renewals seen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lease: Option<Lease>,
}

/// A DHCPv4 lease as seen in ACKs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: String,
    /// Seconds (option 51), 0 when the ACK had none.
    pub lease_time: u32,
    /// Wall-clock seconds of the ACK.
    pub acked_at: u64,
    /// ACKs for the same address after the first (renewals and rebinds).
    pub renewals: u32,
}

/// What one observation of a device says.
#[derive(Debug, Default, Clone)]
pub struct Sighting<'a> {
    pub hostname: Option<&'a str>,
    pub client_id: Option<String>,
    pub duid: Option<String>,
    pub fingerprint: Option<String>,
    pub vendor_class: Option<&'a str>,
    pub address: Option<IpAddr>,
    /// A DHCPv4 ACK: the lease (address, seconds).
    pub lease: Option<(IpAddr, u32)>,
}

/// A change worth an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// First time this MAC is seen.
    New,
    /// The host name changed (old, new).
    Hostname(String, String),
    /// The fingerprint changed (old, new).
    Fingerprint(String, String),
    /// An address this device now answers for was bound to another MAC (the address, the
    /// previous MAC): `bindings::Bindings`.
    Binding(String, String),
}

/// The inventory.
#[derive(Debug, Default)]
pub struct Inventory {
    devices: BTreeMap<[u8; 6], Device>,
    /// Set whenever a device changes; cleared by whoever persists it.
    pub dirty: bool,
}

pub fn mac_text(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_owned()
}

fn remember(list: &mut Vec<String>, addr: String) {
    if let Some(i) = list.iter().position(|a| *a == addr) {
        // Most recent last.
        let a = list.remove(i);
        list.push(a);
        return;
    }
    if list.len() >= MAX_ADDRESSES {
        list.remove(0);
    }
    list.push(addr);
}

impl Inventory {
    /// Devices now (the `dhcp_devices` gauge).
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// No devices.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Every device, by MAC.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    /// One device.
    pub fn get(&self, mac: [u8; 6]) -> Option<&Device> {
        self.devices.get(&mac)
    }

    /// Records a sighting of `mac` at wall time `now`; returns what changed that deserves
    /// an alert. Broadcast, multicast and all-zero MACs are not devices.
    pub fn observe(
        &mut self,
        mac: [u8; 6],
        now: u64,
        s: &Sighting<'_>,
        registry: &Registry,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        if mac[0] & 0x01 != 0 || mac == [0; 6] {
            return changes;
        }
        if !self.devices.contains_key(&mac) {
            if self.devices.len() >= MAX_DEVICES {
                self.evict_least_recent();
            }
            self.devices.insert(
                mac,
                Device {
                    mac: mac_text(mac),
                    first_seen: now,
                    last_seen: now,
                    ipv4: Vec::new(),
                    ipv6: Vec::new(),
                    hostname: None,
                    client_id: None,
                    duid: None,
                    vendor: registry.vendor(mac).unwrap_or("unknown").to_owned(),
                    locally_administered: locally_administered(mac),
                    fingerprint: None,
                    vendor_class: None,
                    os: "unknown".into(),
                    device_type: "unknown".into(),
                    lease: None,
                },
            );
            changes.push(Change::New);
        }
        let Some(d) = self.devices.get_mut(&mac) else {
            return changes;
        };
        d.last_seen = d.last_seen.max(now);
        if let Some(h) = s.hostname {
            let h = clip(h.trim_end_matches('\0'));
            match &d.hostname {
                Some(old) if *old != h => changes.push(Change::Hostname(old.clone(), h.clone())),
                _ => {}
            }
            d.hostname = Some(h);
        }
        if let Some(f) = &s.fingerprint {
            let f = clip(f);
            // DHCPv6 fingerprints are tracked apart from DHCPv4 ones: a dual-stack client
            // sends both and that is no change.
            let v6 = f.starts_with("v6:");
            match &d.fingerprint {
                Some(old) if *old != f && old.starts_with("v6:") == v6 => {
                    changes.push(Change::Fingerprint(old.clone(), f.clone()));
                }
                _ => {}
            }
            if !v6 || d.fingerprint.is_none() {
                d.fingerprint = Some(f);
            }
        }
        if let Some(v) = s.vendor_class {
            d.vendor_class = Some(clip(v));
            let c = classify(Some(v));
            d.os = c.os.into();
            d.device_type = c.device_type.into();
        }
        if let Some(c) = &s.client_id {
            d.client_id = Some(clip(c));
        }
        if let Some(c) = &s.duid {
            d.duid = Some(clip(c));
        }
        if let Some(a) = s.address {
            match a {
                IpAddr::V4(v4) if !v4.is_unspecified() => remember(&mut d.ipv4, a.to_string()),
                IpAddr::V6(v6) if !v6.is_unspecified() => remember(&mut d.ipv6, a.to_string()),
                _ => {}
            }
        }
        if let Some((ip, lease_time)) = s.lease {
            let ip = ip.to_string();
            let renewals = match &d.lease {
                Some(l) if l.ip == ip => l.renewals.saturating_add(1),
                _ => 0,
            };
            d.lease = Some(Lease {
                ip,
                lease_time,
                acked_at: now,
                renewals,
            });
        }
        self.dirty = true;
        changes
    }

    /// Re-reads vendors from a new registry (after a reload).
    pub fn refresh_vendors(&mut self, registry: &Registry) {
        for (mac, d) in &mut self.devices {
            let vendor = registry.vendor(*mac).unwrap_or("unknown");
            if d.vendor != vendor {
                d.vendor = vendor.to_owned();
                // `palisade devices` reads the state file: write the new names.
                self.dirty = true;
            }
        }
    }

    fn evict_least_recent(&mut self) {
        if let Some(mac) = self
            .devices
            .iter()
            .min_by_key(|(_, d)| d.last_seen)
            .map(|(m, _)| *m)
        {
            self.devices.remove(&mac);
        }
    }

    /// The inventory as JSON lines (the state file's content).
    pub fn to_jsonl(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for d in self.devices.values() {
            if serde_json::to_writer(&mut out, d).is_ok() {
                out.push(b'\n');
            }
        }
        out
    }

    /// Reads a state file's content; returns the lines that were not devices (counted).
    pub fn load_jsonl(&mut self, bytes: &[u8]) -> usize {
        let mut bad = 0;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Device>(line)
                .ok()
                .and_then(|d| Some((parse_mac(&d.mac)?, d)))
            {
                Some((mac, d)) if self.devices.len() < MAX_DEVICES => {
                    self.devices.insert(mac, d);
                }
                _ => bad += 1,
            }
        }
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::from_compact(
            "001132\tSynology Incorporated\n28CFDA\tApple, Inc.\n70B3D5F2F\tTELEPLATFORMS\n\
             70B3D5\tIEEE Registration Authority\nbad line\n",
            "test",
        )
        .0
    }

    #[test]
    fn longest_prefix_wins_and_local_macs_have_no_vendor() {
        let r = registry();
        assert_eq!(r.len(), 4);
        assert_eq!(
            r.vendor([0x00, 0x11, 0x32, 1, 2, 3]),
            Some("Synology Incorporated")
        );
        assert_eq!(
            r.vendor([0x70, 0xb3, 0xd5, 0xf2, 0xf0, 1]),
            Some("TELEPLATFORMS")
        );
        assert_eq!(
            r.vendor([0x70, 0xb3, 0xd5, 0x11, 0, 1]),
            Some("IEEE Registration Authority")
        );
        assert_eq!(r.vendor([0x02, 0x11, 0x32, 1, 2, 3]), None);
        assert!(locally_administered([0x92, 0xdd, 0xa4, 0x8d, 0x5f, 0xde]));
    }

    #[test]
    fn classification_is_unknown_unless_the_client_names_itself() {
        assert_eq!(classify(None), Class::UNKNOWN);
        assert_eq!(classify(Some("MSFT 5.0")).os, "windows");
        assert_eq!(classify(Some("udhcp 1.36.1")).os, "linux");
        assert_eq!(
            classify(Some("dhcpcd-9.4.1:Linux-6.1.0:x86_64:GenuineIntel")).os,
            "linux"
        );
        assert_eq!(classify(Some("android-dhcp-13")).device_type, "phone");
        assert_eq!(classify(Some("something else")), Class::UNKNOWN);
    }

    #[test]
    fn changes_and_persistence() {
        let r = registry();
        let mut inv = Inventory::default();
        let mac = [0x00, 0x11, 0x32, 1, 2, 3];
        let s = Sighting {
            hostname: Some("nas1\0"),
            fingerprint: Some("1,3,6".into()),
            vendor_class: Some("udhcp 1.36.1"),
            lease: Some(("10.0.0.5".parse().expect("ip"), 3600)),
            address: Some("10.0.0.5".parse().expect("ip")),
            ..Sighting::default()
        };
        assert_eq!(inv.observe(mac, 10, &s, &r), vec![Change::New]);
        assert!(inv.observe(mac, 11, &s, &r).is_empty());
        let d = inv.get(mac).expect("device");
        assert_eq!(d.hostname.as_deref(), Some("nas1"));
        assert_eq!(d.vendor, "Synology Incorporated");
        assert_eq!(d.lease.as_ref().map(|l| l.renewals), Some(1));
        assert_eq!(d.os, "linux");
        let renamed = Sighting {
            hostname: Some("other"),
            fingerprint: Some("1,3".into()),
            ..Sighting::default()
        };
        assert_eq!(
            inv.observe(mac, 12, &renamed, &r),
            vec![
                Change::Hostname("nas1".into(), "other".into()),
                Change::Fingerprint("1,3,6".into(), "1,3".into())
            ]
        );
        let mut back = Inventory::default();
        assert_eq!(back.load_jsonl(&inv.to_jsonl()), 0);
        assert_eq!(back.get(mac), inv.get(mac));
        assert!(
            inv.observe([0xff; 6], 1, &Sighting::default(), &r)
                .is_empty()
        );
    }
}
