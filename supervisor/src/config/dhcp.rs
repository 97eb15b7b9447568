//! `[dhcp]`: the DHCP worker's transaction tracking and the DHCP guard.

use std::net::IpAddr;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, check::Checker};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDhcp {
    transaction_timeout_s: Option<Spanned<i64>>,
    guard: Option<Spanned<bool>>,
    allowed_servers: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One allow-list entry of the guard: a sender's Ethernet source MAC or its IP source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllowedServer {
    /// The frame's source MAC (the server's or router's interface, or a relay's).
    Mac([u8; 6]),
    /// The packet's source IP (IPv4 for DHCPv4, the link-local or global IPv6 address a
    /// DHCPv6 server or router sends from).
    Ip(IpAddr),
}

impl AllowedServer {
    /// Parses `aa:bb:cc:dd:ee:ff` (or `-` separated) or an IP address.
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Some(Self::Ip(ip));
        }
        let mut mac = [0u8; 6];
        let mut parts = text.split([':', '-']);
        for byte in &mut mac {
            let part = parts.next()?;
            if part.len() != 2 {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(Self::Mac(mac))
    }

    /// The kernel's allow-list key.
    pub fn key(self) -> palisade_abi::GuardKey {
        match self {
            Self::Mac(mac) => palisade_abi::GuardKey::mac(mac),
            Self::Ip(ip) => palisade_abi::GuardKey::ip(ip),
        }
    }
}

/// `[dhcp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    /// A DHCP transaction (DISCOVER..ACK, SOLICIT..REPLY) still open after this many
    /// seconds is written as `incomplete` and leaves the worker's memory.
    pub transaction_timeout_s: u32,
    /// Drop DHCP server messages and router advertisements from senders not on
    /// `allowed_servers` (else they are only alerted).
    pub guard: bool,
    /// The DHCP servers, relays and routers allowed to answer clients. Empty: the guard is
    /// off (nothing is checked, nothing alerted).
    pub allowed_servers: Vec<AllowedServer>,
}

impl DhcpConfig {
    /// The kernel's guard mode.
    pub fn guard_mode(&self) -> u32 {
        if self.allowed_servers.is_empty() {
            palisade_abi::GUARD_OFF
        } else if self.guard {
            palisade_abi::GUARD_DROP
        } else {
            palisade_abi::GUARD_ALERT
        }
    }
}

/// Default: 30 s (a DHCP client retransmits for about a minute; an exchange that got an
/// answer ends in well under a second); no guard.
pub const DEFAULT_DHCP: DhcpConfig = DhcpConfig {
    transaction_timeout_s: 30,
    guard: false,
    allowed_servers: Vec::new(),
};

/// Validates `[dhcp]`.
pub(super) fn parse(c: &Checker<'_>, raw: RawDhcp) -> Result<DhcpConfig, ConfigError> {
    let mut allowed_servers = Vec::new();
    if let Some(list) = &raw.allowed_servers {
        for entry in list.get_ref() {
            let Some(server) = AllowedServer::parse(entry.get_ref().trim()) else {
                return c.invalid(
                    "dhcp.allowed_servers",
                    entry.span(),
                    format!(
                        "{:?} is neither a MAC address nor an IP address",
                        entry.get_ref()
                    ),
                );
            };
            if !allowed_servers.contains(&server) {
                allowed_servers.push(server);
            }
        }
        if allowed_servers.len() > palisade_abi::GUARD_ALLOW_MAX as usize {
            return c.invalid(
                "dhcp.allowed_servers",
                list.span(),
                format!(
                    "{} entries, at most {}",
                    allowed_servers.len(),
                    palisade_abi::GUARD_ALLOW_MAX
                ),
            );
        }
    }
    let guard = raw.guard.as_ref().is_some_and(|g| *g.get_ref());
    if guard && allowed_servers.is_empty() {
        // Dropping every server's answers would cut every client off: refuse it.
        let span = raw.guard.map(|g| g.span()).unwrap_or_default();
        return c.invalid(
            "dhcp.guard",
            span,
            "guard = true needs allowed_servers (the DHCP servers and routers to let through)",
        );
    }
    Ok(DhcpConfig {
        transaction_timeout_s: c.seconds(
            "dhcp.transaction_timeout_s",
            raw.transaction_timeout_s,
            DEFAULT_DHCP.transaction_timeout_s,
            1..=3600,
        )?,
        guard,
        allowed_servers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_entries() {
        assert_eq!(
            AllowedServer::parse("00:11:32:AA:bb:cc"),
            Some(AllowedServer::Mac([0, 0x11, 0x32, 0xaa, 0xbb, 0xcc]))
        );
        assert_eq!(
            AllowedServer::parse("00-11-32-aa-bb-cc"),
            Some(AllowedServer::Mac([0, 0x11, 0x32, 0xaa, 0xbb, 0xcc]))
        );
        assert_eq!(
            AllowedServer::parse("fe80::1"),
            Some(AllowedServer::Ip(
                "fe80::1".parse().unwrap_or(IpAddr::from([0; 4]))
            ))
        );
        assert!(matches!(
            AllowedServer::parse("192.168.1.1"),
            Some(AllowedServer::Ip(_))
        ));
        for bad in [
            "",
            "00:11:32:aa:bb",
            "00:11:32:aa:bb:cc:dd",
            "0:11:32:aa:bb:cc",
            "router",
        ] {
            assert_eq!(AllowedServer::parse(bad), None, "{bad}");
        }
    }
}
