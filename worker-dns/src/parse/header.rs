//! The fixed 12-byte header (RFC 1035 §4.1.1, RFC 2535 AD/CD bits).

use super::cursor::Cursor;
use super::error::ErrorKind;
use super::types::{Opcode, Rcode};

/// The header with its flags word split out. `flags` keeps the raw word
/// (the corpus and Suricata log it as `"0x8180"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    /// The raw 16-bit flags word, everything below is decoded from it.
    pub flags: u16,
    /// true for a response.
    pub qr: bool,
    pub opcode: Opcode,
    pub aa: bool,
    pub tc: bool,
    pub rd: bool,
    pub ra: bool,
    /// The reserved bit; must be zero, kept because scanners set it.
    pub z: bool,
    pub ad: bool,
    pub cd: bool,
    /// The header's 4 rcode bits only; see [`super::Message::rcode`].
    pub rcode: Rcode,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub const LEN: usize = 12;

    pub(crate) fn parse(cur: &mut Cursor<'_>) -> Result<Self, ErrorKind> {
        let id = cur.u16()?;
        let flags = cur.u16()?;
        let bit = |n: u16| flags & (1 << n) != 0;
        Ok(Self {
            id,
            flags,
            qr: bit(15),
            // 4 bits, so the narrowing keeps every value.
            opcode: Opcode(((flags >> 11) & 0xf) as u8),
            aa: bit(10),
            tc: bit(9),
            rd: bit(8),
            ra: bit(7),
            z: bit(6),
            ad: bit(5),
            cd: bit(4),
            rcode: Rcode(flags & 0xf),
            qdcount: cur.u16()?,
            ancount: cur.u16()?,
            nscount: cur.u16()?,
            arcount: cur.u16()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_every_flag() {
        let bytes = [0x12, 0x34, 0xff, 0xff, 0, 1, 0, 2, 0, 3, 0, 4];
        let h = Header::parse(&mut Cursor::new(&bytes)).expect("12 bytes");
        assert_eq!((h.id, h.flags), (0x1234, 0xffff));
        assert!(h.qr && h.aa && h.tc && h.rd && h.ra && h.z && h.ad && h.cd);
        assert_eq!((h.opcode, h.rcode), (Opcode(15), Rcode(15)));
        assert_eq!((h.qdcount, h.ancount, h.nscount, h.arcount), (1, 2, 3, 4));

        let bytes = [0, 0, 0x28, 0x05, 0, 0, 0, 0, 0, 0, 0, 0];
        let h = Header::parse(&mut Cursor::new(&bytes)).expect("12 bytes");
        assert!(!h.qr && !h.aa && !h.tc && !h.rd && !h.ra && !h.z && !h.ad && !h.cd);
        assert_eq!((h.opcode, h.rcode), (Opcode::UPDATE, Rcode::REFUSED));
    }

    #[test]
    fn short_header_is_truncated() {
        assert_eq!(
            Header::parse(&mut Cursor::new(&[0; 11])),
            Err(ErrorKind::Truncated)
        );
    }
}
