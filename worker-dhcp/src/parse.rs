//! DHCPv4 (RFC 2131/2132) message parsing: bytes in, typed values out.

use std::net::Ipv4Addr;

use palisade_worker_runtime::cursor::{Cursor, Truncated};

/// The magic cookie that starts the options field.
const MAGIC_COOKIE: u32 = 0x6382_5363;
/// Options we read at most (a bound on hostile option lists).
const MAX_OPTIONS: usize = 255;

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

/// A parsed DHCP message (the fields Palisade reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// 1 = request, 2 = reply.
    pub op: u8,
    /// Transaction id.
    pub xid: u32,
    /// Client address (ciaddr).
    pub client_ip: Ipv4Addr,
    /// Address assigned by the server (yiaddr).
    pub assigned_ip: Ipv4Addr,
    /// Relay agent (giaddr).
    pub relay_ip: Ipv4Addr,
    /// Client hardware address (first 6 bytes of chaddr when htype is Ethernet).
    pub client_mac: [u8; 6],
    /// Option 53.
    pub message_type: Option<u8>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 51, seconds.
    pub lease_time: Option<u32>,
    /// Option 55, as sent.
    pub params: Vec<u8>,
    /// True when the option list ended early (truncated capture).
    pub options_truncated: bool,
}

/// Option 53 value names, as Suricata's `dhcp_type`.
pub fn message_type_name(t: u8) -> &'static str {
    match t {
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

fn ipv4(c: &mut Cursor<'_>) -> Result<Ipv4Addr, Truncated> {
    c.array::<4>().map(Ipv4Addr::from)
}

/// Parses a DHCP message (the UDP payload).
pub fn parse(bytes: &[u8]) -> Result<Message, DhcpError> {
    let mut c = Cursor::new(bytes);
    let op = c.u8()?;
    if op != 1 && op != 2 {
        return Err(DhcpError::BadOp);
    }
    let _htype = c.u8()?;
    let _hlen = c.u8()?;
    let _hops = c.u8()?;
    let xid = c.u32()?;
    c.skip(4)?; // secs, flags
    let client_ip = ipv4(&mut c)?;
    let assigned_ip = ipv4(&mut c)?;
    let _server_ip = ipv4(&mut c)?;
    let relay_ip = ipv4(&mut c)?;
    let chaddr = c.array::<16>()?;
    c.skip(64 + 128)?; // sname, file
    if c.u32()? != MAGIC_COOKIE {
        return Err(DhcpError::NoMagicCookie);
    }
    let mut client_mac = [0u8; 6];
    for (d, s) in client_mac.iter_mut().zip(chaddr) {
        *d = s;
    }
    let mut msg = Message {
        op,
        xid,
        client_ip,
        assigned_ip,
        relay_ip,
        client_mac,
        message_type: None,
        hostname: None,
        requested_ip: None,
        server_id: None,
        lease_time: None,
        params: Vec::new(),
        options_truncated: false,
    };
    for _ in 0..MAX_OPTIONS {
        let Ok(code) = c.u8() else {
            msg.options_truncated = true;
            break;
        };
        match code {
            0 => continue,
            255 => break,
            _ => {}
        }
        let value = match c.u8().and_then(|len| c.take(usize::from(len))) {
            Ok(v) => v,
            Err(Truncated) => {
                msg.options_truncated = true;
                break;
            }
        };
        let mut v = Cursor::new(value);
        match code {
            53 => msg.message_type = v.u8().ok(),
            12 => {
                msg.hostname = Some(
                    String::from_utf8_lossy(value)
                        .trim_end_matches('\0')
                        .to_owned(),
                )
            }
            50 => msg.requested_ip = ipv4(&mut v).ok(),
            54 => msg.server_id = ipv4(&mut v).ok(),
            51 => msg.lease_time = v.u32().ok(),
            55 => msg.params = value.to_vec(),
            _ => {}
        }
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
            53, 1, 1, 12, 4, b'h', b'o', b's', b't', 50, 4, 198, 18, 0, 9, 55, 2, 1, 3, 255,
        ]);
        m
    }

    #[test]
    fn parses_discover() {
        let m = parse(&discover()).expect("valid");
        assert_eq!(m.xid, 0x1234_5678);
        assert_eq!(m.message_type, Some(1));
        assert_eq!(m.hostname.as_deref(), Some("host"));
        assert_eq!(m.requested_ip, Some(Ipv4Addr::new(198, 18, 0, 9)));
        assert_eq!(m.client_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(m.params, vec![1, 3]);
        assert!(!m.options_truncated);
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
}
