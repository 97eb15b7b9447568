//! TLS handshake parsing (RFC 8446 / 5246): the first handshake message of a
//! TLS record, ClientHello and ServerHello fields. Bytes in, typed out.

use palisade_worker_runtime::cursor::{Cursor, Truncated};

/// Extensions read at most per hello (bound on hostile input).
const MAX_EXTENSIONS: usize = 128;

const CONTENT_HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// Why a record was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsError {
    /// The hello is cut short (segment boundary or capture cap); following
    /// a handshake across segments is the TLS issue's work.
    Truncated,
    /// Not a handshake record.
    NotHandshake,
    /// A handshake message other than ClientHello / ServerHello.
    OtherHandshake,
}

impl TlsError {
    /// snake_case reason for drop counters.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Truncated => "tls_hello_incomplete",
            Self::NotHandshake => "tls_not_handshake",
            Self::OtherHandshake => "tls_other_handshake",
        }
    }
}

impl From<Truncated> for TlsError {
    fn from(_: Truncated) -> Self {
        Self::Truncated
    }
}

/// A parsed hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// True for ClientHello.
    pub client: bool,
    /// legacy_version of the hello.
    pub legacy_version: u16,
    /// Highest version in supported_versions (ClientHello) or the selected
    /// one (ServerHello), when present.
    pub supported_version: Option<u16>,
    /// server_name (ClientHello).
    pub sni: Option<String>,
    /// ALPN protocols offered / selected.
    pub alpn: Vec<String>,
    /// Cipher suites offered (ClientHello) or the chosen one (ServerHello).
    pub ciphers: Vec<u16>,
}

impl Hello {
    /// The negotiated (ServerHello) or highest offered (ClientHello) version.
    pub fn version(&self) -> u16 {
        self.supported_version.unwrap_or(self.legacy_version)
    }
}

/// Version name as Suricata writes it.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSLv3".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        v => format!("0x{v:04x}"),
    }
}

fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Parses the first handshake message of a TLS record (the TCP payload).
pub fn parse_record(bytes: &[u8]) -> Result<Hello, TlsError> {
    let mut c = Cursor::new(bytes);
    if c.u8()? != CONTENT_HANDSHAKE {
        return Err(TlsError::NotHandshake);
    }
    let _record_version = c.u16()?;
    let len = usize::from(c.u16()?);
    let mut record = c.sub(len.min(c.remaining()))?;
    let msg_type = record.u8()?;
    let body_len = record.u24()? as usize;
    let mut body = record.sub(body_len)?;
    match msg_type {
        CLIENT_HELLO => parse_hello(&mut body, true),
        SERVER_HELLO => parse_hello(&mut body, false),
        _ => Err(TlsError::OtherHandshake),
    }
}

fn parse_hello(c: &mut Cursor<'_>, client: bool) -> Result<Hello, TlsError> {
    let legacy_version = c.u16()?;
    c.skip(32)?; // random
    let sid_len = usize::from(c.u8()?);
    c.skip(sid_len)?;
    let ciphers = if client {
        let n = usize::from(c.u16()?);
        let mut list = c.sub(n)?;
        let mut out = Vec::with_capacity(n / 2);
        while list.remaining() >= 2 {
            out.push(list.u16()?);
        }
        let comp = usize::from(c.u8()?);
        c.skip(comp)?;
        out
    } else {
        let suite = c.u16()?;
        c.skip(1)?; // compression
        vec![suite]
    };
    let mut hello = Hello {
        client,
        legacy_version,
        supported_version: None,
        sni: None,
        alpn: Vec::new(),
        ciphers,
    };
    if c.remaining() == 0 {
        return Ok(hello);
    }
    let ext_len = usize::from(c.u16()?);
    let mut exts = c.sub(ext_len)?;
    for _ in 0..MAX_EXTENSIONS {
        if exts.remaining() == 0 {
            break;
        }
        let ty = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let mut e = exts.sub(len)?;
        match ty {
            EXT_SERVER_NAME if client => {
                let mut list = e.prefixed_u16()?;
                while list.remaining() > 0 {
                    let name_type = list.u8()?;
                    let name = list.prefixed_u16()?.rest();
                    if name_type == 0 {
                        hello.sni = Some(String::from_utf8_lossy(name).into_owned());
                        break;
                    }
                }
            }
            EXT_ALPN => {
                let mut list = e.prefixed_u16()?;
                while list.remaining() > 0 {
                    let p = list.prefixed_u8()?.rest();
                    hello.alpn.push(String::from_utf8_lossy(p).into_owned());
                }
            }
            EXT_SUPPORTED_VERSIONS if client => {
                let mut list = e.prefixed_u8()?;
                while list.remaining() >= 2 {
                    let v = list.u16()?;
                    if !is_grease(v) && hello.supported_version.is_none_or(|best| v > best) {
                        hello.supported_version = Some(v);
                    }
                }
            }
            EXT_SUPPORTED_VERSIONS => hello.supported_version = Some(e.u16()?),
            _ => {}
        }
    }
    Ok(hello)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_hello(sni: &str) -> Vec<u8> {
        let mut ext = Vec::new();
        let name = sni.as_bytes();
        let list_len = 3 + name.len();
        ext.extend(0u16.to_be_bytes());
        ext.extend(((list_len + 2) as u16).to_be_bytes());
        ext.extend((list_len as u16).to_be_bytes());
        ext.push(0);
        ext.extend((name.len() as u16).to_be_bytes());
        ext.extend(name);
        ext.extend([0, 43, 0, 5, 4, 0x0a, 0x0a, 0x03, 0x04]); // GREASE + TLS 1.3
        ext.extend([0, 16, 0, 5, 0, 3, 2, b'h', b'2']);
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]);
        body.push(0);
        body.extend([0, 4, 0x13, 0x01, 0xc0, 0x2f]);
        body.extend([1, 0]);
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![CLIENT_HELLO];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![22, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn parses_client_hello() {
        let h = parse_record(&client_hello("example.org")).expect("valid");
        assert!(h.client);
        assert_eq!(h.sni.as_deref(), Some("example.org"));
        assert_eq!(h.version(), 0x0304, "GREASE is ignored");
        assert_eq!(h.alpn, vec!["h2".to_owned()]);
        assert_eq!(h.ciphers, vec![0x1301, 0xc02f]);
        assert_eq!(version_name(h.version()), "TLS 1.3");
    }

    #[test]
    fn truncations_never_panic() {
        let full = client_hello("a.example");
        for n in 0..full.len() {
            assert!(
                parse_record(full.get(..n).unwrap_or_default()).is_err(),
                "prefix {n} must not parse"
            );
        }
    }
}
