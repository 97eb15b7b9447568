//! The EVE `tls` event of one hello, in Suricata's field names; what Suricata
//! has no field for goes in `palisade.tls`.

use palisade_worker_runtime::json::JsonWriter;
use serde::Serialize;

use crate::fingerprint::{self, Transport};
use crate::parse::{Anomaly, ClientHello, ServerHello};

/// `tls.ja3` / `tls.ja3s`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Ja3Out {
    /// MD5 of `string`.
    pub hash: String,
    /// The JA3 string.
    pub string: String,
}

impl From<fingerprint::Ja3> for Ja3Out {
    fn from(j: fingerprint::Ja3) -> Self {
        Self {
            hash: j.hash,
            string: j.string,
        }
    }
}

/// The `tls` object, in Suricata's fields: one hello per event.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TlsBody {
    /// The highest version the hello offers (client) or the one chosen (server).
    pub version: String,
    /// server_name of the connection's ClientHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// ALPN ids the client offers (non-printable bytes as `\xNN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_alpns: Option<Vec<String>>,
    /// ALPN id the server chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_alpns: Option<Vec<String>>,
    /// JA3 of the ClientHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3: Option<Ja3Out>,
    /// JA3S of the ServerHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3s: Option<Ja3Out>,
    /// JA4 of the ClientHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// `tls.client_handshake`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_handshake: Option<ClientHandshake>,
    /// `tls.server_handshake`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_handshake: Option<ServerHandshake>,
    /// Leaf certificate subject (RFC 4514 string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Leaf certificate issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuerdn: Option<String>,
    /// Leaf certificate serial, colon-separated upper-case hex (as Suricata).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// SHA-1 of the leaf certificate's DER, colon-separated lower-case hex (as Suricata).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Validity start, `YYYY-MM-DDTHH:MM:SS` (UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notbefore: Option<String>,
    /// Validity end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notafter: Option<String>,
}

/// `tls.client_handshake`.
#[derive(Debug, Clone, Serialize)]
pub struct ClientHandshake {
    /// legacy_version of the hello.
    pub version: String,
    /// Offered cipher suites, IANA numbers, wire order (GREASE kept).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ciphers: Vec<u16>,
    /// Extension types, wire order (GREASE kept).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exts: Vec<u16>,
    /// signature_algorithms, wire order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sig_algs: Vec<u16>,
}

/// `tls.server_handshake`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerHandshake {
    /// legacy_version of the hello.
    pub version: String,
    /// The chosen cipher suite.
    pub cipher: u16,
    /// Extension types, wire order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exts: Vec<u16>,
}

/// `palisade.tls`: what Suricata's `tls` object has no field for.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TlsVendor {
    /// `client_hello` or `server_hello`: which hello this event is.
    pub handshake: &'static str,
    /// JA4_r (the JA4 before hashing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4_r: Option<String>,
    /// supported_versions (client: offered, GREASE kept; server: selected), as numbers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supported_versions: Vec<u16>,
    /// supported_groups, wire order (GREASE kept).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supported_groups: Vec<u16>,
    /// ec_point_formats.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ec_point_formats: Vec<u8>,
    /// Groups of the key_share entries (client), or the one chosen or asked for (server).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_share_groups: Vec<u16>,
    /// psk_key_exchange_modes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub psk_modes: Vec<u8>,
    /// ALPN ids in hex, when one of them is not printable ASCII.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpns_hex: Option<Vec<String>>,
    /// The ServerHello is a HelloRetryRequest (RFC 8446 section 4.1.4).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hello_retry_request: bool,
    /// Sent in the SSLv2-compatible format.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sslv2: bool,
    /// SSLv2 cipher specs, 6 hex digits each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sslv2_cipher_specs: Vec<String>,
    /// This is the n-th ClientHello (or ServerHello) of the connection, from
    /// 2 on (after a HelloRetryRequest, or a repeated hello).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hello_index: Option<u32>,
    /// What was wrong in the hello but did not stop it being logged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<String>,
    /// The hello's bytes were not all seen (`hello_incomplete`), or the
    /// certificate could not be read (`certificate_unreadable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<&'static str>,
}

// The hot path's writers: the same JSON serde writes for these structs (same keys, order
// and omissions; `tests::hand_written_json_is_serde_s` holds them to it), without serde.

fn opt_str(w: &mut JsonWriter<'_>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        w.key(key).str(v);
    }
}

fn str_list(w: &mut JsonWriter<'_>, key: &str, values: &[String]) {
    w.key(key).begin_array();
    for v in values {
        w.str(v);
    }
    w.end_array();
}

fn num_list<T: Copy + Into<u64>>(w: &mut JsonWriter<'_>, key: &str, values: &[T]) {
    if values.is_empty() {
        return;
    }
    w.key(key).begin_array();
    for v in values {
        w.u64((*v).into());
    }
    w.end_array();
}

impl Ja3Out {
    fn write(&self, w: &mut JsonWriter<'_>, key: &str) {
        w.key(key).begin_object();
        w.key("hash").str(&self.hash);
        w.key("string").str(&self.string);
        w.end_object();
    }
}

impl ClientHandshake {
    /// Writes `"key": {...}`.
    pub fn write(&self, w: &mut JsonWriter<'_>, key: &str) {
        w.key(key).begin_object();
        w.key("version").str(&self.version);
        num_list(w, "ciphers", &self.ciphers);
        num_list(w, "exts", &self.exts);
        num_list(w, "sig_algs", &self.sig_algs);
        w.end_object();
    }
}

impl ServerHandshake {
    /// Writes `"key": {...}`.
    pub fn write(&self, w: &mut JsonWriter<'_>, key: &str) {
        w.key(key).begin_object();
        w.key("version").str(&self.version);
        w.key("cipher").u64(u64::from(self.cipher));
        num_list(w, "exts", &self.exts);
        w.end_object();
    }
}

impl TlsBody {
    /// Writes `"tls": {...}` (or under another key).
    pub fn write(&self, w: &mut JsonWriter<'_>, key: &str) {
        w.key(key).begin_object();
        w.key("version").str(&self.version);
        opt_str(w, "sni", self.sni.as_deref());
        if let Some(a) = &self.client_alpns {
            str_list(w, "client_alpns", a);
        }
        if let Some(a) = &self.server_alpns {
            str_list(w, "server_alpns", a);
        }
        if let Some(j) = &self.ja3 {
            j.write(w, "ja3");
        }
        if let Some(j) = &self.ja3s {
            j.write(w, "ja3s");
        }
        opt_str(w, "ja4", self.ja4.as_deref());
        if let Some(h) = &self.client_handshake {
            h.write(w, "client_handshake");
        }
        if let Some(h) = &self.server_handshake {
            h.write(w, "server_handshake");
        }
        opt_str(w, "subject", self.subject.as_deref());
        opt_str(w, "issuerdn", self.issuerdn.as_deref());
        opt_str(w, "serial", self.serial.as_deref());
        opt_str(w, "fingerprint", self.fingerprint.as_deref());
        opt_str(w, "notbefore", self.notbefore.as_deref());
        opt_str(w, "notafter", self.notafter.as_deref());
        w.end_object();
    }
}

impl TlsVendor {
    /// Writes the fields into the object `w` is in (`palisade.tls`, or flattened into
    /// `palisade.quic`).
    pub fn write_fields(&self, w: &mut JsonWriter<'_>) {
        w.key("handshake").str(self.handshake);
        opt_str(w, "ja4_r", self.ja4_r.as_deref());
        num_list(w, "supported_versions", &self.supported_versions);
        num_list(w, "supported_groups", &self.supported_groups);
        num_list(w, "ec_point_formats", &self.ec_point_formats);
        num_list(w, "key_share_groups", &self.key_share_groups);
        num_list(w, "psk_modes", &self.psk_modes);
        if let Some(h) = &self.alpns_hex {
            str_list(w, "alpns_hex", h);
        }
        if self.hello_retry_request {
            w.key("hello_retry_request").bool(true);
        }
        if self.sslv2 {
            w.key("sslv2").bool(true);
        }
        if !self.sslv2_cipher_specs.is_empty() {
            str_list(w, "sslv2_cipher_specs", &self.sslv2_cipher_specs);
        }
        if let Some(i) = self.hello_index {
            w.key("hello_index").u64(u64::from(i));
        }
        if !self.anomalies.is_empty() {
            str_list(w, "anomalies", &self.anomalies);
        }
        opt_str(w, "incomplete", self.incomplete);
    }
}

impl QuicBody {
    /// Writes `"quic": {...}` (or under another key).
    pub fn write(&self, w: &mut JsonWriter<'_>, key: &str) {
        w.key(key).begin_object();
        w.key("version").str(self.version);
        opt_str(w, "sni", self.sni.as_deref());
        if let Some(j) = &self.ja3 {
            j.write(w, "ja3");
        }
        if let Some(j) = &self.ja3s {
            j.write(w, "ja3s");
        }
        opt_str(w, "ja4", self.ja4.as_deref());
        if !self.extensions.is_empty() {
            w.key("extensions").begin_array();
            for e in &self.extensions {
                w.begin_object();
                opt_str(w, "name", e.name);
                w.key("type").u64(u64::from(e.ty));
                if let Some(v) = &e.values {
                    str_list(w, "values", v);
                }
                w.end_object();
            }
            w.end_array();
        }
        w.end_object();
    }
}

impl QuicVendor {
    /// Writes the fields into the object `w` is in (`palisade.quic`).
    pub fn write_fields(&self, w: &mut JsonWriter<'_>) {
        w.key("dcid").str(&self.dcid);
        w.key("scid").str(&self.scid);
        opt_str(w, "server_scid", self.server_scid.as_deref());
        w.key("tls_version").str(&self.tls_version);
        if let Some(a) = &self.client_alpns {
            str_list(w, "client_alpns", a);
        }
        if let Some(a) = &self.server_alpns {
            str_list(w, "server_alpns", a);
        }
        if let Some(h) = &self.client_handshake {
            h.write(w, "client_handshake");
        }
        if let Some(h) = &self.server_handshake {
            h.write(w, "server_handshake");
        }
        self.tls.write_fields(w);
    }
}

/// A whole event: the shared fields, the hello's object under `key`, and `palisade` with
/// its own object under the same key.
fn write_event(
    w: &mut JsonWriter<'_>,
    common: &palisade_worker_runtime::eve::Common,
    key: &str,
    body: impl FnOnce(&mut JsonWriter<'_>),
    vendor: impl FnOnce(&mut JsonWriter<'_>),
) {
    w.begin_object();
    common.write(w);
    body(w);
    w.key("palisade").begin_object();
    w.key("iface_direction").str(common.iface_direction);
    w.key(key).begin_object();
    vendor(w);
    w.end_object();
    w.end_object();
    w.end_object();
}

/// A whole `quic` event: the shared fields, `quic`, and `palisade` with its `quic` object.
pub fn write_quic_event(
    w: &mut JsonWriter<'_>,
    common: &palisade_worker_runtime::eve::Common,
    body: &QuicBody,
    vendor: &QuicVendor,
) {
    write_event(
        w,
        common,
        "quic",
        |w| body.write(w, "quic"),
        |w| vendor.write_fields(w),
    );
}

/// A whole `tls` event: the shared fields, `tls`, and `palisade` with its `tls` object.
pub fn write_tls_event(
    w: &mut JsonWriter<'_>,
    common: &palisade_worker_runtime::eve::Common,
    body: &TlsBody,
    vendor: &TlsVendor,
) {
    write_event(
        w,
        common,
        "tls",
        |w| body.write(w, "tls"),
        |w| vendor.write_fields(w),
    );
}

/// Printable ASCII as is, everything else (and `\`) as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

fn printable(id: &[u8]) -> bool {
    id.iter().all(|b| (0x20..0x7f).contains(b))
}

fn alpns(ids: &[Vec<u8>]) -> (Option<Vec<String>>, Option<Vec<String>>) {
    if ids.is_empty() {
        return (None, None);
    }
    let text = ids.iter().map(|id| escape(id)).collect();
    let hex = (!ids.iter().all(|id| printable(id))).then(|| ids.iter().map(hex::encode).collect());
    (Some(text), hex)
}

fn anomalies(list: &[Anomaly]) -> Vec<String> {
    list.iter().map(|a| a.describe()).collect()
}

/// The `tls` and `palisade.tls` objects of a ClientHello.
pub fn client(h: &ClientHello, transport: Transport) -> (TlsBody, TlsVendor) {
    let (client_alpns, alpns_hex) = alpns(&h.alpn);
    let ja4 = fingerprint::ja4(h, transport);
    let body = TlsBody {
        version: h.max_version().eve_name(),
        sni: h.sni.as_deref().map(escape),
        client_alpns,
        ja3: fingerprint::ja3(h).map(Ja3Out::from),
        ja4: ja4.as_ref().map(|f| f.ja4.clone()),
        client_handshake: Some(ClientHandshake {
            version: h.legacy_version.eve_name(),
            ciphers: h.ciphers.clone(),
            exts: h.extensions.iter().map(|e| e.0).collect(),
            sig_algs: h.sig_algs.iter().map(|s| s.0).collect(),
        }),
        ..TlsBody::default()
    };
    let vendor = TlsVendor {
        handshake: "client_hello",
        ja4_r: ja4.map(|f| f.ja4_r),
        supported_versions: h.supported_versions.iter().map(|v| v.0).collect(),
        supported_groups: h.supported_groups.iter().map(|g| g.0).collect(),
        ec_point_formats: h.ec_point_formats.clone(),
        key_share_groups: h.key_share_groups.iter().map(|g| g.0).collect(),
        psk_modes: h.psk_modes.clone(),
        alpns_hex,
        sslv2: h.sslv2,
        sslv2_cipher_specs: h
            .sslv2_cipher_specs
            .iter()
            .map(|s| format!("{s:06x}"))
            .collect(),
        anomalies: anomalies(&h.anomalies),
        ..TlsVendor::default()
    };
    (body, vendor)
}

/// The `tls` and `palisade.tls` objects of a ServerHello.
pub fn server(h: &ServerHello) -> (TlsBody, TlsVendor) {
    let (server_alpns, alpns_hex) = alpns(&h.alpn);
    let body = TlsBody {
        version: h.version().eve_name(),
        server_alpns,
        ja3s: Some(fingerprint::ja3s(h).into()),
        server_handshake: Some(ServerHandshake {
            version: h.legacy_version.eve_name(),
            cipher: h.cipher,
            exts: h.extensions.iter().map(|e| e.0).collect(),
        }),
        ..TlsBody::default()
    };
    let vendor = TlsVendor {
        handshake: "server_hello",
        supported_versions: h.selected_version.iter().map(|v| v.0).collect(),
        ec_point_formats: h.ec_point_formats.clone(),
        key_share_groups: h.key_share_group.iter().map(|g| g.0).collect(),
        alpns_hex,
        hello_retry_request: h.hello_retry_request,
        anomalies: anomalies(&h.anomalies),
        ..TlsVendor::default()
    };
    (body, vendor)
}

/// Adds the leaf certificate's fields to a ServerHello's `tls` object.
pub fn certificate(body: &mut TlsBody, c: crate::parse::certificate::CertInfo) {
    body.subject = c.subject;
    body.issuerdn = c.issuerdn;
    body.serial = c.serial;
    body.fingerprint = Some(c.fingerprint);
    body.notbefore = c.notbefore;
    body.notafter = c.notafter;
}

/// One entry of `quic.extensions`.
#[derive(Debug, Clone, Serialize)]
pub struct QuicExtension {
    /// The extension's IANA name, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'static str>,
    /// Its number.
    #[serde(rename = "type")]
    pub ty: u16,
    /// Its values, for server_name and ALPN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// The `quic` object, in Suricata's fields: one hello per event.
#[derive(Debug, Clone, Serialize)]
pub struct QuicBody {
    /// QUIC version ("1", "2").
    pub version: &'static str,
    /// server_name of the connection's ClientHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// JA3 of the ClientHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3: Option<Ja3Out>,
    /// JA3S of the ServerHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3s: Option<Ja3Out>,
    /// JA4 of the ClientHello (`q` for QUIC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// The hello's extensions, wire order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<QuicExtension>,
}

/// `palisade.quic`: the connection IDs and the hello's fields that Suricata's
/// `quic` object has no place for (named as in a `tls` event).
#[derive(Debug, Clone, Serialize)]
pub struct QuicVendor {
    /// Destination Connection ID of the client's first Initial (hex).
    pub dcid: String,
    /// The client's Source Connection ID (hex).
    pub scid: String,
    /// The server's Source Connection ID (hex), once seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_scid: Option<String>,
    /// TLS version the hello offers (client) or chose (server), as `tls.version`.
    pub tls_version: String,
    /// As `tls.client_alpns`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_alpns: Option<Vec<String>>,
    /// As `tls.server_alpns`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_alpns: Option<Vec<String>>,
    /// As `tls.client_handshake`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_handshake: Option<ClientHandshake>,
    /// As `tls.server_handshake`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_handshake: Option<ServerHandshake>,
    /// As `palisade.tls`.
    #[serde(flatten)]
    pub tls: TlsVendor,
}

fn quic_extensions(
    exts: &[crate::parse::ExtensionType],
    sni: Option<&String>,
    alpns: Option<&Vec<String>>,
) -> Vec<QuicExtension> {
    use crate::parse::ExtensionType;
    exts.iter()
        .map(|&e| QuicExtension {
            name: e.mnemonic(),
            ty: e.0,
            values: match e {
                ExtensionType::SERVER_NAME => sni.map(|s| vec![s.clone()]),
                ExtensionType::ALPN => alpns.cloned(),
                _ => None,
            },
        })
        .collect()
}

/// The `quic` and `palisade.quic` objects of a hello that came in QUIC
/// Initial packets: the same reading as over TCP, laid out as Suricata's
/// `quic` event.
pub fn quic(
    hello: &crate::conn::Hello,
    version: crate::quic::packet::Version,
    cids: [&[u8]; 2],
    server_scid: Option<&[u8]>,
) -> (QuicBody, QuicVendor) {
    let (tls, vendor, exts) = match hello {
        crate::conn::Hello::Client(h) => {
            let (b, v) = client(h, Transport::Quic);
            (b, v, &h.extensions)
        }
        crate::conn::Hello::Server(h, sni, _) => {
            let (mut b, v) = server(h);
            b.sni = sni.as_deref().map(escape);
            (b, v, &h.extensions)
        }
    };
    let alpns = tls.client_alpns.as_ref().or(tls.server_alpns.as_ref());
    let body = QuicBody {
        version: version.eve_name(),
        extensions: quic_extensions(exts, tls.sni.as_ref(), alpns),
        sni: tls.sni,
        ja3: tls.ja3,
        ja3s: tls.ja3s,
        ja4: tls.ja4,
    };
    let [dcid, scid] = cids;
    let vendor = QuicVendor {
        dcid: hex::encode(dcid),
        scid: hex::encode(scid),
        server_scid: server_scid.map(hex::encode),
        tls_version: tls.version,
        client_alpns: tls.client_alpns,
        server_alpns: tls.server_alpns,
        client_handshake: tls.client_handshake,
        server_handshake: tls.server_handshake,
        tls: vendor,
    };
    (body, vendor)
}
