//! Parser tests: hand-built hellos (every extension Palisade reads, every
//! anomaly, record and message boundaries anywhere), real streams from
//! `testdata/` checked against the corpus, and a property-based fuzz loop.

#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::fingerprint::{self, Transport};

macro_rules! testdata {
    ($($file:literal),* $(,)?) => {
        &[$(($file, include_bytes!(concat!("../../testdata/", $file)) as &[u8])),*]
    };
}

const STREAMS: &[(&str, &[u8])] = testdata![
    "ja4_tls-non-ascii-alpn.client.bin",
    "ja4_tls-non-ascii-alpn.server.bin",
    "sv_sslv2-compatible-hello.client.bin",
    "sv_sslv2-compatible-hello.server.bin",
    "sv_tls-clienthello-fragmented-mtu300.client.bin",
    "sv_tls-clienthello-fragmented-mtu300.server.bin",
    "sv_tls10-ja4-c2.client.bin",
    "sv_tls12-github.client.bin",
    "sv_tls12-github.server.bin",
    "sv_tls13-chrome-grease-tcp-and-quic.client.bin",
    "sv_tls13-chrome-grease-tcp-and-quic.server.bin",
];

const EXPECTED: &str = include_str!("../../testdata/expected.jsonl");

fn stream(name: &str) -> &'static [u8] {
    STREAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .unwrap_or_else(|| panic!("no testdata {name}"))
}

/// Every message of a whole stream.
fn messages(bytes: &[u8]) -> (Vec<Message>, StreamState) {
    let mut s = HandshakeStream::new();
    let msgs = s
        .push(bytes)
        .iter()
        .map(|r| parse_message(r).unwrap_or_else(|e| panic!("{e} in {r:?}")))
        .collect();
    (msgs, s.state())
}

/// Builds hellos from parts, so tests read as the wire layout.
#[derive(Clone)]
struct HelloBuilder {
    version: u16,
    ciphers: Vec<u16>,
    exts: Vec<(u16, Vec<u8>)>,
}

fn vec16(items: &[u16]) -> Vec<u8> {
    let mut v = ((items.len() * 2) as u16).to_be_bytes().to_vec();
    for i in items {
        v.extend(i.to_be_bytes());
    }
    v
}

impl HelloBuilder {
    fn new() -> Self {
        Self {
            version: 0x0303,
            ciphers: vec![0x1301, 0xc02f],
            exts: Vec::new(),
        }
    }

    fn ext(mut self, ty: u16, body: Vec<u8>) -> Self {
        self.exts.push((ty, body));
        self
    }

    fn sni(self, name: &str) -> Self {
        let mut b = ((name.len() + 3) as u16).to_be_bytes().to_vec();
        b.push(0);
        b.extend((name.len() as u16).to_be_bytes());
        b.extend(name.as_bytes());
        self.ext(0, b)
    }

    fn alpn(self, ids: &[&[u8]]) -> Self {
        let mut list = Vec::new();
        for id in ids {
            list.push(id.len() as u8);
            list.extend(*id);
        }
        let mut b = (list.len() as u16).to_be_bytes().to_vec();
        b.extend(list);
        self.ext(16, b)
    }

    fn ext_bytes(&self) -> Vec<u8> {
        let mut exts = Vec::new();
        for (ty, body) in &self.exts {
            exts.extend(ty.to_be_bytes());
            exts.extend((body.len() as u16).to_be_bytes());
            exts.extend(body);
        }
        exts
    }

    fn client_body(&self) -> Vec<u8> {
        let mut b = self.version.to_be_bytes().to_vec();
        b.extend([7u8; 32]);
        b.push(32);
        b.extend([9u8; 32]);
        b.extend(vec16(&self.ciphers));
        b.extend([1, 0]);
        let exts = self.ext_bytes();
        b.extend((exts.len() as u16).to_be_bytes());
        b.extend(exts);
        b
    }

    fn server_body(&self, random: [u8; 32]) -> Vec<u8> {
        let mut b = self.version.to_be_bytes().to_vec();
        b.extend(random);
        b.push(0);
        b.extend(self.ciphers[0].to_be_bytes());
        b.push(0);
        let exts = self.ext_bytes();
        b.extend((exts.len() as u16).to_be_bytes());
        b.extend(exts);
        b
    }
}

fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type];
    m.extend(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend(body);
    m
}

fn record(content: u8, fragment: &[u8]) -> Vec<u8> {
    let mut r = vec![content, 3, 1];
    r.extend((fragment.len() as u16).to_be_bytes());
    r.extend(fragment);
    r
}

fn client_hello(h: &HelloBuilder) -> ClientHello {
    match parse_first_hello(&record(22, &handshake(1, &h.client_body()))) {
        Ok(Message::ClientHello(c)) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_client_extension_palisade_reads() {
    let h = HelloBuilder::new()
        .sni("example.org")
        .alpn(&[b"h2", b"http/1.1"])
        .ext(10, vec16(&[0x2a2a, 0x11ec, 29, 23]))
        .ext(11, vec![2, 0, 1])
        .ext(13, vec16(&[0x0403, 0x0804]))
        .ext(51, {
            let mut ks = Vec::new();
            ks.extend([0x2a, 0x2a, 0, 1, 0]);
            ks.extend([0x11, 0xec, 0x04, 0xc0]);
            ks.extend(vec![0xab; 1216]);
            ks.extend([0, 29, 0, 32]);
            ks.extend([0xcd; 32]);
            let mut b = (ks.len() as u16).to_be_bytes().to_vec();
            b.extend(ks);
            b
        })
        .ext(43, vec![6, 0x7a, 0x7a, 3, 4, 3, 3])
        .ext(45, vec![1, 1])
        .ext(0xfafa, vec![]);
    let c = client_hello(&h);
    assert_eq!(c.legacy_version, ProtocolVersion::TLS12);
    assert_eq!(c.session_id_len, 32);
    assert_eq!(c.ciphers, vec![0x1301, 0xc02f]);
    assert_eq!(c.compression_methods, vec![0]);
    assert_eq!(
        c.extensions.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![0, 16, 10, 11, 13, 51, 43, 45, 0xfafa]
    );
    assert_eq!(c.sni.as_deref(), Some(&b"example.org"[..]));
    assert_eq!(c.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(
        c.supported_groups,
        vec![
            NamedGroup(0x2a2a),
            NamedGroup::X25519_MLKEM768,
            NamedGroup::X25519,
            NamedGroup::SECP256R1
        ]
    );
    assert_eq!(c.ec_point_formats, vec![0, 1]);
    assert_eq!(
        c.sig_algs,
        vec![SignatureScheme(0x0403), SignatureScheme(0x0804)]
    );
    assert_eq!(
        c.key_share_groups,
        vec![
            NamedGroup(0x2a2a),
            NamedGroup::X25519_MLKEM768,
            NamedGroup::X25519
        ]
    );
    assert_eq!(c.supported_versions.len(), 3);
    assert_eq!(c.max_version(), ProtocolVersion::TLS13, "GREASE never wins");
    assert_eq!(c.psk_modes, vec![1]);
    assert!(c.anomalies.is_empty(), "{:?}", c.anomalies);

    let j = fingerprint::ja3(&c).unwrap();
    assert_eq!(
        j.string,
        "771,4865-49199,0-16-10-11-13-51-43-45,4588-29-23,0-1"
    );
    let j4 = fingerprint::ja4(&c, Transport::Tcp).unwrap();
    assert!(j4.ja4.starts_with("t13d0208h2_"), "{}", j4.ja4);
}

#[test]
fn a_broken_extension_is_flagged_and_the_rest_still_read() {
    let h = HelloBuilder::new()
        .ext(13, vec![0, 3, 4, 3, 8]) // odd-length list
        .sni("after.example")
        .ext(10, vec16(&[29]))
        .ext(10, vec16(&[23]));
    let c = client_hello(&h);
    assert_eq!(
        c.anomalies,
        vec![
            Anomaly::MalformedExtension(ExtensionType::SIGNATURE_ALGORITHMS),
            Anomaly::DuplicateExtension(ExtensionType::SUPPORTED_GROUPS)
        ]
    );
    assert!(c.sig_algs.is_empty());
    assert_eq!(c.sni.as_deref(), Some(&b"after.example"[..]));
    assert_eq!(
        c.supported_groups,
        vec![NamedGroup::X25519],
        "the first one counts"
    );
    assert_eq!(c.extensions.len(), 4, "all listed");
}

#[test]
fn an_extension_block_cut_short_keeps_what_came_before() {
    let h = HelloBuilder::new()
        .sni("kept.example")
        .ext(10, vec16(&[29, 23]));
    let mut body = h.client_body();
    body.truncate(body.len() - 3);
    let c = parse_client_hello(&body).unwrap();
    assert_eq!(c.anomalies, vec![Anomaly::ExtensionsTruncated]);
    assert_eq!(c.sni.as_deref(), Some(&b"kept.example"[..]));
    assert_eq!(c.extensions, vec![ExtensionType::SERVER_NAME]);
    // Bytes after the block.
    let mut body = h.client_body();
    body.extend([1, 2, 3]);
    assert_eq!(
        parse_client_hello(&body).unwrap().anomalies,
        vec![Anomaly::TrailingBytes]
    );
}

#[test]
fn mandatory_fields_must_be_there() {
    let body = HelloBuilder::new().client_body();
    for n in 0..(2 + 32 + 1 + 32 + 2 + 4 + 2) {
        assert_eq!(
            parse_client_hello(&body[..n]).map(|_| ()),
            Err(TlsError::Truncated),
            "prefix {n}"
        );
    }
    // Without extensions (allowed before TLS 1.3).
    let mut b = body[..2 + 32 + 1 + 32 + 2 + 4 + 2].to_vec();
    assert!(parse_client_hello(&b).is_ok());
    b[2 + 32 + 1 + 32 + 1] = 3; // odd cipher list length
    assert!(parse_client_hello(&b).is_err());
}

#[test]
fn a_hello_over_many_records_and_segments() {
    let h = HelloBuilder::new()
        .sni("split.example")
        .ext(21, vec![0; 1500]);
    let msg = handshake(1, &h.client_body());
    // Three records, then fed one byte at a time.
    let mut bytes = Vec::new();
    for part in msg.chunks(700) {
        bytes.extend(record(22, part));
    }
    let mut s = HandshakeStream::new();
    let mut got = Vec::new();
    for b in &bytes {
        got.extend(s.push(std::slice::from_ref(b)));
        assert!(s.buffered() <= bytes.len());
    }
    assert_eq!(got.len(), 1);
    assert!(
        matches!(parse_message(&got[0]), Ok(Message::ClientHello(c)) if c.sni.as_deref() == Some(&b"split.example"[..]))
    );
    assert_eq!(s.state(), StreamState::Open);
}

#[test]
fn hello_retry_request_then_second_client_hello_behind_ccs() {
    let first = HelloBuilder::new()
        .ext(43, vec![2, 3, 4])
        .ext(51, vec![0, 0]);
    let second = HelloBuilder::new()
        .ext(43, vec![2, 3, 4])
        .ext(51, {
            let mut b = vec![0, 36, 0, 23, 0, 32];
            b.extend([1; 32]);
            b
        })
        .ext(44, vec![0, 2, 0xaa, 0xbb]);
    let mut client = record(22, &handshake(1, &first.client_body()));
    client.extend(record(20, &[1]));
    client.extend(record(22, &handshake(1, &second.client_body())));
    client.extend(record(23, &[0xee; 40])); // encrypted Finished
    let (msgs, state) = messages(&client);
    assert_eq!(msgs.len(), 2);
    assert_eq!(state, StreamState::Encrypted);
    let Message::ClientHello(c2) = &msgs[1] else {
        panic!()
    };
    assert!(c2.has(ExtensionType::COOKIE));
    assert_eq!(c2.key_share_groups, vec![NamedGroup::SECP256R1]);

    let hrr = HelloBuilder::new().ext(43, vec![3, 4]).ext(51, vec![0, 23]);
    let mut server = record(
        22,
        &handshake(2, &hrr.server_body(hello::HELLO_RETRY_REQUEST_RANDOM)),
    );
    server.extend(record(20, &[1]));
    let (msgs, _) = messages(&server);
    let Message::ServerHello(s) = &msgs[0] else {
        panic!()
    };
    assert!(s.hello_retry_request);
    assert_eq!(s.key_share_group, Some(NamedGroup::SECP256R1));
    assert_eq!(s.version(), ProtocolVersion::TLS13);
}

#[test]
fn tls12_encrypted_finished_after_ccs_is_not_read() {
    let mut client = record(22, &handshake(16, &[0, 1, 2]));
    client.extend(record(20, &[1]));
    // An encrypted Finished that happens to start with 1 (ClientHello) but does not fit.
    let mut fin = vec![1, 0, 0, 5];
    fin.extend([0x55; 36]);
    client.extend(record(22, &fin));
    let (msgs, state) = messages(&client);
    assert_eq!(msgs, vec![Message::Other(16)]);
    assert_eq!(state, StreamState::Encrypted);
}

#[test]
fn not_tls_fails_the_stream() {
    let mut s = HandshakeStream::new();
    assert!(s.push(b"GET / HTTP/1.1\r\n").is_empty());
    assert!(matches!(s.state(), StreamState::Failed(_)));
    assert_eq!(
        parse_first_hello(b"\x16\x03\x01\xff\xff").map(|_| ()),
        Err(TlsError::BadRecord)
    );
    assert_eq!(
        parse_first_hello(b"\x16\x03\x01\x00\x04\x01\xff\xff\xff").map(|_| ()),
        Err(TlsError::MessageTooLong)
    );
}

/// The corpus lines of `testdata/expected.jsonl`, keyed by pcap stem.
fn expected(stem: &str) -> Value {
    EXPECTED
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["pcap"].as_str().unwrap().contains(&format!("/{stem}.")))
        .unwrap_or_else(|| panic!("no expected line for {stem}"))
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

#[test]
fn real_client_hellos_match_the_corpus() {
    for (name, bytes) in STREAMS.iter().filter(|(n, _)| n.ends_with(".client.bin")) {
        let stem = name.trim_end_matches(".client.bin");
        let want = expected(stem);
        let Ok(Message::ClientHello(c)) = parse_first_hello(bytes) else {
            panic!("{name}: no ClientHello")
        };
        let ctx = format!("{name}: {want}");
        assert!(c.anomalies.is_empty(), "{ctx}: {:?}", c.anomalies);
        assert_eq!(
            format!("0x{:04x}", c.legacy_version.0),
            want["client_version"],
            "{ctx}"
        );
        assert_eq!(
            c.ciphers.iter().map(|v| u64::from(*v)).collect::<Vec<_>>(),
            u64s(&want["ciphers"]),
            "{ctx}"
        );
        assert_eq!(
            c.extensions
                .iter()
                .map(|v| u64::from(v.0))
                .collect::<Vec<_>>(),
            u64s(&want["extensions"]),
            "{ctx}"
        );
        if let Some(sni) = want["sni"].as_str() {
            assert_eq!(c.sni.as_deref(), Some(sni.as_bytes()), "{ctx}");
        }
        if let Some(alpn) = want["alpn"].as_array() {
            assert_eq!(c.alpn.len(), alpn.len(), "{ctx}");
        }
        if let Some(versions) = want["supported_versions"].as_array() {
            let got: Vec<String> = c
                .supported_versions
                .iter()
                .map(|v| format!("0x{:04x}", v.0))
                .collect();
            assert_eq!(&got, versions, "{ctx}");
        }
        match (fingerprint::ja3(&c), want["ja3_string"].as_str()) {
            (Some(j), Some(s)) => {
                assert_eq!(j.string, s, "{ctx}");
                assert_eq!(j.hash, want["ja3_hash"], "{ctx}");
            }
            (None, None) => assert!(c.sslv2, "{ctx}"),
            (got, want) => panic!("{ctx}: JA3 {got:?} vs {want:?}"),
        }
        if let Some(ja4) = want["ja4"].as_str() {
            let f = fingerprint::ja4(&c, Transport::Tcp).unwrap();
            assert_eq!(f.ja4, ja4, "{ctx}");
            if let Some(r) = want["ja4_r"].as_str() {
                assert_eq!(f.ja4_r, r, "{ctx}");
            }
        }
    }
}

#[test]
fn sslv2_compatible_hello() {
    let (msgs, _) = messages(stream("sv_sslv2-compatible-hello.client.bin"));
    let Some(Message::ClientHello(c)) = msgs.first() else {
        panic!("{msgs:?}")
    };
    assert!(c.sslv2);
    assert_eq!(c.legacy_version, ProtocolVersion::TLS10);
    assert!(c.ciphers.is_empty());
    assert!(
        c.sslv2_cipher_specs.contains(&0x00_00_04),
        "{:x?}",
        c.sslv2_cipher_specs
    );
    assert!(fingerprint::ja3(c).is_none() && fingerprint::ja4(c, Transport::Tcp).is_none());
    // The TLS 1.0 server answers with a normal record layer.
    let (msgs, _) = messages(stream("sv_sslv2-compatible-hello.server.bin"));
    let Some(Message::ServerHello(s)) = msgs.first() else {
        panic!("{msgs:?}")
    };
    assert_eq!(s.version(), ProtocolVersion::TLS10);
}

#[test]
fn tls12_server_flight_with_its_certificate_chain() {
    let (msgs, state) = messages(stream("sv_tls12-github.server.bin"));
    let Some(Message::ServerHello(s)) = msgs.first() else {
        panic!("{msgs:?}")
    };
    assert_eq!(s.version(), ProtocolVersion::TLS12);
    assert!(!s.hello_retry_request);
    let Some(Message::Certificate(chain)) = msgs.get(1) else {
        panic!("{msgs:?}")
    };
    assert!(chain.len() >= 2, "leaf and intermediate");
    assert_eq!(chain[0].first(), Some(&0x30), "DER SEQUENCE");
    assert!(
        matches!(msgs.last(), Some(Message::Other(stream::SERVER_HELLO_DONE)))
            || state != StreamState::Open
    );
}

#[test]
fn tls13_server_hello_then_encrypted() {
    let (msgs, state) = messages(stream("sv_tls13-chrome-grease-tcp-and-quic.server.bin"));
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let Message::ServerHello(s) = &msgs[0] else {
        panic!()
    };
    assert_eq!(s.version(), ProtocolVersion::TLS13);
    assert!(s.key_share_group.is_some());
    assert_eq!(state, StreamState::Encrypted);
}

#[test]
fn every_split_of_a_real_stream_gives_the_same_messages() {
    for (name, bytes) in STREAMS {
        let mut whole = HandshakeStream::new();
        let want = whole.push(bytes);
        for cut in (1..bytes.len()).step_by(97) {
            let mut s = HandshakeStream::new();
            let mut got = s.push(&bytes[..cut]);
            got.extend(s.push(&bytes[cut..]));
            assert_eq!(got, want, "{name} cut at {cut}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut s = HandshakeStream::new();
        for raw in s.push(&bytes) {
            let _ = parse_message(&raw);
        }
        let _ = parse_client_hello(&bytes);
        let _ = parse_server_hello(&bytes);
        let _ = hello::parse_sslv2_client_hello(&bytes);
    }

    #[test]
    fn mutated_real_hellos_never_panic(
        which in 0..STREAMS.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = STREAMS[which].1.to_vec();
        for (at, b) in edits {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        let mut s = HandshakeStream::new();
        for raw in s.push(&bytes) {
            if let Ok(Message::ClientHello(c)) = parse_message(&raw) {
                let _ = fingerprint::ja3(&c);
                let _ = fingerprint::ja4(&c, Transport::Tcp);
                let _ = crate::event::client(&c, Transport::Tcp);
            }
        }
    }
}

/// One JSON object written by `fill` (the hand-written writers' test harness).
fn written(fill: impl FnOnce(&mut palisade_worker_runtime::json::JsonWriter<'_>)) -> String {
    let mut out = Vec::new();
    let mut w = palisade_worker_runtime::json::JsonWriter::new(&mut out);
    w.begin_object();
    fill(&mut w);
    w.end_object();
    String::from_utf8(out).unwrap()
}

/// The hot path writes `tls` events by hand (`event::write_tls_event`): for every hello and
/// certificate of the test streams, with and without the optional fields the worker sets,
/// the bytes are those serde writes for the same structs (keys, order, omissions).
#[test]
fn hand_written_json_is_serde_s() {
    use crate::event;
    let exact = |name: &str, body: &event::TlsBody, vendor: &event::TlsVendor| {
        let serde = serde_json::to_string(body).unwrap();
        assert_eq!(
            written(|w| body.write(w, "tls")),
            format!("{{\"tls\":{serde}}}"),
            "{name}"
        );
        let serde = serde_json::to_string(vendor).unwrap();
        assert_eq!(written(|w| vendor.write_fields(w)), serde, "{name}");
    };
    let mut checked = 0;
    for (name, bytes) in STREAMS {
        let (msgs, _) = messages(bytes);
        let mut server: Option<(event::TlsBody, event::TlsVendor)> = None;
        for m in msgs {
            let (mut body, mut vendor) = match m {
                Message::ClientHello(h) => event::client(&h, Transport::Tcp),
                Message::ServerHello(h) => event::server(&h),
                Message::Certificate(certs) => {
                    let Some((mut body, vendor)) = server.take() else {
                        continue;
                    };
                    let info = crate::parse::certificate::cert_info(&certs[0]).0;
                    event::certificate(&mut body, info);
                    (body, vendor)
                }
                Message::Other(_) => continue,
            };
            if body.server_handshake.is_some() {
                server = Some((body.clone(), vendor.clone()));
            }
            exact(name, &body, &vendor);
            // The optional fields the worker sets on some hellos.
            body.sni.get_or_insert_with(|| "a\\x00b\"c".into());
            vendor.hello_index = Some(2);
            vendor.incomplete = Some("hello_incomplete");
            vendor.hello_retry_request = true;
            exact(name, &body, &vendor);
            checked += 1;
        }
    }
    // 11 streams: 7 client hellos, 4 server hellos, 3 certificates.
    assert_eq!(checked, 14, "hellos and certificates checked");
}

/// The same for `quic` events (`event::write_quic_event`): every hello of the test streams
/// laid out as a QUIC hello, client and server, with and without the server's SCID.
#[test]
fn hand_written_quic_json_is_serde_s() {
    use crate::{conn::Hello, event, quic::packet::Version};
    let mut checked = 0;
    for (name, bytes) in STREAMS {
        for m in messages(bytes).0 {
            let hello = match m {
                Message::ClientHello(h) => Hello::Client(h),
                Message::ServerHello(h) => Hello::Server(h, Some(b"a.example".to_vec()), None),
                _ => continue,
            };
            for (version, server_scid) in [(Version::V1, None), (Version::V2, Some(&[9u8, 8][..]))]
            {
                let (body, vendor) = event::quic(&hello, version, [&[1, 2], &[3]], server_scid);
                let serde = serde_json::to_string(&body).unwrap();
                assert_eq!(
                    written(|w| body.write(w, "quic")),
                    format!("{{\"quic\":{serde}}}"),
                    "{name}"
                );
                let serde = serde_json::to_string(&vendor).unwrap();
                assert_eq!(written(|w| vendor.write_fields(w)), serde, "{name}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 22, "11 hellos, two ways each");
}
