//! IP-to-MAC bindings: which MAC last answered for an address on a link (interface and
//! VLAN), from ARP, neighbour discovery and DHCP leases. A binding that moves to another
//! MAC is an alert (ARP or ND spoofing, or two hosts fighting over an address); a DHCP
//! lease moves a binding without one (the server gave the address to that client).
//!
//! Kept in memory only, at most [`MAX_BINDINGS`] (the least recently confirmed goes): after
//! a worker restart bindings are learnt again from traffic, so a change across a restart is
//! not alerted (the device inventory, which is persisted, still lists the addresses).

use std::{collections::HashMap, net::IpAddr};

/// Bindings kept at most.
pub const MAX_BINDINGS: usize = 16_384;

/// Where an address lives: interface, VLAN (0: untagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Link {
    pub ifindex: u32,
    pub vlan: u16,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: [u8; 6],
    /// Boot ns of the latest confirmation (eviction order).
    seen_ns: u64,
}

/// The bindings.
#[derive(Debug, Default)]
pub struct Bindings {
    map: HashMap<(Link, IpAddr), Entry>,
}

impl Bindings {
    /// Bindings held (the `dhcp_bindings` gauge).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// None held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Records that `mac` holds `ip` on `link` at boot time `now_ns`. Returns the previous
    /// MAC when the binding moved and `authoritative` is false (an alert); a DHCP lease
    /// (`authoritative`) moves it silently.
    pub fn bind(
        &mut self,
        link: Link,
        ip: IpAddr,
        mac: [u8; 6],
        now_ns: u64,
        authoritative: bool,
    ) -> Option<[u8; 6]> {
        if mac[0] & 0x01 != 0 || mac == [0; 6] {
            return None;
        }
        let key = (link, ip);
        if !self.map.contains_key(&key) && self.map.len() >= MAX_BINDINGS {
            self.evict_oldest();
        }
        let entry = Entry {
            mac,
            seen_ns: now_ns,
        };
        match self.map.insert(key, entry) {
            Some(old) if old.mac != mac && !authoritative => Some(old.mac),
            _ => None,
        }
    }

    /// The MAC bound to `ip` on `link`.
    pub fn get(&self, link: Link, ip: IpAddr) -> Option<[u8; 6]> {
        self.map.get(&(link, ip)).map(|e| e.mac)
    }

    fn evict_oldest(&mut self) {
        if let Some(key) = self
            .map
            .iter()
            .min_by_key(|(_, e)| e.seen_ns)
            .map(|(k, _)| *k)
        {
            self.map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: Link = Link {
        ifindex: 2,
        vlan: 0,
    };

    #[test]
    fn a_moved_binding_is_reported_unless_leased() {
        let mut b = Bindings::default();
        let ip: IpAddr = "198.18.0.5".parse().expect("ip");
        assert_eq!(b.bind(LINK, ip, [2, 0, 0, 0, 0, 1], 1, false), None);
        assert_eq!(b.bind(LINK, ip, [2, 0, 0, 0, 0, 1], 2, false), None);
        assert_eq!(
            b.bind(LINK, ip, [2, 0, 0, 0, 0, 2], 3, false),
            Some([2, 0, 0, 0, 0, 1])
        );
        assert_eq!(b.get(LINK, ip), Some([2, 0, 0, 0, 0, 2]));
        // A lease moves it without a report.
        assert_eq!(b.bind(LINK, ip, [2, 0, 0, 0, 0, 3], 4, true), None);
        // Another VLAN is another link.
        let other = Link {
            ifindex: 2,
            vlan: 7,
        };
        assert_eq!(b.bind(other, ip, [2, 0, 0, 0, 0, 9], 5, false), None);
        // Multicast senders are not bound.
        assert_eq!(b.bind(LINK, ip, [1, 0, 0x5e, 0, 0, 1], 6, false), None);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn bounded() {
        let mut b = Bindings::default();
        for i in 0..=MAX_BINDINGS as u32 {
            b.bind(
                LINK,
                IpAddr::from(i.to_be_bytes()),
                [2, 0, 0, 0, 0, 1],
                u64::from(i),
                false,
            );
        }
        assert_eq!(b.len(), MAX_BINDINGS);
        // The oldest went.
        assert_eq!(b.get(LINK, IpAddr::from(0u32.to_be_bytes())), None);
    }
}
