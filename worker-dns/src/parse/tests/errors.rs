//! Every error reason, where it is reported, and what partial mode keeps.

use std::collections::HashSet;

use super::Msg;
use crate::parse::{
    ErrorKind, MAX_MESSAGE_LEN, MAX_RECORDS, ParseError, Section, parse_message,
    parse_message_partial,
};

fn err(kind: ErrorKind, section: Section) -> Result<(), ParseError> {
    Err(ParseError::new(kind, section))
}

fn strict(msg: &Msg) -> Result<(), ParseError> {
    msg.parse().map(|_| ())
}

/// A response with a question, an A answer, an NS authority record and an
/// OPT additional record: every section in use.
fn full() -> Msg {
    Msg::new(0xabcd, 0x8180, [1, 1, 1, 1])
        .question("www.example.com", 1)
        .answer(1, &[192, 0, 2, 1])
        .record(&[0xc0, 16], 2, 1, 3600, &[2, b'n', b's', 0xc0, 16])
        .record(&[0], 41, 1232, 0, &[0, 10, 0, 2, 0xaa, 0xbb])
}

#[test]
fn reasons_are_distinct_snake_case() {
    let all = [
        ErrorKind::Truncated,
        ErrorKind::MessageTooLong,
        ErrorKind::TooManyRecords,
        ErrorKind::BadLabelType,
        ErrorKind::PointerLoop,
        ErrorKind::TooManyPointers,
        ErrorKind::NameTooLong,
        ErrorKind::RdataLengthMismatch,
        ErrorKind::BadSvcParam,
        ErrorKind::TrailingBytes,
    ];
    let reasons: HashSet<&str> = all.iter().map(|k| k.reason()).collect();
    assert_eq!(reasons.len(), all.len());
    for reason in reasons {
        assert!(
            reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{reason}"
        );
    }
    let e = ParseError::new(ErrorKind::PointerLoop, Section::Authority);
    assert_eq!(e.reason(), "pointer_loop");
    assert_eq!(
        e.to_string(),
        "malformed DNS message: pointer_loop in the authority section"
    );
}

#[test]
fn the_full_message_parses() {
    let message = full().parse_ok();
    assert_eq!(message.header.id, 0xabcd);
    assert_eq!(
        [
            message.questions.len(),
            message.answers.len(),
            message.authority.len(),
            message.additional.len()
        ],
        [1; 4]
    );
    assert_eq!(
        message.authority.first().map(|r| r.data.to_presentation()),
        Some("ns.example.com".to_owned())
    );
}

#[test]
fn truncated_everywhere() {
    let msg = full();
    let bytes = msg.bytes();
    // Where each section starts: question 12, answer 33, authority 49,
    // additional 66, end 83.
    let starts = [
        (12, Section::Question),
        (33, Section::Answer),
        (49, Section::Authority),
        (66, Section::Additional),
    ];
    assert_eq!(bytes.len(), 83);
    for cut in 0..bytes.len() {
        let prefix = bytes.get(..cut).expect("cut is inside the message");
        let section = starts
            .iter()
            .rev()
            .find(|(start, _)| cut >= *start)
            .map_or(Section::Header, |&(_, s)| s);
        assert_eq!(
            parse_message(prefix).map(|_| ()),
            err(ErrorKind::Truncated, section),
            "cut at {cut}"
        );
    }
}

#[test]
fn short_header_has_no_partial_result() {
    assert_eq!(
        parse_message_partial(&[0; 11]).err(),
        Some(ParseError::new(ErrorKind::Truncated, Section::Header))
    );
    assert_eq!(
        parse_message_partial(&[]).err(),
        Some(ParseError::new(ErrorKind::Truncated, Section::Header))
    );
}

#[test]
fn message_too_long() {
    let mut bytes = full().bytes().to_vec();
    bytes.resize(MAX_MESSAGE_LEN + 1, 0);
    assert_eq!(
        parse_message(&bytes).map(|_| ()),
        err(ErrorKind::MessageTooLong, Section::Header)
    );
    assert!(parse_message_partial(&bytes).is_err());
}

#[test]
fn too_many_records() {
    let max = u16::try_from(MAX_RECORDS).expect("fits");
    // Questions alone over the limit: nothing after the header is read.
    let msg = Msg::new(1, 0, [max + 1, 0, 0, 0]);
    assert_eq!(
        strict(&msg),
        err(ErrorKind::TooManyRecords, Section::Question)
    );
    // The total over the limit in the additional section; questions kept.
    let msg = Msg::new(1, 0x8180, [1, 0, 0, max]).question("example.com", 1);
    assert_eq!(
        strict(&msg),
        err(ErrorKind::TooManyRecords, Section::Additional)
    );
    let partial = parse_message_partial(msg.bytes()).expect("header is there");
    assert_eq!(partial.message.questions.len(), 1);
    // Exactly the limit is allowed (and here simply runs out of bytes).
    let msg = Msg::new(1, 0x8180, [1, max - 1, 0, 0]).question("example.com", 1);
    assert_eq!(strict(&msg), err(ErrorKind::Truncated, Section::Answer));
}

#[test]
fn rdata_length_mismatch() {
    let cases: [(u16, &[u8]); 7] = [
        (1, &[1, 2, 3]),               // A too short
        (1, &[1, 2, 3, 4, 5]),         // A too long
        (28, &[0; 15]),                // AAAA too short
        (15, &[0]),                    // MX without exchange
        (5, &[0xc0, 12, 0]),           // CNAME with a byte after the name
        (6, &[0, 0, 0, 0, 0, 0]),      // SOA without its numbers
        (41, &[0, 10, 0, 9, 1, 2, 3]), // OPT option longer than the rdata
    ];
    for (rtype, rdata) in cases {
        let msg = Msg::response(1)
            .question("example.com", rtype)
            .answer(rtype, rdata);
        assert_eq!(
            strict(&msg),
            err(ErrorKind::RdataLengthMismatch, Section::Answer),
            "type {rtype} {rdata:?}"
        );
    }
    // rdlength past the end of the message is plain truncation.
    let msg = Msg::response(1)
        .question("example.com", 1)
        .raw(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4]);
    assert_eq!(strict(&msg), err(ErrorKind::Truncated, Section::Answer));
}

#[test]
fn bad_svc_params() {
    let cases: [&[u8]; 8] = [
        &[0, 3, 0, 2, 1, 187, 0, 1, 0, 3, 2, b'h', b'2'], // keys out of order
        &[0, 3, 0, 2, 1, 187, 0, 3, 0, 2, 1, 187],        // duplicate key
        &[0, 3, 0, 3, 1, 187, 0],                         // port with 3 bytes
        &[0, 3, 0, 1, 1],                                 // port with 1 byte
        &[0, 1, 0, 3, 3, b'h', b'2'],                     // alpn id overruns
        &[0, 1, 0, 1, 0],                                 // empty alpn id
        &[0, 4, 0, 5, 192, 0, 2, 1, 9],                   // ipv4hint not 4n
        &[0, 2, 0, 1, 0],                                 // no-default-alpn with a value
    ];
    for params in cases {
        let mut rdata = vec![0, 1, 0];
        rdata.extend_from_slice(params);
        let msg = Msg::response(1)
            .question("example.com", 65)
            .answer(65, &rdata);
        assert_eq!(
            strict(&msg),
            err(ErrorKind::BadSvcParam, Section::Answer),
            "params {params:?}"
        );
    }
    // A value running past the rdata is an rdata length problem.
    let msg = Msg::response(1)
        .question("example.com", 64)
        .answer(64, &[0, 1, 0, 0, 3, 0, 4, 1, 187]);
    assert_eq!(
        strict(&msg),
        err(ErrorKind::RdataLengthMismatch, Section::Answer)
    );
}

#[test]
fn trailing_bytes() {
    let msg = full().raw(&[0]);
    assert_eq!(strict(&msg), err(ErrorKind::TrailingBytes, Section::End));
    let partial = parse_message_partial(msg.bytes()).expect("header is there");
    assert_eq!(partial.message, full().parse_ok());
    assert!(!partial.is_complete());
}

#[test]
fn errors_name_their_section_and_partial_keeps_earlier_sections() {
    let bad_label = [0x80, 0];
    let question = Msg::new(1, 0x8180, [1, 0, 0, 0]).raw(&bad_label);
    let answer = Msg::new(1, 0x8180, [1, 1, 0, 0])
        .question("example.com", 1)
        .raw(&bad_label);
    let authority = Msg::new(1, 0x8180, [1, 1, 1, 0])
        .question("example.com", 1)
        .answer(1, &[1, 2, 3, 4])
        .raw(&bad_label);
    let additional = Msg::new(1, 0x8180, [1, 1, 0, 1])
        .question("example.com", 1)
        .answer(1, &[1, 2, 3, 4])
        .raw(&bad_label);
    for (msg, section, kept) in [
        (question, Section::Question, [0, 0, 0]),
        (answer, Section::Answer, [1, 0, 0]),
        (authority, Section::Authority, [1, 1, 0]),
        (additional, Section::Additional, [1, 1, 0]),
    ] {
        assert_eq!(strict(&msg), err(ErrorKind::BadLabelType, section));
        let partial = parse_message_partial(msg.bytes()).expect("header is there");
        assert_eq!(
            partial.error,
            Some(ParseError::new(ErrorKind::BadLabelType, section))
        );
        let m = &partial.message;
        assert_eq!(
            [m.questions.len(), m.answers.len(), m.authority.len()],
            kept,
            "{section:?}"
        );
        assert!(m.additional.is_empty());
        assert_eq!(m.header.id, 1);
    }
}

#[test]
fn a_complete_partial_is_the_strict_result() {
    let partial = parse_message_partial(full().bytes()).expect("header is there");
    assert!(partial.is_complete());
    assert_eq!(partial.message, full().parse_ok());
}
