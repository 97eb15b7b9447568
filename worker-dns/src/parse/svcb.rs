//! SVCB and HTTPS rdata (RFC 9460): priority, target, SvcParams.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::cursor::Cursor;
use super::error::ErrorKind;
use super::name::Name;
use super::text::{push_base64, push_char_string};
use super::types::wire_names;

/// SvcParamKey (IANA "Service Parameter Keys"); unknown keys render `key65000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SvcParamKey(pub u16);

wire_names!(SvcParamKey(u16), unknown = "key", {
    MANDATORY = 0 => "mandatory",
    ALPN = 1 => "alpn",
    NO_DEFAULT_ALPN = 2 => "no-default-alpn",
    PORT = 3 => "port",
    IPV4HINT = 4 => "ipv4hint",
    ECH = 5 => "ech",
    IPV6HINT = 6 => "ipv6hint",
    DOHPATH = 7 => "dohpath",
    OHTTP = 8 => "ohttp",
});

/// A decoded SvcParamValue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SvcParamValue {
    Mandatory(Vec<SvcParamKey>),
    /// ALPN protocol ids, as bytes.
    Alpn(Vec<Vec<u8>>),
    NoDefaultAlpn,
    Port(u16),
    Ipv4Hint(Vec<Ipv4Addr>),
    /// An ECHConfigList, kept raw.
    Ech(Vec<u8>),
    Ipv6Hint(Vec<Ipv6Addr>),
    /// Any other key (dohpath, ohttp, unknown): the value raw.
    Other(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvcParam {
    pub key: SvcParamKey,
    pub value: SvcParamValue,
}

/// SVCB / HTTPS rdata. Priority 0 is AliasMode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Svcb {
    pub priority: u16,
    pub target: Name,
    /// In wire order, which the parser checked is strictly increasing by key.
    pub params: Vec<SvcParam>,
}

impl Svcb {
    pub(crate) fn parse(cur: &mut Cursor<'_>) -> Result<Self, ErrorKind> {
        let priority = cur.u16()?;
        let target = Name::read(cur)?;
        let mut params: Vec<SvcParam> = Vec::new();
        // Each parameter takes at least 4 bytes of the window, so this ends.
        while !cur.is_empty() {
            let key = SvcParamKey(cur.u16()?);
            if params.last().is_some_and(|last| last.key >= key) {
                return Err(ErrorKind::BadSvcParam);
            }
            let len = usize::from(cur.u16()?);
            let mut value = cur.sub(len, ErrorKind::BadSvcParam)?;
            let decoded = parse_value(key, &mut value)?;
            if !value.is_empty() {
                return Err(ErrorKind::BadSvcParam);
            }
            params.push(SvcParam {
                key,
                value: decoded,
            });
        }
        Ok(Self {
            priority,
            target,
            params,
        })
    }

    /// RFC 9460 presentation: `1 . alpn="h2,h3" ipv4hint=192.0.2.1`.
    pub fn to_presentation(&self) -> String {
        let mut out = format!("{} {}", self.priority, self.target);
        for param in &self.params {
            out.push(' ');
            out.push_str(&param.key.name());
            push_value(&mut out, &param.value);
        }
        out
    }
}

/// Decodes one value; `v` is exactly the value's bytes.
fn parse_value(key: SvcParamKey, v: &mut Cursor<'_>) -> Result<SvcParamValue, ErrorKind> {
    let nonempty = |v: &Cursor<'_>| {
        if v.is_empty() {
            Err(ErrorKind::BadSvcParam)
        } else {
            Ok(())
        }
    };
    Ok(match key {
        SvcParamKey::MANDATORY => {
            nonempty(v)?;
            let mut keys = Vec::new();
            while !v.is_empty() {
                keys.push(SvcParamKey(v.u16()?));
            }
            SvcParamValue::Mandatory(keys)
        }
        SvcParamKey::ALPN => {
            nonempty(v)?;
            let mut ids = Vec::new();
            while !v.is_empty() {
                let len = v.u8()?;
                if len == 0 {
                    return Err(ErrorKind::BadSvcParam);
                }
                ids.push(v.take(usize::from(len))?.to_vec());
            }
            SvcParamValue::Alpn(ids)
        }
        SvcParamKey::NO_DEFAULT_ALPN => SvcParamValue::NoDefaultAlpn,
        SvcParamKey::PORT => SvcParamValue::Port(v.u16()?),
        SvcParamKey::IPV4HINT => {
            nonempty(v)?;
            let mut addrs = Vec::new();
            while !v.is_empty() {
                addrs.push(Ipv4Addr::from(v.array::<4>()?));
            }
            SvcParamValue::Ipv4Hint(addrs)
        }
        SvcParamKey::ECH => SvcParamValue::Ech(v.rest().to_vec()),
        SvcParamKey::IPV6HINT => {
            nonempty(v)?;
            let mut addrs = Vec::new();
            while !v.is_empty() {
                addrs.push(Ipv6Addr::from(v.array::<16>()?));
            }
            SvcParamValue::Ipv6Hint(addrs)
        }
        _ => SvcParamValue::Other(v.rest().to_vec()),
    })
}

/// Appends `=value` (nothing for no-default-alpn).
fn push_value(out: &mut String, value: &SvcParamValue) {
    fn list<T: ToString>(out: &mut String, items: &[T]) {
        out.push('=');
        let texts: Vec<String> = items.iter().map(ToString::to_string).collect();
        out.push_str(&texts.join(","));
    }
    match value {
        SvcParamValue::Mandatory(keys) => list(out, keys),
        SvcParamValue::Alpn(ids) => {
            out.push_str("=\"");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_char_string(out, id, b",");
            }
            out.push('"');
        }
        SvcParamValue::NoDefaultAlpn => {}
        SvcParamValue::Port(port) => list(out, &[port]),
        SvcParamValue::Ipv4Hint(addrs) => list(out, addrs),
        SvcParamValue::Ech(config) => {
            out.push('=');
            push_base64(out, config);
        }
        SvcParamValue::Ipv6Hint(addrs) => list(out, addrs),
        SvcParamValue::Other(bytes) => {
            out.push_str("=\"");
            push_char_string(out, bytes, b"");
            out.push('"');
        }
    }
}
