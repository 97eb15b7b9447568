//! Record data, decoded by type; anything not decoded is kept raw.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::cursor::Cursor;
use super::edns::Edns;
use super::error::ErrorKind;
use super::name::Name;
use super::svcb::Svcb;
use super::text::{escape_bytes, push_char_string, push_hex};
use super::types::{Class, RrType};

/// SOA rdata (RFC 1035 §3.3.13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    pub mname: Name,
    pub rname: Name,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// SRV rdata (RFC 2782). Compressed targets are accepted, as servers send them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: Name,
}

/// CAA rdata (RFC 8659). Tag and value kept as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caa {
    pub flags: u8,
    pub tag: Vec<u8>,
    pub value: Vec<u8>,
}

impl Caa {
    /// The issuer-critical flag (bit 0, value 128).
    pub fn critical(&self) -> bool {
        self.flags & 0x80 != 0
    }
}

/// SSHFP rdata (RFC 4255).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sshfp {
    pub algorithm: u8,
    pub fp_type: u8,
    pub fingerprint: Vec<u8>,
}

impl Sshfp {
    /// The fingerprint in lower-case hex, no separators.
    pub fn fingerprint_hex(&self) -> String {
        let mut out = String::with_capacity(self.fingerprint.len() * 2);
        push_hex(&mut out, &self.fingerprint);
        out
    }
}

/// Decoded record data, one variant per decoded type (TXT and SPF share
/// one); every other type is [`Rdata::Unknown`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rdata {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name),
    Ns(Name),
    Ptr(Name),
    Dname(Name),
    Mx {
        preference: u16,
        exchange: Name,
    },
    /// TXT and SPF: the character-strings, as bytes.
    Txt(Vec<Vec<u8>>),
    Soa(Soa),
    Srv(Srv),
    Svcb(Svcb),
    Https(Svcb),
    Caa(Caa),
    Sshfp(Sshfp),
    Null(Vec<u8>),
    Opt(Edns),
    /// rdlength 0 on a record of class ANY or NONE, which RFC 2136 updates
    /// and prerequisites use for types that otherwise need data.
    Empty,
    /// Any other type: the rdata raw (the record keeps type and rdlength).
    Unknown(Vec<u8>),
}

impl Rdata {
    /// Decodes `cur`, which spans exactly the rdata. The caller checks that
    /// nothing is left.
    pub(crate) fn parse(
        rtype: RrType,
        class: Class,
        ttl: u32,
        cur: &mut Cursor<'_>,
    ) -> Result<Self, ErrorKind> {
        if cur.is_empty() && (class == Class::ANY || class == Class::NONE) && rtype != RrType::OPT {
            return Ok(Self::Empty);
        }
        Ok(match rtype {
            RrType::A => Self::A(Ipv4Addr::from(cur.array::<4>()?)),
            RrType::AAAA => Self::Aaaa(Ipv6Addr::from(cur.array::<16>()?)),
            RrType::CNAME => Self::Cname(Name::read(cur)?),
            RrType::NS => Self::Ns(Name::read(cur)?),
            RrType::PTR => Self::Ptr(Name::read(cur)?),
            RrType::DNAME => Self::Dname(Name::read(cur)?),
            RrType::MX => Self::Mx {
                preference: cur.u16()?,
                exchange: Name::read(cur)?,
            },
            RrType::TXT | RrType::SPF => {
                let mut strings = Vec::new();
                // Each string takes at least its length byte, so this ends.
                while !cur.is_empty() {
                    let len = cur.u8()?;
                    strings.push(cur.take(usize::from(len))?.to_vec());
                }
                Self::Txt(strings)
            }
            RrType::SOA => Self::Soa(Soa {
                mname: Name::read(cur)?,
                rname: Name::read(cur)?,
                serial: cur.u32()?,
                refresh: cur.u32()?,
                retry: cur.u32()?,
                expire: cur.u32()?,
                minimum: cur.u32()?,
            }),
            RrType::SRV => Self::Srv(Srv {
                priority: cur.u16()?,
                weight: cur.u16()?,
                port: cur.u16()?,
                target: Name::read(cur)?,
            }),
            RrType::SVCB => Self::Svcb(Svcb::parse(cur)?),
            RrType::HTTPS => Self::Https(Svcb::parse(cur)?),
            RrType::CAA => {
                let flags = cur.u8()?;
                let tag_len = cur.u8()?;
                let tag = cur.take(usize::from(tag_len))?.to_vec();
                Self::Caa(Caa {
                    flags,
                    tag,
                    value: cur.rest().to_vec(),
                })
            }
            RrType::SSHFP => Self::Sshfp(Sshfp {
                algorithm: cur.u8()?,
                fp_type: cur.u8()?,
                fingerprint: cur.rest().to_vec(),
            }),
            RrType::NULL => Self::Null(cur.rest().to_vec()),
            RrType::OPT => Self::Opt(Edns::parse(class, ttl, cur)?),
            _ => Self::Unknown(cur.rest().to_vec()),
        })
    }

    /// The text Suricata logs as `rdata` (and the corpus as `answers[].data`):
    ///
    /// * A: dotted quad; AAAA: RFC 5952 compressed form.
    /// * CNAME, NS, PTR, DNAME: the name. MX: the exchange only (the
    ///   preference is logged as its own field).
    /// * TXT: the strings concatenated, rendered by [`escape_bytes`];
    ///   NULL: the raw bytes, rendered the same way.
    /// * SOA: `mname rname serial refresh retry expire minimum`.
    /// * SRV: `priority weight port target`.
    /// * SVCB/HTTPS: RFC 9460 presentation (`1 . alpn="h2" port=443`).
    /// * CAA: `flags tag "value"`; SSHFP: `algorithm type hex`.
    /// * OPT and unknown types: RFC 3597 `\# length hex`; `Empty`: `""`.
    pub fn to_presentation(&self) -> String {
        match self {
            Self::A(addr) => addr.to_string(),
            Self::Aaaa(addr) => addr.to_string(),
            Self::Cname(name) | Self::Ns(name) | Self::Ptr(name) | Self::Dname(name) => {
                name.to_string()
            }
            Self::Mx { exchange, .. } => exchange.to_string(),
            Self::Txt(strings) => escape_bytes(&strings.concat()),
            Self::Soa(soa) => format!(
                "{} {} {} {} {} {} {}",
                soa.mname, soa.rname, soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum
            ),
            Self::Srv(srv) => format!(
                "{} {} {} {}",
                srv.priority, srv.weight, srv.port, srv.target
            ),
            Self::Svcb(svcb) | Self::Https(svcb) => svcb.to_presentation(),
            Self::Caa(caa) => {
                let mut out = format!("{} ", caa.flags);
                push_char_string(&mut out, &caa.tag, b" ");
                out.push_str(" \"");
                push_char_string(&mut out, &caa.value, b"");
                out.push('"');
                out
            }
            Self::Sshfp(fp) => format!("{} {} {}", fp.algorithm, fp.fp_type, fp.fingerprint_hex()),
            Self::Null(bytes) => escape_bytes(bytes),
            Self::Opt(edns) => generic(&edns.rdata_bytes()),
            Self::Empty => String::new(),
            Self::Unknown(bytes) => generic(bytes),
        }
    }
}

/// RFC 3597 §5 generic rdata: `\# 0`, or `\# 4 0a000001`.
fn generic(bytes: &[u8]) -> String {
    let mut out = format!("\\# {}", bytes.len());
    if !bytes.is_empty() {
        out.push(' ');
        push_hex(&mut out, bytes);
    }
    out
}
