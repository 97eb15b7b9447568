//! DHCPv6 (RFC 8415) message parsing: bytes in, typed values out.
//!
//! Client/server messages (type, 24-bit transaction id, options) and relay messages
//! (RELAY-FORW/RELAY-REPL, whose Relay Message option carries the relayed message, at most
//! [`MAX_RELAY_DEPTH`] deep). Options are read through one checked cursor; a malformed
//! option is counted in [`Message6::malformed_options`] and skipped, never fatal.

use std::net::Ipv6Addr;

use palisade_worker_runtime::cursor::{Cursor, Truncated};

/// Options read at most per option list.
const MAX_OPTIONS: usize = 128;
/// IA_NA / IA_PD (and their addresses) kept at most.
const MAX_IA: usize = 8;
/// Relay messages unwrapped at most (RFC 8415 allows 32 hops; Palisade reports the client
/// message when it is within this depth).
pub const MAX_RELAY_DEPTH: usize = 8;

/// DHCPv6 message type; unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType6(pub u8);

impl MessageType6 {
    pub const SOLICIT: Self = Self(1);
    pub const ADVERTISE: Self = Self(2);
    pub const REQUEST: Self = Self(3);
    pub const CONFIRM: Self = Self(4);
    pub const RENEW: Self = Self(5);
    pub const REBIND: Self = Self(6);
    pub const REPLY: Self = Self(7);
    pub const RELEASE: Self = Self(8);
    pub const DECLINE: Self = Self(9);
    pub const RECONFIGURE: Self = Self(10);
    pub const INFORMATION_REQUEST: Self = Self(11);
    pub const RELAY_FORW: Self = Self(12);
    pub const RELAY_REPL: Self = Self(13);

    /// Lower-case name (RFC 8415 section 7.3), `unknown` for other values.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "solicit",
            2 => "advertise",
            3 => "request",
            4 => "confirm",
            5 => "renew",
            6 => "rebind",
            7 => "reply",
            8 => "release",
            9 => "decline",
            10 => "reconfigure",
            11 => "information_request",
            12 => "relay_forw",
            13 => "relay_repl",
            _ => "unknown",
        }
    }

    /// Sent by a server (ADVERTISE, REPLY, RECONFIGURE).
    pub fn is_server_reply(self) -> bool {
        matches!(self, Self::ADVERTISE | Self::REPLY | Self::RECONFIGURE)
    }
}

/// A DHCPv6 option code; unknown codes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OptionCode6(pub u16);

impl OptionCode6 {
    pub const CLIENT_ID: Self = Self(1);
    pub const SERVER_ID: Self = Self(2);
    pub const IA_NA: Self = Self(3);
    pub const IA_TA: Self = Self(4);
    pub const IA_ADDR: Self = Self(5);
    pub const ORO: Self = Self(6);
    pub const ELAPSED_TIME: Self = Self(8);
    pub const RELAY_MSG: Self = Self(9);
    pub const STATUS_CODE: Self = Self(13);
    pub const RAPID_COMMIT: Self = Self(14);
    pub const USER_CLASS: Self = Self(15);
    pub const VENDOR_CLASS: Self = Self(16);
    pub const DNS_SERVERS: Self = Self(23);
    pub const IA_PD: Self = Self(25);
    pub const IA_PREFIX: Self = Self(26);
    pub const CLIENT_FQDN: Self = Self(39);
}

/// Why a message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dhcp6Error {
    /// Shorter than the fixed header.
    Truncated,
    /// Relay messages nested deeper than [`MAX_RELAY_DEPTH`], or a relay without a
    /// Relay Message option.
    BadRelay,
}

impl Dhcp6Error {
    /// snake_case reason for drop counters.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Truncated => "dhcp6_truncated",
            Self::BadRelay => "dhcp6_bad_relay",
        }
    }
}

impl From<Truncated> for Dhcp6Error {
    fn from(_: Truncated) -> Self {
        Self::Truncated
    }
}

/// A DUID (RFC 8415 section 11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duid {
    /// The whole DUID as sent.
    pub bytes: Vec<u8>,
}

impl Duid {
    /// DUID type (1 LLT, 2 EN, 3 LL, 4 UUID).
    pub fn kind(&self) -> Option<u16> {
        Cursor::new(&self.bytes).u16().ok()
    }

    /// The link-layer address of a DUID-LLT or DUID-LL of hardware type Ethernet.
    pub fn mac(&self) -> Option<[u8; 6]> {
        let mut c = Cursor::new(&self.bytes);
        let kind = c.u16().ok()?;
        let hw = c.u16().ok()?;
        if hw != 1 {
            return None;
        }
        match kind {
            1 => c.skip(4).ok()?,
            3 => {}
            _ => return None,
        }
        (c.remaining() == 6).then(|| c.array::<6>().ok()).flatten()
    }
}

/// An address of an IA_NA (option 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaAddress {
    pub address: Ipv6Addr,
    pub preferred: u32,
    pub valid: u32,
}

/// A prefix of an IA_PD (option 26).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaPrefix {
    pub prefix: Ipv6Addr,
    pub length: u8,
    pub preferred: u32,
    pub valid: u32,
}

/// An IA_NA or IA_PD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ia {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    /// IA_NA addresses (at most 8).
    pub addresses: Vec<IaAddress>,
    /// IA_PD prefixes (at most 8).
    pub prefixes: Vec<IaPrefix>,
}

/// A parsed DHCPv6 message (the client/server message inside any relay messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message6 {
    pub message_type: MessageType6,
    /// 24-bit transaction id.
    pub xid: u32,
    /// Relay messages unwrapped to reach this one.
    pub relay_hops: u8,
    /// Peer address of the innermost relay (the client's address), when relayed.
    pub relay_peer: Option<Ipv6Addr>,
    /// Option codes, in order.
    pub options: Vec<OptionCode6>,
    pub client_id: Option<Duid>,
    pub server_id: Option<Duid>,
    pub ia_na: Vec<Ia>,
    pub ia_pd: Vec<Ia>,
    /// Option Request Option, in order.
    pub oro: Vec<u16>,
    /// Option 16: enterprise number and the first class datum.
    pub vendor_class: Option<(u32, String)>,
    /// Option 15: the first class datum.
    pub user_class: Option<String>,
    /// Option 39, as text.
    pub fqdn: Option<String>,
    /// Option 13 status code.
    pub status: Option<u16>,
    pub rapid_commit: bool,
    pub elapsed_time: Option<u16>,
    /// Option 23.
    pub dns_servers: Vec<Ipv6Addr>,
    /// Options cut short or with a value of the wrong size (skipped).
    pub malformed_options: u32,
}

fn ipv6(c: &mut Cursor<'_>) -> Result<Ipv6Addr, Truncated> {
    c.array::<16>().map(Ipv6Addr::from)
}

/// The first datum of a class option (a list of u16-length-prefixed data).
fn first_datum(c: &mut Cursor<'_>) -> Option<String> {
    let mut d = c.prefixed_u16().ok()?;
    Some(String::from_utf8_lossy(d.rest()).into_owned())
}

fn fqdn(value: &[u8]) -> Option<String> {
    let mut c = Cursor::new(value);
    c.u8().ok()?; // flags
    let mut labels = Vec::new();
    for _ in 0..128 {
        let Ok(mut label) = c.prefixed_u8() else {
            break;
        };
        let bytes = label.rest();
        if bytes.is_empty() {
            break;
        }
        labels.push(String::from_utf8_lossy(bytes).into_owned());
    }
    Some(labels.join("."))
}

/// Reads IA_NA (`pd` false) or IA_PD (`pd` true).
fn ia(value: &[u8], pd: bool) -> Option<Ia> {
    let mut c = Cursor::new(value);
    let mut ia = Ia {
        iaid: c.u32().ok()?,
        t1: c.u32().ok()?,
        t2: c.u32().ok()?,
        addresses: Vec::new(),
        prefixes: Vec::new(),
    };
    for _ in 0..MAX_OPTIONS {
        if c.remaining() == 0 {
            break;
        }
        let code = c.u16().ok()?;
        let mut v = c.prefixed_u16().ok()?;
        match (code, pd) {
            (5, false) if ia.addresses.len() < MAX_IA => ia.addresses.push(IaAddress {
                address: ipv6(&mut v).ok()?,
                preferred: v.u32().ok()?,
                valid: v.u32().ok()?,
            }),
            (26, true) if ia.prefixes.len() < MAX_IA => {
                let preferred = v.u32().ok()?;
                let valid = v.u32().ok()?;
                let length = v.u8().ok()?;
                ia.prefixes.push(IaPrefix {
                    prefix: ipv6(&mut v).ok()?,
                    length,
                    preferred,
                    valid,
                });
            }
            _ => {}
        }
    }
    Some(ia)
}

impl Message6 {
    fn new(message_type: MessageType6, xid: u32) -> Self {
        Self {
            message_type,
            xid,
            relay_hops: 0,
            relay_peer: None,
            options: Vec::new(),
            client_id: None,
            server_id: None,
            ia_na: Vec::new(),
            ia_pd: Vec::new(),
            oro: Vec::new(),
            vendor_class: None,
            user_class: None,
            fqdn: None,
            status: None,
            rapid_commit: false,
            elapsed_time: None,
            dns_servers: Vec::new(),
            malformed_options: 0,
        }
    }

    /// Applies one option; `false` when its value is malformed.
    fn apply(&mut self, code: OptionCode6, value: &[u8]) -> bool {
        let mut v = Cursor::new(value);
        match code {
            OptionCode6::CLIENT_ID | OptionCode6::SERVER_ID => {
                if value.len() < 2 {
                    return false;
                }
                let duid = Some(Duid {
                    bytes: value.to_vec(),
                });
                if code == OptionCode6::CLIENT_ID {
                    self.client_id = duid;
                } else {
                    self.server_id = duid;
                }
            }
            OptionCode6::IA_NA | OptionCode6::IA_PD => {
                let pd = code == OptionCode6::IA_PD;
                let Some(ia) = ia(value, pd) else {
                    return false;
                };
                let list = if pd { &mut self.ia_pd } else { &mut self.ia_na };
                if list.len() < MAX_IA {
                    list.push(ia);
                }
            }
            OptionCode6::ORO => {
                if !value.len().is_multiple_of(2) {
                    return false;
                }
                self.oro = value
                    .chunks_exact(2)
                    .filter_map(|p| p.try_into().ok().map(u16::from_be_bytes))
                    .collect();
            }
            OptionCode6::ELAPSED_TIME => match v.u16() {
                Ok(t) if v.remaining() == 0 => self.elapsed_time = Some(t),
                _ => return false,
            },
            OptionCode6::STATUS_CODE => match v.u16() {
                Ok(s) => self.status = Some(s),
                Err(_) => return false,
            },
            OptionCode6::RAPID_COMMIT => self.rapid_commit = true,
            OptionCode6::USER_CLASS => match first_datum(&mut v) {
                Some(d) => self.user_class = Some(d),
                None => return false,
            },
            OptionCode6::VENDOR_CLASS => {
                let Ok(enterprise) = v.u32() else {
                    return false;
                };
                let datum = first_datum(&mut v).unwrap_or_default();
                self.vendor_class = Some((enterprise, datum));
            }
            OptionCode6::CLIENT_FQDN => match fqdn(value) {
                Some(f) => self.fqdn = Some(f),
                None => return false,
            },
            OptionCode6::DNS_SERVERS => {
                if value.is_empty() || !value.len().is_multiple_of(16) {
                    return false;
                }
                self.dns_servers = value
                    .chunks_exact(16)
                    .take(MAX_IA)
                    .filter_map(|a| <[u8; 16]>::try_from(a).ok().map(Ipv6Addr::from))
                    .collect();
            }
            _ => {}
        }
        true
    }
}

/// Reads an option list: calls `each(code, value)`; counts options cut short.
fn options<'a>(c: &mut Cursor<'a>, mut each: impl FnMut(OptionCode6, &'a [u8])) -> u32 {
    for _ in 0..MAX_OPTIONS {
        if c.remaining() == 0 {
            return 0;
        }
        let Ok(code) = c.u16() else { return 1 };
        let Ok(mut value) = c.prefixed_u16() else {
            return 1;
        };
        each(OptionCode6(code), value.rest());
    }
    0
}

/// Parses a DHCPv6 message (the UDP payload).
pub fn parse(bytes: &[u8]) -> Result<Message6, Dhcp6Error> {
    let mut bytes = bytes;
    let mut hops = 0u8;
    let mut relay_peer = None;
    for _ in 0..=MAX_RELAY_DEPTH {
        let mut c = Cursor::new(bytes);
        let t = MessageType6(c.u8()?);
        if t == MessageType6::RELAY_FORW || t == MessageType6::RELAY_REPL {
            c.skip(1 + 16)?; // hop count, link address
            relay_peer = Some(ipv6(&mut c)?);
            let mut inner = None;
            options(&mut c, |code, v| {
                if code == OptionCode6::RELAY_MSG {
                    inner = Some(v);
                }
            });
            bytes = inner.ok_or(Dhcp6Error::BadRelay)?;
            hops = hops.saturating_add(1);
            continue;
        }
        let xid = c.u24()?;
        let mut m = Message6::new(t, xid);
        m.relay_hops = hops;
        m.relay_peer = relay_peer;
        let mut seen = Vec::new();
        let cut = options(&mut c, |code, v| seen.push((code, v)));
        m.malformed_options = cut;
        for (code, v) in seen {
            m.options.push(code);
            if !m.apply(code, v) {
                m.malformed_options += 1;
            }
        }
        return Ok(m);
    }
    Err(Dhcp6Error::BadRelay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(code: u16, value: &[u8]) -> Vec<u8> {
        let mut o = code.to_be_bytes().to_vec();
        o.extend((value.len() as u16).to_be_bytes());
        o.extend(value);
        o
    }

    fn solicit() -> Vec<u8> {
        let mut m = vec![1, 0xab, 0xcd, 0xef];
        // DUID-LLT, Ethernet
        m.extend(opt(1, &[0, 1, 0, 1, 0, 0, 0, 9, 2, 0, 0, 0, 0, 7]));
        m.extend(opt(6, &[0, 23, 0, 24]));
        m.extend(opt(8, &[0, 0]));
        let mut ia = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut addr = vec![0x20, 1, 0xd, 0xb8];
        addr.extend([0u8; 11]);
        addr.push(5);
        addr.extend([0, 0, 0x0e, 0x10, 0, 0, 0x1c, 0x20]);
        ia.extend(opt(5, &addr));
        m.extend(opt(3, &ia));
        m.extend(opt(16, &[0, 0, 0x01, 0x37, 0, 3, b'a', b'b', b'c']));
        m
    }

    #[test]
    fn parses_solicit() {
        let m = parse(&solicit()).expect("valid");
        assert_eq!(m.message_type, MessageType6::SOLICIT);
        assert_eq!(m.xid, 0xabcdef);
        assert_eq!(
            m.client_id.as_ref().and_then(Duid::mac),
            Some([2, 0, 0, 0, 0, 7])
        );
        assert_eq!(m.oro, vec![23, 24]);
        assert_eq!(m.elapsed_time, Some(0));
        let ia = m.ia_na.first().expect("IA_NA");
        assert_eq!(ia.iaid, 1);
        assert_eq!(
            ia.addresses.first().map(|a| a.address),
            Some("2001:db8::5".parse().expect("address"))
        );
        assert_eq!(m.vendor_class, Some((311, "abc".to_owned())));
        assert_eq!(m.malformed_options, 0);
    }

    #[test]
    fn relayed_message_is_unwrapped() {
        let mut r = vec![12, 0];
        r.extend([0u8; 16]);
        let mut peer = [0u8; 16];
        peer[0] = 0xfe;
        peer[1] = 0x80;
        peer[15] = 1;
        r.extend(peer);
        r.extend(opt(9, &solicit()));
        let m = parse(&r).expect("valid");
        assert_eq!(m.relay_hops, 1);
        assert_eq!(m.relay_peer, Some(Ipv6Addr::from(peer)));
        assert_eq!(m.message_type, MessageType6::SOLICIT);
    }

    #[test]
    fn every_truncation_is_an_error_or_counted_never_a_panic() {
        let full = solicit();
        for n in 0..full.len() {
            let _ = parse(full.get(..n).unwrap_or_default());
        }
        assert_eq!(parse(&[1, 2]), Err(Dhcp6Error::Truncated));
        assert_eq!(parse(&[12, 0]), Err(Dhcp6Error::Truncated));
    }

    #[test]
    fn bad_values_are_counted() {
        let mut m = vec![7, 0, 0, 1];
        m.extend(opt(8, &[0, 0, 0]));
        m.extend(opt(6, &[0]));
        m.extend(opt(1, &[0]));
        let p = parse(&m).expect("valid");
        assert_eq!(p.malformed_options, 3);
        assert_eq!(p.message_type, MessageType6::REPLY);
    }
}
