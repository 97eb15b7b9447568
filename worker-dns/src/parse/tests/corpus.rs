//! Real messages from `testdata/` (extracted from the shared corpus pcaps)
//! checked against the corpus' expected values, plus the broken samples.

use std::net::Ipv6Addr;

use serde_json::{Value, json};

use crate::parse::{
    Class, ErrorKind, Message, Opcode, ParseError, Rdata, RrType, Section, parse_message,
    parse_message_partial,
};

macro_rules! testdata {
    ($($file:literal),* $(,)?) => {
        &[$(($file, include_bytes!(concat!("../../../testdata/", $file)) as &[u8])),*]
    };
}

/// Every real capture, with what strict parsing says about it.
pub(super) const CAPTURES: &[(&str, &[u8])] = testdata![
    "malformed_sv_dns-answer-emptydata.f4.bin",
    "malformed_sv_dns-corrupt-additionals.f2.bin",
    "malformed_sv_dns-forward-pointer.f1.bin",
    "malformed_sv_dns-forward-pointer.f2.bin",
    "malformed_sv_dns-udp-junkrequest-first.f1.bin",
    "malformed_sv_dns-udp-junkrequest-first.f4.bin",
    "sv_dns-additionals-cname.f2.bin",
    "sv_dns-invalid-opcode.f2.bin",
    "sv_dns-notify-opcode.f1.bin",
    "sv_dns-ptr.f2.bin",
    "sv_dns-sshfp.f2.bin",
    "sv_dns-tcp-keywords.f9.bin",
    "sv_dns-udp-a-aaaa-mx.f2.bin",
    "sv_dns-udp-a-aaaa-mx.f4.bin",
    "sv_dns-udp-a-aaaa-mx.f6.bin",
    "sv_dns-udp-a-txt.f1.bin",
    "sv_dns-udp-a-txt.f2.bin",
    "sv_dns-udp-dig.f2.bin",
    "sv_dns-udp-null.f2.bin",
    "sv_dns-udp-nxdomain-soa.f2.bin",
    "sv_dns-udp-srv.f2.bin",
    "sv_dns-with-additionals.f2.bin",
    "sv_dns-z-bit.f1.bin",
    "sv_dns-z-flag-fp.f3.bin",
];

/// Hand-made samples: broken on purpose, and one HTTPS answer (the corpus
/// has none).
pub(super) const HANDMADE: &[(&str, &[u8])] = testdata![
    "broken-mutual-pointers.bin",
    "broken-name-too-long.bin",
    "broken-self-pointer.bin",
    "broken-svcb-key-order.bin",
    "handmade-https.bin",
];

const EXPECTED: &str = include_str!("../../../testdata/expected.jsonl");

/// Captures that strict parsing rejects; every other one must parse.
const REJECTED: &[(&str, ErrorKind, Section)] = &[
    // The message ends in an OPT record announcing 258 bytes of rdata.
    (
        "malformed_sv_dns-corrupt-additionals.f2.bin",
        ErrorKind::Truncated,
        Section::Additional,
    ),
    // Not DNS (SNMP): qdcount 816.
    (
        "malformed_sv_dns-udp-junkrequest-first.f1.bin",
        ErrorKind::TooManyRecords,
        Section::Question,
    ),
    (
        "broken-mutual-pointers.bin",
        ErrorKind::PointerLoop,
        Section::Answer,
    ),
    (
        "broken-name-too-long.bin",
        ErrorKind::NameTooLong,
        Section::Answer,
    ),
    (
        "broken-self-pointer.bin",
        ErrorKind::PointerLoop,
        Section::Question,
    ),
    (
        "broken-svcb-key-order.bin",
        ErrorKind::BadSvcParam,
        Section::Answer,
    ),
];

/// Corpus fields we knowingly do not reproduce, and why.
const KNOWN_DIFFERENCES: &[(&str, &[&str], &str)] = &[(
    "malformed_sv_dns-answer-emptydata.f4.bin",
    &["qdcount", "queries"],
    "UPDATE: tshark counts the zone section apart (dns.count.zones) and reports qdcount 0 \
         and no queries; on the wire the count is 1 and the zone parses as a question",
)];

/// Top-level corpus fields about the capture, not the message.
const NOT_MESSAGE_FIELDS: &[&str] = &[
    "pcap",
    "frame",
    "src_ip",
    "dst_ip",
    "src_port",
    "dst_port",
    "transport",
    "msg_index",
    "source",
    "peer_fields",
    "disagreements",
    "note",
    "tshark_malformed",
];

fn capture(file: &str) -> &'static [u8] {
    CAPTURES
        .iter()
        .chain(HANDMADE)
        .find(|(name, _)| *name == file)
        .map(|(_, bytes)| *bytes)
        .unwrap_or_else(|| panic!("{file} is not in testdata"))
}

/// The corpus record's fields, computed from a parsed message.
fn render(m: &Message) -> Value {
    let h = &m.header;
    let first = m.questions.first();
    let answers: Vec<Value> = m
        .answers
        .iter()
        .map(|r| {
            let mut a = json!({"name": r.name.to_string(), "type": r.rtype.name(), "ttl": r.ttl});
            let logged = matches!(
                r.data,
                Rdata::A(_)
                    | Rdata::Aaaa(_)
                    | Rdata::Cname(_)
                    | Rdata::Ns(_)
                    | Rdata::Ptr(_)
                    | Rdata::Mx { .. }
                    | Rdata::Txt(_)
                    | Rdata::Soa(_)
                    | Rdata::Srv(_)
                    | Rdata::Null(_)
            );
            if let (true, Some(obj)) = (logged, a.as_object_mut()) {
                obj.insert("data".into(), r.data.to_presentation().into());
            }
            if let (Rdata::Mx { preference, .. }, Some(obj)) = (&r.data, a.as_object_mut()) {
                obj.insert("preference".into(), (*preference).into());
            }
            a
        })
        .collect();
    json!({
        "id": h.id,
        "qr": if h.qr { "response" } else { "query" },
        "opcode": h.opcode.0,
        "flags": format!("{:#06x}", h.flags),
        "rcode": m.rcode().name(),
        "qname": first.map(|q| q.name.to_string()),
        "qtype": first.map(|q| q.qtype.name()),
        "qdcount": h.qdcount,
        "queries": m.questions.iter().map(|q| json!({"name": q.name.to_string(), "type": q.qtype.name()})).collect::<Vec<_>>(),
        "answers": answers,
        "ancount": h.ancount,
    })
}

#[test]
fn captures_match_the_corpus() {
    let mut checked = Vec::new();
    for line in EXPECTED.lines() {
        let expected: Value = serde_json::from_str(line).expect("expected.jsonl is JSON lines");
        let pcap = expected
            .get("pcap")
            .and_then(Value::as_str)
            .expect("pcap is a string");
        let stem = pcap
            .rsplit('/')
            .next()
            .and_then(|f| f.strip_suffix(".pcap"))
            .expect("pcap path");
        let frame = expected
            .get("frame")
            .and_then(Value::as_u64)
            .expect("frame is a number");
        let file = format!("{stem}.f{frame}.bin");
        let partial = parse_message_partial(capture(&file)).expect("every capture has a header");
        let ours = render(&partial.message);
        let skipped = KNOWN_DIFFERENCES
            .iter()
            .find(|(f, ..)| *f == file)
            .map_or(&[][..], |(_, fields, _)| *fields);
        for (key, want) in expected.as_object().expect("a JSON object") {
            if NOT_MESSAGE_FIELDS.contains(&key.as_str()) || skipped.contains(&key.as_str()) {
                continue;
            }
            assert_eq!(ours.get(key), Some(want), "{file}: field {key}");
        }
        checked.push(file);
    }
    checked.sort();
    let mut all: Vec<String> = CAPTURES.iter().map(|(f, _)| (*f).to_owned()).collect();
    all.sort();
    assert_eq!(
        checked, all,
        "expected.jsonl and CAPTURES list the same messages"
    );
}

#[test]
fn strict_parsing_accepts_exactly_the_well_formed_samples() {
    for (file, bytes) in CAPTURES.iter().chain(HANDMADE) {
        let want = REJECTED
            .iter()
            .find(|(f, ..)| f == file)
            .map(|&(_, kind, section)| ParseError::new(kind, section));
        assert_eq!(parse_message(bytes).err(), want, "{file}");
    }
}

#[test]
fn forward_pointer_query_gives_both_questions() {
    // Question 1 is only `c0 12`, a pointer forward to question 2's name.
    let bytes = capture("malformed_sv_dns-forward-pointer.f1.bin");
    assert_eq!(bytes.get(12..14), Some(&[0xc0, 0x12][..]));
    let m = parse_message(bytes).expect("forward pointers are followed");
    let h = &m.header;
    assert_eq!(
        (h.id, h.qr, h.opcode, h.flags, h.qdcount, h.ancount),
        (36356, false, Opcode::QUERY, 0x0100, 2, 0)
    );
    let questions: Vec<(String, RrType, Class)> = m
        .questions
        .iter()
        .map(|q| (q.name.to_string(), q.qtype, q.qclass))
        .collect();
    let q = ("codemonkey.net".to_owned(), RrType::A, Class::IN);
    assert_eq!(questions, [q.clone(), q]);
    assert!(m.answers.is_empty() && m.authority.is_empty() && m.additional.is_empty());
    let partial = parse_message_partial(bytes).expect("header");
    assert!(partial.is_complete());
    assert_eq!(partial.message, m);
    // The values the corpus states (Suricata's, for qname, qtype, queries).
    let rendered = render(&m);
    for (key, want) in [
        ("id", json!(36356)),
        ("qr", json!("query")),
        ("opcode", json!(0)),
        ("flags", json!("0x0100")),
        ("qname", json!("codemonkey.net")),
        ("qtype", json!("A")),
        ("qdcount", json!(2)),
        (
            "queries",
            json!([
                {"name": "codemonkey.net", "type": "A"},
                {"name": "codemonkey.net", "type": "A"}
            ]),
        ),
    ] {
        assert_eq!(rendered.get(key), Some(&want), "{key}");
    }
}

#[test]
fn corrupt_additionals_still_yield_the_answers() {
    let partial = parse_message_partial(capture("malformed_sv_dns-corrupt-additionals.f2.bin"))
        .expect("header");
    let m = &partial.message;
    assert_eq!(
        (m.questions.len(), m.answers.len(), m.additional.len()),
        (1, 2, 0)
    );
    assert_eq!(partial.error.map(|e| e.section), Some(Section::Additional));
}

#[test]
fn referral_with_dnssec_records_and_edns() {
    let m = parse_message(capture("sv_dns-with-additionals.f2.bin")).expect("well formed");
    let authority: Vec<(String, String, String)> = m
        .authority
        .iter()
        .map(|r| {
            (
                r.name.to_string(),
                r.rtype.to_string(),
                r.data.to_presentation(),
            )
        })
        .collect();
    let ns = |n: &str| ("io".to_owned(), "NS".to_owned(), n.to_owned());
    assert_eq!(
        authority.get(..4),
        Some(
            &[
                ns("a0.nic.io"),
                ns("a2.nic.io"),
                ns("b0.nic.io"),
                ns("c0.nic.io")
            ][..]
        )
    );
    let types: Vec<RrType> = m.authority.iter().skip(4).map(|r| r.rtype).collect();
    assert_eq!(types, [RrType::DS, RrType::RRSIG]);
    assert!(
        matches!(m.authority.get(5).map(|r| &r.data), Some(Rdata::Unknown(raw)) if raw.len() == 275)
    );
    let additional: Vec<String> = m
        .additional
        .iter()
        .take(2)
        .map(|r| r.data.to_presentation())
        .collect();
    assert_eq!(additional, ["65.22.160.17", "2a01:8840:9e::17"]);
    let edns = m.edns().expect("OPT record");
    assert_eq!(
        (
            edns.udp_payload_size,
            edns.version,
            edns.dnssec_ok,
            edns.options.len()
        ),
        (1472, 0, true, 0)
    );
}

#[test]
fn nxdomain_soa_in_authority() {
    let m = parse_message(capture("sv_dns-udp-nxdomain-soa.f2.bin")).expect("well formed");
    let soa = m.authority.first().expect("SOA");
    assert_eq!(
        (soa.name.to_string().as_str(), soa.rtype),
        ("oisf.net", RrType::SOA)
    );
    assert_eq!(
        soa.data.to_presentation(),
        "ns-110.awsdns-13.com awsdns-hostmaster.amazon.com 1 7200 900 1209600 86400"
    );
    assert_eq!(m.edns().map(|e| e.udp_payload_size), Some(512));
}

#[test]
fn sshfp_fingerprints() {
    let m = parse_message(capture("sv_dns-sshfp.f2.bin")).expect("well formed");
    let fps: Vec<String> = m.answers.iter().map(|r| r.data.to_presentation()).collect();
    assert_eq!(
        fps,
        [
            "1 1 198c34a92fc0b2ab1da52b688c2f191d2d960c09",
            "3 1 7a667d57b6d5f559f136fa9537605081452930ef",
        ]
    );
    // 0x8380: a truncated (TC) recursive answer.
    assert!(m.header.qr && m.header.tc && m.header.rd && m.header.ra && !m.header.ad);
}

#[test]
fn dns_update_with_tsig() {
    let m =
        parse_message(capture("malformed_sv_dns-answer-emptydata.f4.bin")).expect("well formed");
    assert_eq!(
        (m.header.opcode, m.header.opcode.name().as_ref()),
        (Opcode::UPDATE, "UPDATE")
    );
    let zone = m.questions.first().expect("zone");
    assert_eq!(
        (zone.name.to_string().as_str(), zone.qtype),
        ("ad.nwra.com", RrType::SOA)
    );
    let update = m.authority.first().expect("update record");
    assert_eq!(
        (update.name.to_string().as_str(), update.rtype, update.class),
        ("otter.ad.nwra.com", RrType::ANY, Class::ANY)
    );
    assert_eq!(update.data, Rdata::Empty);
    let tsig = m.additional.first().expect("TSIG");
    assert_eq!((tsig.rtype.name().as_ref(), tsig.rdlength), ("TSIG", 54));
    assert_eq!(tsig.name.to_string(), "2431453480.sig-ad-bld01.ad.nwra.com");
}

#[test]
fn notify_carries_an_soa_answer() {
    let m = parse_message(capture("sv_dns-notify-opcode.f1.bin")).expect("well formed");
    assert_eq!(m.header.opcode, Opcode::NOTIFY);
    let soa = m.answers.first().expect("SOA");
    assert_eq!(
        soa.data.to_presentation(),
        "ns3.bortzmeyer.org hostmaster.bortzmeyer.org 2013092306 7200 3600 604800 43200"
    );
}

#[test]
fn z_bit_query() {
    let m = parse_message(capture("sv_dns-z-bit.f1.bin")).expect("well formed");
    assert!(m.header.z && m.header.rd && !m.header.qr);
}

#[test]
fn handmade_https() {
    let m = parse_message(capture("handmade-https.bin")).expect("well formed");
    let r = m.answers.first().expect("HTTPS");
    assert_eq!(
        (r.rtype.name().as_ref(), r.data.to_presentation().as_str()),
        ("HTTPS", "1 . alpn=\"h2,h3\" ipv4hint=192.0.2.7")
    );
    let addr: Ipv6Addr = "::ffff:192.0.2.7".parse().expect("valid");
    assert_eq!(Rdata::Aaaa(addr).to_presentation(), "::ffff:192.0.2.7");
}
