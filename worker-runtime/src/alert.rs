//! `alert` events, shaped like Suricata's EVE alerts (`alert.action`,
//! `gid`, `signature_id`, `rev`, `signature`, `category`, `severity`), and
//! the signatures Palisade raises. Signature ids are Palisade's own range
//! (gid 1, sid 9_000_000+), so they never collide with ET/Snort rules.

use serde::Serialize;

/// One signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// Signature id.
    pub id: u32,
    /// Revision.
    pub rev: u32,
    /// Text.
    pub text: &'static str,
    /// Category (Suricata classification names).
    pub category: &'static str,
    /// 1 (high) to 3 (low).
    pub severity: u8,
}

/// A connection to the DNS-over-TLS port (853).
pub const DNS_OVER_TLS: Signature = Signature {
    id: 9_000_001,
    rev: 1,
    text: "PALISADE encrypted DNS: DNS over TLS connection (port 853)",
    category: "Potential Corporate Privacy Violation",
    severity: 2,
};
/// A query for the name of a known DoH/DoT resolver.
pub const ENCRYPTED_DNS_RESOLVER_QUERY: Signature = Signature {
    id: 9_000_002,
    rev: 1,
    text: "PALISADE encrypted DNS: query for a known DoH/DoT resolver name",
    category: "Potential Corporate Privacy Violation",
    severity: 2,
};
/// A connection to the address of a known DoH/DoT resolver.
pub const ENCRYPTED_DNS_RESOLVER_CONNECTION: Signature = Signature {
    id: 9_000_003,
    rev: 1,
    text: "PALISADE encrypted DNS: connection to a known DoH/DoT resolver address",
    category: "Potential Corporate Privacy Violation",
    severity: 2,
};
/// An answer whose CNAME chain reaches a blocked domain.
pub const DNS_CNAME_TO_BLOCKED: Signature = Signature {
    id: 9_000_004,
    rev: 1,
    text: "PALISADE DNS policy: CNAME chain reaches a blocked domain; queried name blocked",
    category: "Potential Corporate Privacy Violation",
    severity: 2,
};

/// A packet dropped by the IP policy because its source address is in a blocked prefix.
pub const IP_BLOCKED_SOURCE: Signature = Signature {
    id: 9_000_010,
    rev: 1,
    text: "PALISADE IP policy: packet from a blocked address dropped",
    category: "Misc Attack",
    severity: 2,
};
/// A packet dropped by the IP policy because its destination address is in a blocked prefix.
pub const IP_BLOCKED_DESTINATION: Signature = Signature {
    id: 9_000_011,
    rev: 1,
    text: "PALISADE IP policy: packet to a blocked address dropped",
    category: "Misc Attack",
    severity: 2,
};

/// A device (MAC address) seen for the first time.
pub const NEW_DEVICE: Signature = Signature {
    id: 9_000_020,
    rev: 1,
    text: "PALISADE devices: new device",
    category: "Not Suspicious Traffic",
    severity: 3,
};
/// A known device announced another host name.
pub const DEVICE_HOSTNAME_CHANGED: Signature = Signature {
    id: 9_000_021,
    rev: 1,
    text: "PALISADE devices: host name changed",
    category: "Potentially Bad Traffic",
    severity: 3,
};
/// A known device's DHCP fingerprint changed (another OS or DHCP client behind the MAC).
pub const DEVICE_FINGERPRINT_CHANGED: Signature = Signature {
    id: 9_000_022,
    rev: 1,
    text: "PALISADE devices: DHCP fingerprint changed",
    category: "Potentially Bad Traffic",
    severity: 2,
};
/// An IP address answered from another MAC than before (ARP / neighbour discovery).
pub const DEVICE_BINDING_CHANGED: Signature = Signature {
    id: 9_000_023,
    rev: 1,
    text: "PALISADE devices: IP-to-MAC binding changed",
    category: "Potentially Bad Traffic",
    severity: 2,
};
/// A DHCP server reply (OFFER/ACK, ADVERTISE/REPLY) from a server not on the allow-list.
pub const ROGUE_DHCP_SERVER: Signature = Signature {
    id: 9_000_030,
    rev: 1,
    text: "PALISADE DHCP guard: reply from a server not on the allow-list",
    category: "Potentially Bad Traffic",
    severity: 1,
};
/// An IPv6 router advertisement from a router not on the allow-list.
pub const ROGUE_ROUTER_ADVERTISEMENT: Signature = Signature {
    id: 9_000_031,
    rev: 1,
    text: "PALISADE DHCP guard: router advertisement from a router not on the allow-list",
    category: "Potentially Bad Traffic",
    severity: 1,
};
/// A ClientHello (TCP or QUIC) matched a TLS rule (JA3, JA4 or SNI); `palisade.tls_rule`
/// names it. Action `blocked` when the rule cuts the connection.
pub const TLS_RULE_MATCH: Signature = Signature {
    id: 9_000_040,
    rev: 1,
    text: "PALISADE TLS policy: ClientHello matched a TLS rule",
    category: "Potential Corporate Privacy Violation",
    severity: 2,
};

/// The `alert` object of an event.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// `allowed` (observed) or `blocked`.
    pub action: &'static str,
    /// Generator id (always 1).
    pub gid: u32,
    /// Signature id.
    pub signature_id: u32,
    /// Revision.
    pub rev: u32,
    /// Signature text.
    pub signature: &'static str,
    /// Category.
    pub category: &'static str,
    /// Severity.
    pub severity: u8,
}

impl Alert {
    /// An alert for `sig` with `action`.
    pub fn new(sig: Signature, action: &'static str) -> Self {
        Self {
            action,
            gid: 1,
            signature_id: sig.id,
            rev: sig.rev,
            signature: sig.text,
            category: sig.category,
            severity: sig.severity,
        }
    }
}
