//! DHCPv4 (RFC 2131/2132) message parsing: bytes in, typed values out.
//!
//! The fixed BOOTP header is read through one checked cursor; options are read from the
//! options field and, when option 52 (overload) says so, from the `file` and then the
//! `sname` field (RFC 2131 4.1). A malformed option (length past the end, bad value size)
//! is counted in [`Message::malformed_options`] and skipped, never fatal; only a message
//! without the fixed header or the magic cookie is rejected.

use std::net::Ipv4Addr;

use palisade_worker_runtime::cursor::{Cursor, Truncated};

/// The magic cookie that starts the options field.
const MAGIC_COOKIE: u32 = 0x6382_5363;
/// Options read at most per options area (a bound on hostile option lists).
const MAX_OPTIONS: usize = 255;
/// Addresses kept at most per address-list option (routers, DNS servers).
const MAX_ADDRESSES: usize = 16;
/// Length of the fixed header before the magic cookie.
const FIXED_LEN: usize = 236;

/// A DHCP option code (RFC 2132 and later); unknown codes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OptionCode(pub u8);

impl OptionCode {
    pub const PAD: Self = Self(0);
    pub const SUBNET_MASK: Self = Self(1);
    pub const ROUTER: Self = Self(3);
    pub const DNS_SERVER: Self = Self(6);
    pub const HOST_NAME: Self = Self(12);
    pub const DOMAIN_NAME: Self = Self(15);
    pub const REQUESTED_IP: Self = Self(50);
    pub const LEASE_TIME: Self = Self(51);
    pub const OVERLOAD: Self = Self(52);
    pub const MESSAGE_TYPE: Self = Self(53);
    pub const SERVER_ID: Self = Self(54);
    pub const PARAMETER_LIST: Self = Self(55);
    pub const MESSAGE: Self = Self(56);
    pub const MAX_MESSAGE_SIZE: Self = Self(57);
    pub const RENEWAL_TIME: Self = Self(58);
    pub const REBINDING_TIME: Self = Self(59);
    pub const VENDOR_CLASS: Self = Self(60);
    pub const CLIENT_ID: Self = Self(61);
    pub const CLIENT_FQDN: Self = Self(81);
    pub const RELAY_AGENT_INFO: Self = Self(82);
    pub const END: Self = Self(255);
}

/// Option 53 values (RFC 2132 9.6, RFC 4388); unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType(pub u8);

impl MessageType {
    pub const DISCOVER: Self = Self(1);
    pub const OFFER: Self = Self(2);
    pub const REQUEST: Self = Self(3);
    pub const DECLINE: Self = Self(4);
    pub const ACK: Self = Self(5);
    pub const NAK: Self = Self(6);
    pub const RELEASE: Self = Self(7);
    pub const INFORM: Self = Self(8);

    /// Suricata's `dhcp_type` name; `unknown` for other values.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "discover",
            2 => "offer",
            3 => "request",
            4 => "decline",
            5 => "ack",
            6 => "nak",
            7 => "release",
            8 => "inform",
            _ => "unknown",
        }
    }

    /// Sent by a server (OFFER, ACK, NAK).
    pub fn is_server_reply(self) -> bool {
        matches!(self, Self::OFFER | Self::ACK | Self::NAK)
    }
}

/// BOOTP op code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// BOOTREQUEST (1), from a client.
    Request,
    /// BOOTREPLY (2), from a server.
    Reply,
}

/// Why a message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpError {
    /// Shorter than the fixed BOOTP header.
    Truncated,
    /// op is neither BOOTREQUEST nor BOOTREPLY.
    BadOp,
    /// No DHCP magic cookie (plain BOOTP).
    NoMagicCookie,
}

impl DhcpError {
    /// snake_case reason for drop counters.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Truncated => "dhcp_truncated",
            Self::BadOp => "dhcp_bad_op",
            Self::NoMagicCookie => "dhcp_no_magic_cookie",
        }
    }
}

impl From<Truncated> for DhcpError {
    fn from(_: Truncated) -> Self {
        Self::Truncated
    }
}

/// Option 61: the type byte (1 = Ethernet, 255 = RFC 4361 IAID+DUID) and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId {
    /// The whole option value, type byte first (Suricata's `client_id`).
    pub bytes: Vec<u8>,
}

impl ClientId {
    /// The type byte.
    pub fn kind(&self) -> Option<u8> {
        self.bytes.first().copied()
    }
}

/// Option 81 (RFC 4702).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFqdn {
    /// Flags (S, O, E, N).
    pub flags: u8,
    /// The domain name, as text (wire labels when flag E is set, ASCII otherwise).
    pub name: String,
}

/// Option 82 (RFC 3046) sub-options Palisade reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayAgentInfo {
    /// Sub-option 1.
    pub circuit_id: Option<Vec<u8>>,
    /// Sub-option 2.
    pub remote_id: Option<Vec<u8>>,
}

/// A parsed DHCPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub op: Op,
    /// Hardware type (1 = Ethernet).
    pub htype: u8,
    /// Hardware address length.
    pub hlen: u8,
    pub hops: u8,
    /// Transaction id.
    pub xid: u32,
    pub secs: u16,
    /// Bit 15: broadcast.
    pub flags: u16,
    /// Client address (ciaddr).
    pub client_ip: Ipv4Addr,
    /// Address assigned by the server (yiaddr).
    pub assigned_ip: Ipv4Addr,
    /// Next server (siaddr).
    pub next_server_ip: Ipv4Addr,
    /// Relay agent (giaddr).
    pub relay_ip: Ipv4Addr,
    /// The client hardware address field, all 16 bytes.
    pub chaddr: [u8; 16],
    /// First 6 bytes of chaddr (the MAC when htype is Ethernet).
    pub client_mac: [u8; 6],
    /// Codes of the options field, in order (pad and end left out).
    pub options: Vec<OptionCode>,
    /// Codes read from `file` and `sname` because of option 52, in order.
    pub overload_options: Vec<OptionCode>,
    /// Option 52 (1 = file, 2 = sname, 3 = both).
    pub overload: Option<u8>,
    /// Option 53.
    pub message_type: Option<MessageType>,
    /// Option 12, as sent (a trailing NUL is kept, as Suricata reports it).
    pub hostname: Option<String>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 51, seconds.
    pub lease_time: Option<u32>,
    /// Option 58, seconds.
    pub renewal_time: Option<u32>,
    /// Option 59, seconds.
    pub rebinding_time: Option<u32>,
    /// Option 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 3 (at most 16).
    pub routers: Vec<Ipv4Addr>,
    /// Option 6 (at most 16).
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 55, in request order.
    pub params: Vec<u8>,
    /// Option 57.
    pub max_message_size: Option<u16>,
    /// Option 60.
    pub vendor_class: Option<String>,
    /// Option 61.
    pub client_id: Option<ClientId>,
    /// Option 81.
    pub client_fqdn: Option<ClientFqdn>,
    /// Option 82.
    pub relay_agent: Option<RelayAgentInfo>,
    /// Options that were cut short or had a value of the wrong size (skipped).
    pub malformed_options: u32,
    /// True when an options area ended without an end option (truncated capture).
    pub options_truncated: bool,
}

fn ipv4(c: &mut Cursor<'_>) -> Result<Ipv4Addr, Truncated> {
    c.array::<4>().map(Ipv4Addr::from)
}

/// Text of an option value (invalid UTF-8 replaced).
fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// Reads a fixed-size value that must fill the option exactly.
fn exact<const N: usize>(value: &[u8]) -> Option<[u8; N]> {
    value.try_into().ok()
}

fn addresses(value: &[u8]) -> Option<Vec<Ipv4Addr>> {
    if value.is_empty() || !value.len().is_multiple_of(4) {
        return None;
    }
    Some(
        value
            .chunks_exact(4)
            .take(MAX_ADDRESSES)
            .filter_map(exact::<4>)
            .map(Ipv4Addr::from)
            .collect(),
    )
}

fn relay_agent(value: &[u8]) -> Option<RelayAgentInfo> {
    let mut c = Cursor::new(value);
    let mut info = RelayAgentInfo::default();
    for _ in 0..MAX_OPTIONS {
        if c.remaining() == 0 {
            return Some(info);
        }
        let code = c.u8().ok()?;
        let v = c.prefixed_u8().ok()?.rest().to_vec();
        match code {
            1 => info.circuit_id = Some(v),
            2 => info.remote_id = Some(v),
            _ => {}
        }
    }
    Some(info)
}

fn client_fqdn(value: &[u8]) -> Option<ClientFqdn> {
    let mut c = Cursor::new(value);
    let flags = c.u8().ok()?;
    c.skip(2).ok()?; // RCODE1, RCODE2 (deprecated)
    let rest = c.rest();
    let name = if flags & 0x04 != 0 {
        // Canonical wire encoding: labels, dotted.
        let mut w = Cursor::new(rest);
        let mut labels = Vec::new();
        for _ in 0..128 {
            let Ok(mut label) = w.prefixed_u8() else {
                break;
            };
            let bytes = label.rest();
            if bytes.is_empty() {
                break;
            }
            labels.push(String::from_utf8_lossy(bytes).into_owned());
        }
        labels.join(".")
    } else {
        text(rest)
    };
    Some(ClientFqdn { flags, name })
}

impl Message {
    /// Applies one option; `false` when its value is malformed.
    fn apply(&mut self, code: OptionCode, value: &[u8]) -> bool {
        match code {
            OptionCode::MESSAGE_TYPE => {
                let Some([t]) = exact::<1>(value) else {
                    return false;
                };
                self.message_type = Some(MessageType(t));
            }
            OptionCode::HOST_NAME => self.hostname = Some(text(value)),
            OptionCode::DOMAIN_NAME => self.domain = Some(text(value)),
            OptionCode::VENDOR_CLASS => self.vendor_class = Some(text(value)),
            OptionCode::PARAMETER_LIST => self.params = value.to_vec(),
            OptionCode::CLIENT_ID => {
                if value.is_empty() {
                    return false;
                }
                self.client_id = Some(ClientId {
                    bytes: value.to_vec(),
                });
            }
            OptionCode::REQUESTED_IP | OptionCode::SERVER_ID | OptionCode::SUBNET_MASK => {
                let Some(a) = exact::<4>(value).map(Ipv4Addr::from) else {
                    return false;
                };
                match code {
                    OptionCode::REQUESTED_IP => self.requested_ip = Some(a),
                    OptionCode::SERVER_ID => self.server_id = Some(a),
                    _ => self.subnet_mask = Some(a),
                }
            }
            OptionCode::LEASE_TIME | OptionCode::RENEWAL_TIME | OptionCode::REBINDING_TIME => {
                let Some(t) = exact::<4>(value).map(u32::from_be_bytes) else {
                    return false;
                };
                match code {
                    OptionCode::LEASE_TIME => self.lease_time = Some(t),
                    OptionCode::RENEWAL_TIME => self.renewal_time = Some(t),
                    _ => self.rebinding_time = Some(t),
                }
            }
            OptionCode::MAX_MESSAGE_SIZE => {
                let Some(s) = exact::<2>(value).map(u16::from_be_bytes) else {
                    return false;
                };
                self.max_message_size = Some(s);
            }
            OptionCode::OVERLOAD => {
                let Some([o @ 1..=3]) = exact::<1>(value) else {
                    return false;
                };
                self.overload = Some(o);
            }
            OptionCode::ROUTER | OptionCode::DNS_SERVER => {
                let Some(list) = addresses(value) else {
                    return false;
                };
                if code == OptionCode::ROUTER {
                    self.routers = list;
                } else {
                    self.dns_servers = list;
                }
            }
            OptionCode::CLIENT_FQDN => match client_fqdn(value) {
                Some(f) => self.client_fqdn = Some(f),
                None => return false,
            },
            OptionCode::RELAY_AGENT_INFO => match relay_agent(value) {
                Some(r) => self.relay_agent = Some(r),
                None => return false,
            },
            _ => {}
        }
        true
    }

    /// Reads one options area; returns whether it ended with an end option (or, for
    /// `sname`/`file`, ran out cleanly).
    fn read_options(&mut self, area: &[u8], overloaded: bool) {
        let mut c = Cursor::new(area);
        for _ in 0..MAX_OPTIONS {
            let Ok(code) = c.u8().map(OptionCode) else {
                // The options field must end with an end option; the overloaded fields
                // may simply be full.
                if !overloaded {
                    self.options_truncated = true;
                }
                return;
            };
            match code {
                OptionCode::PAD => continue,
                OptionCode::END => return,
                _ => {}
            }
            let Ok(value) = c.u8().and_then(|len| c.take(usize::from(len))) else {
                self.malformed_options += 1;
                if !overloaded {
                    self.options_truncated = true;
                }
                return;
            };
            if overloaded {
                self.overload_options.push(code);
            } else {
                self.options.push(code);
            }
            if !self.apply(code, value) {
                self.malformed_options += 1;
            }
        }
    }
}

/// Parses a DHCP message (the UDP payload).
pub fn parse(bytes: &[u8]) -> Result<Message, DhcpError> {
    let mut c = Cursor::new(bytes);
    let op = match c.u8()? {
        1 => Op::Request,
        2 => Op::Reply,
        _ => return Err(DhcpError::BadOp),
    };
    let htype = c.u8()?;
    let hlen = c.u8()?;
    let hops = c.u8()?;
    let xid = c.u32()?;
    let secs = c.u16()?;
    let flags = c.u16()?;
    let client_ip = ipv4(&mut c)?;
    let assigned_ip = ipv4(&mut c)?;
    let next_server_ip = ipv4(&mut c)?;
    let relay_ip = ipv4(&mut c)?;
    let chaddr = c.array::<16>()?;
    let sname = c.take(64)?;
    let file = c.take(128)?;
    debug_assert_eq!(bytes.len() - c.remaining(), FIXED_LEN);
    if c.u32()? != MAGIC_COOKIE {
        return Err(DhcpError::NoMagicCookie);
    }
    let mut client_mac = [0u8; 6];
    for (d, s) in client_mac.iter_mut().zip(chaddr) {
        *d = s;
    }
    let mut msg = Message {
        op,
        htype,
        hlen,
        hops,
        xid,
        secs,
        flags,
        client_ip,
        assigned_ip,
        next_server_ip,
        relay_ip,
        chaddr,
        client_mac,
        options: Vec::new(),
        overload_options: Vec::new(),
        overload: None,
        message_type: None,
        hostname: None,
        requested_ip: None,
        server_id: None,
        lease_time: None,
        renewal_time: None,
        rebinding_time: None,
        subnet_mask: None,
        routers: Vec::new(),
        dns_servers: Vec::new(),
        domain: None,
        params: Vec::new(),
        max_message_size: None,
        vendor_class: None,
        client_id: None,
        client_fqdn: None,
        relay_agent: None,
        malformed_options: 0,
        options_truncated: false,
    };
    msg.read_options(c.rest(), false);
    // RFC 2131 4.1: file first, then sname.
    match msg.overload {
        Some(1) => msg.read_options(file, true),
        Some(2) => msg.read_options(sname, true),
        Some(3) => {
            msg.read_options(file, true);
            msg.read_options(sname, true);
        }
        _ => {}
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discover() -> Vec<u8> {
        let mut m = vec![1, 1, 6, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0x80, 0];
        m.extend([0u8; 16]); // ciaddr..giaddr
        m.extend([0x02, 0, 0, 0, 0, 1]);
        m.extend([0u8; 10 + 64 + 128]);
        m.extend(MAGIC_COOKIE.to_be_bytes());
        m.extend([
            53, 1, 1, 12, 4, b'h', b'o', b's', b't', 50, 4, 198, 18, 0, 9, 55, 2, 1, 3, 61, 7, 1,
            2, 0, 0, 0, 0, 1, 60, 3, b'a', b'b', b'c', 255,
        ]);
        m
    }

    #[test]
    fn parses_discover() {
        let m = parse(&discover()).expect("valid");
        assert_eq!(m.op, Op::Request);
        assert_eq!(m.xid, 0x1234_5678);
        assert_eq!(m.flags, 0x8000);
        assert_eq!(m.message_type, Some(MessageType::DISCOVER));
        assert_eq!(m.hostname.as_deref(), Some("host"));
        assert_eq!(m.requested_ip, Some(Ipv4Addr::new(198, 18, 0, 9)));
        assert_eq!(m.client_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(m.params, vec![1, 3]);
        assert_eq!(m.vendor_class.as_deref(), Some("abc"));
        assert_eq!(
            m.client_id.as_ref().map(|c| c.bytes.clone()),
            Some(vec![1, 2, 0, 0, 0, 0, 1])
        );
        let codes: Vec<u8> = m.options.iter().map(|o| o.0).collect();
        assert_eq!(codes, vec![53, 12, 50, 55, 61, 60]);
        assert!(!m.options_truncated);
        assert_eq!(m.malformed_options, 0);
    }

    #[test]
    fn every_truncation_is_an_error_or_flag_never_a_panic() {
        let full = discover();
        for n in 0..full.len() {
            match parse(full.get(..n).unwrap_or_default()) {
                Ok(m) => assert!(m.options_truncated || n == full.len()),
                Err(e) => assert!(matches!(e, DhcpError::Truncated)),
            }
        }
    }

    #[test]
    fn rejects_bad_op_and_bootp() {
        let mut m = discover();
        if let Some(op) = m.first_mut() {
            *op = 9;
        }
        assert_eq!(parse(&m), Err(DhcpError::BadOp));
        let mut m = discover();
        if let Some(b) = m.get_mut(236) {
            *b = 0;
        }
        assert_eq!(parse(&m), Err(DhcpError::NoMagicCookie));
    }

    #[test]
    fn malformed_options_are_counted_not_fatal() {
        let mut m = discover();
        m.pop(); // end
        // message type of length 2, lease time of length 3, routers of length 5
        m.extend([53, 2, 5, 5, 51, 3, 0, 0, 1, 3, 5, 1, 2, 3, 4, 5, 255]);
        let p = parse(&m).expect("valid");
        assert_eq!(p.malformed_options, 3);
        assert_eq!(p.message_type, Some(MessageType::DISCOVER)); // the first one stays
        assert_eq!(p.lease_time, None);
        assert!(p.routers.is_empty());
    }

    #[test]
    fn overloaded_fields_are_read_file_then_sname() {
        let mut m = discover();
        // sname at 44, file at 108
        let sname_opts = [3u8, 4, 10, 0, 0, 2, 255];
        let file_opts = [6u8, 4, 10, 0, 0, 3, 255];
        m.splice(44..44 + sname_opts.len(), sname_opts);
        m.splice(108..108 + file_opts.len(), file_opts);
        m.pop();
        m.extend([52, 1, 3, 255]);
        let p = parse(&m).expect("valid");
        assert_eq!(p.overload, Some(3));
        assert_eq!(
            p.overload_options,
            vec![OptionCode::DNS_SERVER, OptionCode::ROUTER]
        );
        assert_eq!(p.routers, vec![Ipv4Addr::new(10, 0, 0, 2)]);
        assert_eq!(p.dns_servers, vec![Ipv4Addr::new(10, 0, 0, 3)]);
    }

    #[test]
    fn fqdn_and_relay_agent() {
        let mut m = discover();
        m.pop();
        m.extend([81, 3 + 5, 0x05, 0, 0, 1, b'a', 1, b'b', 0]);
        m.extend([82, 8, 1, 2, 0xaa, 0xbb, 2, 2, 0xcc, 0xdd, 255]);
        let p = parse(&m).expect("valid");
        assert_eq!(
            p.client_fqdn,
            Some(ClientFqdn {
                flags: 5,
                name: "a.b".into()
            })
        );
        let r = p.relay_agent.expect("option 82");
        assert_eq!(r.circuit_id, Some(vec![0xaa, 0xbb]));
        assert_eq!(r.remote_id, Some(vec![0xcc, 0xdd]));
    }
}
