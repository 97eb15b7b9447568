//! EDNS(0): the OPT pseudo-record (RFC 6891 §6.1).

use super::cursor::Cursor;
use super::error::ErrorKind;
use super::types::{Class, wire_names};

/// EDNS option code (IANA "DNS EDNS0 Option Codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdnsOptionCode(pub u16);

wire_names!(EdnsOptionCode(u16), unknown = "OPTION", {
    LLQ = 1 => "LLQ",
    UL = 2 => "UL",
    NSID = 3 => "NSID",
    DAU = 5 => "DAU",
    DHU = 6 => "DHU",
    N3U = 7 => "N3U",
    CLIENT_SUBNET = 8 => "CLIENT-SUBNET",
    EXPIRE = 9 => "EXPIRE",
    COOKIE = 10 => "COOKIE",
    TCP_KEEPALIVE = 11 => "TCP-KEEPALIVE",
    PADDING = 12 => "PADDING",
    CHAIN = 13 => "CHAIN",
    KEY_TAG = 14 => "KEY-TAG",
    EDE = 15 => "EDE",
    CLIENT_TAG = 16 => "CLIENT-TAG",
    SERVER_TAG = 17 => "SERVER-TAG",
    REPORT_CHANNEL = 18 => "REPORT-CHANNEL",
    ZONEVERSION = 19 => "ZONEVERSION",
});

/// One option, its data kept raw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdnsOption {
    pub code: EdnsOptionCode,
    pub data: Vec<u8>,
}

/// The OPT record decoded: its class and TTL fields carry these values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size (the record's class field).
    pub udp_payload_size: u16,
    /// Upper 8 bits of the 12-bit rcode (TTL bits 31..24).
    pub extended_rcode: u8,
    pub version: u8,
    /// The DO bit: DNSSEC records wanted.
    pub dnssec_ok: bool,
    /// The 15 flag bits after DO, reserved and normally zero.
    pub z: u16,
    pub options: Vec<EdnsOption>,
}

impl Edns {
    /// Decodes the rdata; `class` and `ttl` are the record's fields.
    pub(crate) fn parse(class: Class, ttl: u32, cur: &mut Cursor<'_>) -> Result<Self, ErrorKind> {
        let [extended_rcode, version, flags_hi, flags_lo] = ttl.to_be_bytes();
        let flags = u16::from_be_bytes([flags_hi, flags_lo]);
        let mut options = Vec::new();
        // Each option takes at least 4 bytes of the window, so this ends.
        while !cur.is_empty() {
            let code = EdnsOptionCode(cur.u16()?);
            let len = cur.u16()?;
            let data = cur.take(usize::from(len))?.to_vec();
            options.push(EdnsOption { code, data });
        }
        Ok(Self {
            udp_payload_size: class.0,
            extended_rcode,
            version,
            dnssec_ok: flags & 0x8000 != 0,
            z: flags & 0x7fff,
            options,
        })
    }

    /// The rdata in wire format, as it was read.
    pub fn rdata_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for opt in &self.options {
            out.extend_from_slice(&opt.code.0.to_be_bytes());
            // Read from a u16 length, so it fits.
            out.extend_from_slice(
                &u16::try_from(opt.data.len())
                    .unwrap_or(u16::MAX)
                    .to_be_bytes(),
            );
            out.extend_from_slice(&opt.data);
        }
        out
    }
}
