//! The `dhcp` event's objects: Suricata's `dhcp` (its extended format's field names) and
//! Palisade's `palisade.dhcp`, for DHCPv4 and DHCPv6 messages.
//!
//! Suricata has no DHCPv6 events; a DHCPv6 message is written as a `dhcp` event with the
//! same field names where they mean the same thing (`type`, `id`, `dhcp_type`, `client_id`
//! as hex of the DUID, `hostname` from the client FQDN, `assigned_ip` the first IA_NA
//! address) and the rest in `palisade.dhcp` (`version: 6`).

use std::net::{IpAddr, Ipv4Addr};

use palisade_worker_runtime::eve::Mac;
use serde::Serialize;

use crate::{
    parse::{Message, Op},
    parse6::{Ia, Message6},
};

/// Hex bytes joined by colons, as Suricata writes `client_id` (`01:00:11:...`).
pub fn hex_colons(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Suricata's name of a requested parameter (its `dhcp.params` vocabulary); `None` for
/// the codes Suricata leaves out.
pub fn param_name(code: u8) -> Option<&'static str> {
    Some(match code {
        1 => "subnet_mask",
        3 => "router",
        6 => "dns_server",
        15 => "domain",
        35 => "arp_timeout",
        42 => "ntp_server",
        66 => "tftp_server_name",
        150 => "tftp_server_ip",
        _ => return None,
    })
}

/// The `dhcp` object, in Suricata's fields (its extended format).
#[derive(Debug, Serialize)]
pub struct DhcpBody {
    /// `request` or `reply`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_mac: Option<Mac>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_server_ip: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_ip: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_time: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebinding_time: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet_mask: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routers: Vec<Ipv4Addr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_class_identifier: Option<String>,
    /// The parameter request list (option 55) as Suricata writes it: the names of the
    /// parameters it knows, in request order (all codes are in `palisade.dhcp.params`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<&'static str>,
}

/// Option 82 sub-options, hex.
#[derive(Debug, Serialize)]
pub struct RelayAgent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
}

/// An IA_NA or IA_PD of a DHCPv6 message.
#[derive(Debug, Serialize)]
pub struct IaOut {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    /// Addresses (IA_NA) or prefixes (IA_PD, `addr/len`), with their valid lifetimes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub valid_lifetimes: Vec<u32>,
}

impl IaOut {
    fn new(ia: &Ia) -> Self {
        let mut addresses: Vec<String> =
            ia.addresses.iter().map(|a| a.address.to_string()).collect();
        let mut valid: Vec<u32> = ia.addresses.iter().map(|a| a.valid).collect();
        addresses.extend(
            ia.prefixes
                .iter()
                .map(|p| format!("{}/{}", p.prefix, p.length)),
        );
        valid.extend(ia.prefixes.iter().map(|p| p.valid));
        Self {
            iaid: ia.iaid,
            t1: ia.t1,
            t2: ia.t2,
            addresses,
            valid_lifetimes: valid,
        }
    }
}

/// Where a transaction stands, on the event of each of its messages.
#[derive(Debug, Clone, Serialize)]
pub struct TransactionOut {
    /// `open`, `complete` (ACK/REPLY seen), `rejected` (NAK, DECLINE), `released`, or
    /// `incomplete` (expired or evicted before an answer).
    pub state: &'static str,
    /// Message types seen so far, in order.
    pub messages: Vec<&'static str>,
    /// Time since the transaction's first message, milliseconds.
    pub duration_ms: u64,
}

/// `palisade.dhcp`: what Suricata's `dhcp` object has no field for.
#[derive(Debug, Default, Serialize)]
pub struct DhcpVendor {
    /// 4 or 6.
    pub version: u8,
    /// Server identifier (option 54), or the DHCPv6 server DUID (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// Every code of the parameter request list (option 55, DHCPv6 ORO), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<u16>,
    /// Option codes of the options field (DHCPv6: of the message), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<u16>,
    /// Codes read from `file`/`sname` because of option 52, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overload_options: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hops: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Option 81 (DHCPv4) name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_agent: Option<RelayAgent>,
    /// DHCPv6 vendor class enterprise number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_enterprise: Option<u32>,
    /// DHCPv6 user class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_class: Option<String>,
    /// DHCPv6 status code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ia_na: Vec<IaOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ia_pd: Vec<IaOut>,
    /// Relay messages unwrapped (DHCPv6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_hops: Option<u8>,
    /// Options skipped because malformed.
    #[serde(skip_serializing_if = "is_zero")]
    pub malformed_options: u32,
    /// The option list was cut short (capture cap or malformed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub options_truncated: bool,
    /// The DHCP fingerprint (option 55 codes, then option 60), see docs/devices.md.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TransactionOut>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The objects of a DHCPv4 message's event (without transaction state).
pub fn v4(m: &Message) -> (DhcpBody, DhcpVendor) {
    let nonzero = |a: Ipv4Addr| (!a.is_unspecified()).then_some(IpAddr::V4(a));
    let body = DhcpBody {
        kind: match m.op {
            Op::Request => "request",
            Op::Reply => "reply",
        },
        id: m.xid,
        client_mac: Some(Mac(m.client_mac)),
        client_ip: Some(IpAddr::V4(m.client_ip)),
        assigned_ip: Some(IpAddr::V4(m.assigned_ip)),
        relay_ip: nonzero(m.relay_ip),
        next_server_ip: (!m.next_server_ip.is_unspecified()).then_some(m.next_server_ip),
        dhcp_type: m.message_type.map(|t| t.name()),
        client_id: m.client_id.as_ref().map(|c| hex_colons(&c.bytes)),
        hostname: m.hostname.clone(),
        requested_ip: m.requested_ip,
        lease_time: m.lease_time,
        renewal_time: m.renewal_time,
        rebinding_time: m.rebinding_time,
        subnet_mask: m.subnet_mask,
        routers: m.routers.clone(),
        dns_servers: m.dns_servers.iter().copied().map(IpAddr::V4).collect(),
        vendor_class_identifier: m.vendor_class.clone(),
        params: m.params.iter().copied().filter_map(param_name).collect(),
    };
    let vendor = DhcpVendor {
        version: 4,
        server_id: m.server_id.map(|a| a.to_string()),
        params: m.params.iter().copied().map(u16::from).collect(),
        options: m.options.iter().map(|o| u16::from(o.0)).collect(),
        overload_options: m.overload_options.iter().map(|o| o.0).collect(),
        flags: Some(m.flags),
        hops: (m.hops > 0).then_some(m.hops),
        max_message_size: m.max_message_size,
        domain: m.domain.clone(),
        fqdn: m.client_fqdn.as_ref().map(|f| f.name.clone()),
        relay_agent: m.relay_agent.as_ref().map(|r| RelayAgent {
            circuit_id: r.circuit_id.as_deref().map(hex_colons),
            remote_id: r.remote_id.as_deref().map(hex_colons),
        }),
        malformed_options: m.malformed_options,
        options_truncated: m.options_truncated,
        fingerprint: fingerprint(&m.params, m.vendor_class.as_deref()),
        ..DhcpVendor::default()
    };
    (body, vendor)
}

/// The DHCP fingerprint: the option 55 codes in order, comma-separated, and when option
/// 60 is present, `|` and its text. `None` without option 55.
pub fn fingerprint(params: &[u8], vendor_class: Option<&str>) -> Option<String> {
    if params.is_empty() {
        return None;
    }
    let mut s = params
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    if let Some(v) = vendor_class {
        s.push('|');
        s.push_str(v);
    }
    Some(s)
}

/// The objects of a DHCPv6 message's event. `client_mac` comes from the client DUID
/// (LLT/LL of an Ethernet address) or, failing that, the frame's source MAC for client
/// messages (`frame_mac`).
pub fn v6(m: &Message6, frame_mac: Option<[u8; 6]>) -> (DhcpBody, DhcpVendor) {
    let server = m.message_type.is_server_reply();
    let mac = m
        .client_id
        .as_ref()
        .and_then(|d| d.mac())
        .or(if server { None } else { frame_mac });
    let assigned = m
        .ia_na
        .iter()
        .flat_map(|ia| ia.addresses.iter())
        .next()
        .map(|a| IpAddr::V6(a.address));
    let body = DhcpBody {
        kind: if server { "reply" } else { "request" },
        id: m.xid,
        client_mac: mac.map(Mac),
        client_ip: None,
        assigned_ip: if server { assigned } else { None },
        relay_ip: None,
        next_server_ip: None,
        dhcp_type: Some(m.message_type.name()),
        client_id: m.client_id.as_ref().map(|d| hex_colons(&d.bytes)),
        hostname: m.fqdn.clone(),
        requested_ip: None,
        lease_time: None,
        renewal_time: None,
        rebinding_time: None,
        subnet_mask: None,
        routers: Vec::new(),
        dns_servers: m.dns_servers.iter().copied().map(IpAddr::V6).collect(),
        vendor_class_identifier: m.vendor_class.as_ref().map(|(_, d)| d.clone()),
        params: Vec::new(),
    };
    let vendor = DhcpVendor {
        version: 6,
        server_id: m.server_id.as_ref().map(|d| hex_colons(&d.bytes)),
        params: m.oro.clone(),
        options: m.options.iter().map(|o| o.0).collect(),
        vendor_enterprise: m.vendor_class.as_ref().map(|(e, _)| *e),
        user_class: m.user_class.clone(),
        status: m.status,
        ia_na: m.ia_na.iter().map(IaOut::new).collect(),
        ia_pd: m.ia_pd.iter().map(IaOut::new).collect(),
        relay_hops: (m.relay_hops > 0).then_some(m.relay_hops),
        malformed_options: m.malformed_options,
        fingerprint: fingerprint6(&m.oro, m.vendor_class.as_ref().map(|(_, d)| d.as_str())),
        ..DhcpVendor::default()
    };
    (body, vendor)
}

/// The DHCPv6 fingerprint: `v6:` and the ORO codes in order, then `|` and the vendor
/// class datum when present. `None` without ORO.
pub fn fingerprint6(oro: &[u16], vendor_class: Option<&str>) -> Option<String> {
    if oro.is_empty() {
        return None;
    }
    let mut s = String::from("v6:");
    s.push_str(
        &oro.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    if let Some(v) = vendor_class {
        s.push('|');
        s.push_str(v);
    }
    Some(s)
}
