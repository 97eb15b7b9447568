//! ClientHello and ServerHello bodies (RFC 8446 section 4.1.2/4.1.3, RFC 5246
//! section 7.4.1), and the SSLv2-compatible ClientHello (RFC 5246 appendix
//! E.2). Every extension is listed in wire order with GREASE values kept;
//! the extensions Palisade reads are decoded, and one whose body does not
//! match its syntax is flagged ([`Anomaly`]) without losing the rest.

use palisade_worker_runtime::cursor::Cursor;

use super::error::{Anomaly, TlsError};
use super::types::{ExtensionType, NamedGroup, ProtocolVersion, SignatureScheme};

/// Extensions read at most per hello (bound on hostile input; a real hello
/// has at most ~25, and 65535 bytes hold at most 16383 empty ones).
pub const MAX_EXTENSIONS: usize = 256;

/// The ServerHello.random of a HelloRetryRequest (RFC 8446 section 4.1.3):
/// SHA-256 of "HelloRetryRequest".
pub const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A ClientHello, every list in wire order, GREASE values kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// legacy_version (`client_version` before TLS 1.3).
    pub legacy_version: ProtocolVersion,
    /// Length of legacy_session_id (0..=32).
    pub session_id_len: u8,
    /// cipher_suites.
    pub ciphers: Vec<u16>,
    /// legacy_compression_methods.
    pub compression_methods: Vec<u8>,
    /// Extension types in wire order.
    pub extensions: Vec<ExtensionType>,
    /// server_name: the first host_name entry, as sent.
    pub sni: Option<Vec<u8>>,
    /// application_layer_protocol_negotiation: protocol ids as sent.
    pub alpn: Vec<Vec<u8>>,
    /// supported_groups (elliptic_curves before RFC 8422).
    pub supported_groups: Vec<NamedGroup>,
    /// ec_point_formats.
    pub ec_point_formats: Vec<u8>,
    /// signature_algorithms.
    pub sig_algs: Vec<SignatureScheme>,
    /// key_share: the group of each KeyShareEntry.
    pub key_share_groups: Vec<NamedGroup>,
    /// supported_versions.
    pub supported_versions: Vec<ProtocolVersion>,
    /// psk_key_exchange_modes.
    pub psk_modes: Vec<u8>,
    /// Sent in the SSLv2-compatible format (RFC 5246 appendix E.2).
    pub sslv2: bool,
    /// SSLv2 cipher specs (3 bytes each) of an SSLv2-format hello (whose
    /// `ciphers` stays empty: a different code space, RFC 5246 appendix E.2).
    pub sslv2_cipher_specs: Vec<u32>,
    /// What was wrong but did not stop parsing.
    pub anomalies: Vec<Anomaly>,
}

impl ClientHello {
    /// The highest version offered: the largest non-GREASE supported_versions
    /// entry when the extension is there, else legacy_version.
    pub fn max_version(&self) -> ProtocolVersion {
        if self.extensions.contains(&ExtensionType::SUPPORTED_VERSIONS)
            && let Some(v) = self
                .supported_versions
                .iter()
                .filter(|v| !v.is_grease())
                .max()
        {
            return *v;
        }
        self.legacy_version
    }

    /// Whether the hello carries `ext`.
    pub fn has(&self, ext: ExtensionType) -> bool {
        self.extensions.contains(&ext)
    }
}

/// A ServerHello (or HelloRetryRequest).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerHello {
    /// legacy_version.
    pub legacy_version: ProtocolVersion,
    /// The random is the HelloRetryRequest constant.
    pub hello_retry_request: bool,
    /// Length of legacy_session_id_echo.
    pub session_id_len: u8,
    /// cipher_suite.
    pub cipher: u16,
    /// legacy_compression_method.
    pub compression_method: u8,
    /// Extension types in wire order.
    pub extensions: Vec<ExtensionType>,
    /// supported_versions: the selected version.
    pub selected_version: Option<ProtocolVersion>,
    /// ALPN: the selected protocol.
    pub alpn: Vec<Vec<u8>>,
    /// key_share: the server's group (ServerHello) or the one asked for (HelloRetryRequest).
    pub key_share_group: Option<NamedGroup>,
    /// ec_point_formats.
    pub ec_point_formats: Vec<u8>,
    /// What was wrong but did not stop parsing.
    pub anomalies: Vec<Anomaly>,
}

impl ServerHello {
    /// The negotiated version: supported_versions when present (TLS 1.3),
    /// else legacy_version.
    pub fn version(&self) -> ProtocolVersion {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

/// Reads `list` (a whole vector body) as big-endian u16s; an odd length is malformed.
fn u16_list(mut list: Cursor<'_>) -> Result<Vec<u16>, TlsError> {
    if !list.remaining().is_multiple_of(2) {
        return Err(TlsError::BadLength);
    }
    let mut out = Vec::with_capacity(list.remaining() / 2);
    while list.remaining() > 0 {
        out.push(list.u16()?);
    }
    Ok(out)
}

/// Requires the cursor to be used up (an extension body that holds more than its syntax).
fn done(c: &Cursor<'_>) -> Result<(), TlsError> {
    if c.remaining() == 0 {
        Ok(())
    } else {
        Err(TlsError::BadLength)
    }
}

/// Parses a ClientHello body (after the 4-byte handshake header).
pub fn parse_client_hello(body: &[u8]) -> Result<ClientHello, TlsError> {
    let mut c = Cursor::new(body);
    let mut hello = ClientHello {
        legacy_version: ProtocolVersion(c.u16()?),
        ..ClientHello::default()
    };
    c.skip(32)?; // random
    let sid = c.prefixed_u8()?;
    hello.session_id_len = u8::try_from(sid.remaining()).unwrap_or(u8::MAX);
    hello.ciphers = u16_list(c.prefixed_u16()?)?;
    hello.compression_methods = c.prefixed_u8()?.rest().to_vec();
    let exts = read_extensions(&mut c, &mut hello.anomalies)?;
    let mut seen = Vec::with_capacity(exts.len());
    for (ty, body) in exts {
        hello.extensions.push(ty);
        if seen.contains(&ty) {
            hello.anomalies.push(Anomaly::DuplicateExtension(ty));
            continue;
        }
        seen.push(ty);
        if client_extension(&mut hello, ty, Cursor::new(body)).is_err() {
            hello.anomalies.push(Anomaly::MalformedExtension(ty));
        }
    }
    Ok(hello)
}

/// Reads the optional extension block after the fixed fields: `(type, body)`
/// in wire order. A block cut short keeps the whole extensions before the
/// cut ([`Anomaly::ExtensionsTruncated`]); bytes after the block are flagged.
fn read_extensions<'a>(
    c: &mut Cursor<'a>,
    anomalies: &mut Vec<Anomaly>,
) -> Result<Vec<(ExtensionType, &'a [u8])>, TlsError> {
    let mut out = Vec::new();
    if c.remaining() == 0 {
        return Ok(out); // no extensions: allowed before TLS 1.3
    }
    let Ok(len) = c.u16() else {
        anomalies.push(Anomaly::TrailingBytes);
        return Ok(out);
    };
    let mut block = match c.sub(usize::from(len)) {
        Ok(block) => block,
        Err(_) => {
            anomalies.push(Anomaly::ExtensionsTruncated);
            c.sub(c.remaining())?
        }
    };
    if c.remaining() > 0 {
        anomalies.push(Anomaly::TrailingBytes);
    }
    while block.remaining() > 0 {
        if out.len() == MAX_EXTENSIONS {
            anomalies.push(Anomaly::TooManyExtensions);
            break;
        }
        let header = block.u16().and_then(|ty| Ok((ty, block.prefixed_u16()?)));
        match header {
            Ok((ty, mut body)) => out.push((ExtensionType(ty), body.rest())),
            Err(_) => {
                if !anomalies.contains(&Anomaly::ExtensionsTruncated) {
                    anomalies.push(Anomaly::ExtensionsTruncated);
                }
                break;
            }
        }
    }
    Ok(out)
}

fn client_extension(
    f: &mut ClientHello,
    ty: ExtensionType,
    mut e: Cursor<'_>,
) -> Result<(), TlsError> {
    match ty {
        ExtensionType::SERVER_NAME => {
            // RFC 6066 section 3: ServerNameList; an empty body is allowed
            // (a server's acknowledgement), a client's is not, but harmless.
            if e.remaining() == 0 {
                return Ok(());
            }
            let mut list = e.prefixed_u16()?;
            done(&e)?;
            while list.remaining() > 0 {
                let name_type = list.u8()?;
                let name = list.prefixed_u16()?.rest();
                if name_type == 0 && f.sni.is_none() {
                    f.sni = Some(name.to_vec());
                }
            }
        }
        ExtensionType::ALPN => f.alpn = alpn_list(&mut e)?,
        ExtensionType::SUPPORTED_GROUPS => {
            let list = e.prefixed_u16()?;
            done(&e)?;
            f.supported_groups = u16_list(list)?.into_iter().map(NamedGroup).collect();
        }
        ExtensionType::EC_POINT_FORMATS => {
            f.ec_point_formats = e.prefixed_u8()?.rest().to_vec();
            done(&e)?;
        }
        ExtensionType::SIGNATURE_ALGORITHMS => {
            let list = e.prefixed_u16()?;
            done(&e)?;
            f.sig_algs = u16_list(list)?.into_iter().map(SignatureScheme).collect();
        }
        ExtensionType::KEY_SHARE => {
            let mut list = e.prefixed_u16()?;
            done(&e)?;
            let mut groups = Vec::new();
            while list.remaining() > 0 {
                groups.push(NamedGroup(list.u16()?));
                list.prefixed_u16()?; // key_exchange
            }
            f.key_share_groups = groups;
        }
        ExtensionType::SUPPORTED_VERSIONS => {
            let list = e.prefixed_u8()?;
            done(&e)?;
            f.supported_versions = u16_list(list)?.into_iter().map(ProtocolVersion).collect();
        }
        ExtensionType::PSK_KEY_EXCHANGE_MODES => {
            f.psk_modes = e.prefixed_u8()?.rest().to_vec();
            done(&e)?;
        }
        _ => {}
    }
    Ok(())
}

/// ProtocolNameList (RFC 7301 section 3.1): ids of 1..=255 bytes.
fn alpn_list(e: &mut Cursor<'_>) -> Result<Vec<Vec<u8>>, TlsError> {
    let mut list = e.prefixed_u16()?;
    done(e)?;
    let mut out = Vec::new();
    while list.remaining() > 0 {
        let id = list.prefixed_u8()?.rest();
        if id.is_empty() {
            return Err(TlsError::BadLength);
        }
        out.push(id.to_vec());
    }
    Ok(out)
}

/// Parses a ServerHello body (after the 4-byte handshake header); a
/// HelloRetryRequest is a ServerHello with the special random.
pub fn parse_server_hello(body: &[u8]) -> Result<ServerHello, TlsError> {
    let mut c = Cursor::new(body);
    let mut hello = ServerHello {
        legacy_version: ProtocolVersion(c.u16()?),
        ..ServerHello::default()
    };
    hello.hello_retry_request = c.array::<32>()? == HELLO_RETRY_REQUEST_RANDOM;
    let sid = c.prefixed_u8()?;
    if sid.remaining() > 32 {
        return Err(TlsError::BadLength);
    }
    hello.session_id_len = u8::try_from(sid.remaining()).unwrap_or(u8::MAX);
    hello.cipher = c.u16()?;
    hello.compression_method = c.u8()?;
    let exts = read_extensions(&mut c, &mut hello.anomalies)?;
    let mut seen = Vec::with_capacity(exts.len());
    for (ty, body) in exts {
        hello.extensions.push(ty);
        if seen.contains(&ty) {
            hello.anomalies.push(Anomaly::DuplicateExtension(ty));
            continue;
        }
        seen.push(ty);
        if server_extension(&mut hello, ty, Cursor::new(body)).is_err() {
            hello.anomalies.push(Anomaly::MalformedExtension(ty));
        }
    }
    Ok(hello)
}

fn server_extension(
    h: &mut ServerHello,
    ty: ExtensionType,
    mut e: Cursor<'_>,
) -> Result<(), TlsError> {
    match ty {
        ExtensionType::SUPPORTED_VERSIONS => {
            h.selected_version = Some(ProtocolVersion(e.u16()?));
            done(&e)?;
        }
        ExtensionType::ALPN => h.alpn = alpn_list(&mut e)?,
        ExtensionType::KEY_SHARE => {
            // ServerHello: one KeyShareEntry; HelloRetryRequest: the group alone.
            h.key_share_group = Some(NamedGroup(e.u16()?));
            if !h.hello_retry_request {
                e.prefixed_u16()?;
            }
            done(&e)?;
        }
        ExtensionType::EC_POINT_FORMATS => {
            h.ec_point_formats = e.prefixed_u8()?.rest().to_vec();
            done(&e)?;
        }
        _ => {}
    }
    Ok(())
}

/// Parses an SSLv2-format ClientHello (RFC 5246 appendix E.2; the body after
/// the 2-byte record header and the msg_type byte 1): version, the three
/// lengths, cipher specs, session id, challenge.
pub fn parse_sslv2_client_hello(body: &[u8]) -> Result<ClientHello, TlsError> {
    let mut c = Cursor::new(body);
    let version = ProtocolVersion(c.u16()?);
    let specs_len = usize::from(c.u16()?);
    let sid_len = usize::from(c.u16()?);
    let challenge_len = usize::from(c.u16()?);
    if specs_len % 3 != 0 || sid_len > 32 || !(16..=32).contains(&challenge_len) {
        return Err(TlsError::BadLength);
    }
    let mut specs = c.sub(specs_len)?;
    c.skip(sid_len)?;
    c.skip(challenge_len)?;
    let mut hello = ClientHello {
        legacy_version: version,
        session_id_len: u8::try_from(sid_len).unwrap_or(u8::MAX),
        sslv2: true,
        ..ClientHello::default()
    };
    while specs.remaining() > 0 {
        let [a, b, d] = specs.array::<3>()?;
        let spec = u32::from_be_bytes([0, a, b, d]);
        hello.sslv2_cipher_specs.push(spec);
    }
    if c.remaining() > 0 {
        hello.anomalies.push(Anomaly::TrailingBytes);
    }
    Ok(hello)
}
