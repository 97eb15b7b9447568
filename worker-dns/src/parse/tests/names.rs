//! Name reading and presentation format.

use super::{Msg, wire_name};
use crate::parse::{ErrorKind, Name, ParseError, Section, name::MAX_POINTERS};

fn qname(msg: &Msg) -> Name {
    let message = msg.parse_ok();
    message
        .questions
        .into_iter()
        .next()
        .expect("one question")
        .name
}

fn question_error(msg: &Msg) -> ErrorKind {
    match msg.parse() {
        Err(ParseError {
            kind,
            section: Section::Question,
        }) => kind,
        other => panic!("expected a question error, got {other:?}"),
    }
}

#[test]
fn presentation_keeps_case_and_omits_the_trailing_dot() {
    let name = qname(&Msg::new(1, 0, [1, 0, 0, 0]).question("WwW.Example.COM", 1));
    assert_eq!(name.to_string(), "WwW.Example.COM");
    assert_eq!(format!("{name:?}"), "Name(\"WwW.Example.COM\")");
    assert_eq!(
        name.labels().collect::<Vec<_>>(),
        [&b"WwW"[..], b"Example", b"COM"]
    );
    assert_eq!(name.wire_len(), 17);
    assert!(!name.is_root());
}

#[test]
fn root_is_a_dot() {
    let name = qname(&Msg::new(1, 0, [1, 0, 0, 0]).question("", 2));
    assert!(name.is_root());
    assert_eq!((name.to_string().as_str(), name.wire_len()), (".", 1));
    assert_eq!(Name::root(), name);
}

#[test]
fn special_bytes_are_escaped() {
    let msg = Msg::new(1, 0, [1, 0, 0, 0])
        .raw(&[5, b'a', b'.', b'b', b' ', b'\\', 3, 0, 0x7f, 0xff, 0])
        .u16(1)
        .u16(1);
    assert_eq!(qname(&msg).to_string(), "a\\.b\\032\\\\.\\000\\127\\255");
}

#[test]
fn pointer_chains_are_followed() {
    // Q1 "example.com" at 12; Q2 "www" -> Q1; Q3 "a" -> Q2's "www" label -> Q1.
    let msg = Msg::new(1, 0, [3, 0, 0, 0]).question("example.com", 1);
    let q2 = msg.offset();
    let msg = msg.raw(&[3, b'w', b'w', b'w', 0xc0, 12]).u16(1).u16(1);
    let q2 = u8::try_from(q2).expect("small offset");
    let msg = msg.raw(&[1, b'a', 0xc0, q2]).u16(1).u16(1);
    let names: Vec<String> = msg
        .parse_ok()
        .questions
        .iter()
        .map(|q| q.name.to_string())
        .collect();
    assert_eq!(
        names,
        ["example.com", "www.example.com", "a.www.example.com"]
    );
}

#[test]
fn longest_label_and_longest_name_are_accepted() {
    let label63 = "x".repeat(63);
    let name = format!("{label63}.{label63}.{label63}.{}", "y".repeat(61));
    assert_eq!(wire_name(&name).len(), 255);
    let parsed = qname(&Msg::new(1, 0, [1, 0, 0, 0]).question(&name, 1));
    assert_eq!((parsed.to_string(), parsed.wire_len()), (name, 255));
}

#[test]
fn names_longer_than_255_octets_are_rejected() {
    let label63 = "x".repeat(63);
    let name = format!("{label63}.{label63}.{label63}.{}", "y".repeat(62));
    assert_eq!(wire_name(&name).len(), 256);
    assert_eq!(
        question_error(&Msg::new(1, 0, [1, 0, 0, 0]).question(&name, 1)),
        ErrorKind::NameTooLong
    );

    // Also when the excess comes through a pointer: 2 + 254 octets.
    let long = format!("{label63}.{label63}.{label63}.{}", "y".repeat(60));
    let msg = Msg::new(1, 0, [2, 0, 0, 0])
        .question(&long, 1)
        .raw(&[1, b'z', 0xc0, 12])
        .u16(1)
        .u16(1);
    assert_eq!(question_error(&msg), ErrorKind::NameTooLong);
}

#[test]
fn label_types_01_and_10_are_rejected() {
    for first in [0x40, 0x41, 0x7f, 0x80, 0xbf] {
        let msg = Msg::new(1, 0, [1, 0, 0, 0])
            .raw(&[first, 0, 0])
            .u16(1)
            .u16(1);
        assert_eq!(
            question_error(&msg),
            ErrorKind::BadLabelType,
            "label byte {first:#x}"
        );
    }
}

#[test]
fn self_pointer_is_a_loop() {
    let msg = Msg::new(1, 0, [1, 0, 0, 0]).raw(&[0xc0, 12]).u16(1).u16(1);
    assert_eq!(question_error(&msg), ErrorKind::PointerLoop);
    // A pointer back to its own name's first label.
    let msg = Msg::new(1, 0, [1, 0, 0, 0])
        .raw(&[1, b'a', 0xc0, 12])
        .u16(1)
        .u16(1);
    assert_eq!(question_error(&msg), ErrorKind::PointerLoop);
}

#[test]
fn two_pointers_at_each_other_are_a_loop() {
    // Answer 1 (NULL) carries P1 at 29 -> 31 and P2 at 31 -> 29. Answer 2's
    // owner enters them at `entry`.
    let build = |entry: u8| {
        Msg::new(1, 0x8180, [1, 2, 0, 0])
            .question("", 10)
            .record(&[0xc0, 12], 10, 1, 0, &[0xc0, 31, 0xc0, 29])
            .record(&[0xc0, entry], 1, 1, 0, &[1, 2, 3, 4])
    };
    let loop_in_answer = Err(ParseError {
        kind: ErrorKind::PointerLoop,
        section: Section::Answer,
    });
    // Entering at 31: 33 -> 31 -> 29, then P1 goes forward to 31, which this
    // name has already read.
    assert_eq!(build(31).parse().map(|_| ()), loop_in_answer);
    // Entering at 29: 33 -> 29 -> 31 (forward), then P2 back to 29.
    assert_eq!(build(29).parse().map(|_| ()), loop_in_answer);
}

#[test]
fn forward_then_back_into_the_own_label_is_a_loop() {
    // Q1 at 12 is "a" then a pointer forward to Q2's name at 20, which
    // points back at Q1's first label: a, a, a, ...
    let msg = Msg::new(1, 0, [2, 0, 0, 0])
        .raw(&[1, b'a', 0xc0, 20])
        .u16(1)
        .u16(1)
        .raw(&[0xc0, 12])
        .u16(1)
        .u16(1);
    assert_eq!(question_error(&msg), ErrorKind::PointerLoop);
    // Back into the middle of Q1's label ("a" read as a length byte): the
    // target is inside bytes already read, so it is a loop as well.
    let msg = Msg::new(1, 0, [2, 0, 0, 0])
        .raw(&[1, 1, 0xc0, 20])
        .u16(1)
        .u16(1)
        .raw(&[0xc0, 13])
        .u16(1)
        .u16(1);
    assert_eq!(question_error(&msg), ErrorKind::PointerLoop);
}

#[test]
fn forward_pointers_are_followed() {
    // The corpus' forward-pointer query: question 1 (at 12) points at
    // question 2's name (at 18).
    let msg = Msg::new(1, 0x0100, [2, 0, 0, 0])
        .raw(&[0xc0, 18])
        .u16(1)
        .u16(1);
    assert_eq!(msg.offset(), 18);
    let msg = msg.question("codemonkey.net", 1);
    let names: Vec<String> = msg
        .parse_ok()
        .questions
        .iter()
        .map(|q| q.name.to_string())
        .collect();
    assert_eq!(names, ["codemonkey.net", "codemonkey.net"]);

    // Labels before the pointer, and a forward chain that ends in a
    // backward one: "www" -> (forward) "mail" -> (back) Q1 "example.com".
    let msg = Msg::new(1, 0, [3, 0, 0, 0]).question("example.com", 1);
    let q2 = msg.offset();
    let q3 = u8::try_from(q2 + 10).expect("small offset");
    let msg = msg.raw(&[3, b'w', b'w', b'w', 0xc0, q3]).u16(1).u16(1);
    assert_eq!(msg.offset(), usize::from(q3));
    let msg = msg
        .raw(&[4, b'm', b'a', b'i', b'l', 0xc0, 12])
        .u16(1)
        .u16(1);
    let names: Vec<String> = msg
        .parse_ok()
        .questions
        .iter()
        .map(|q| q.name.to_string())
        .collect();
    assert_eq!(
        names,
        ["example.com", "www.mail.example.com", "mail.example.com"]
    );
}

#[test]
fn forward_pointers_out_of_the_message_are_truncated() {
    // Far beyond the end, just past it, exactly at its end, and to a label
    // that runs past it.
    let len = 12 + 2 + 4;
    let cases: [(&[u8], &[u8]); 4] = [
        (&[0xff, 0xff], &[]),
        (&[0xc0, len + 1], &[]),
        (&[0xc0, len], &[]),
        (&[0xc0, len], &[5, b'a', b'b']),
    ];
    for (name, tail) in cases {
        let msg = Msg::new(1, 0, [1, 0, 0, 0])
            .raw(name)
            .u16(1)
            .u16(1)
            .raw(tail);
        assert_eq!(
            msg.parse().map(|_| ()),
            Err(ParseError {
                kind: ErrorKind::Truncated,
                section: Section::Question
            }),
            "{name:02x?} {tail:02x?}"
        );
    }
}

#[test]
fn pointer_chains_are_bounded() {
    // Answer 1 (NULL) carries a chain of backward pointers in its rdata; the
    // owner of answer 2 enters it at its last pointer.
    let build = |chain: usize| {
        let msg = Msg::new(1, 0x8180, [1, 2, 0, 0]).question("", 10);
        let rdata_start = msg.offset() + 12;
        let mut rdata = vec![0xc0, 12];
        for i in 1..chain {
            let prev = u8::try_from(rdata_start + 2 * (i - 1)).expect("small offset");
            rdata.extend_from_slice(&[0xc0, prev]);
        }
        let last = u8::try_from(rdata_start + 2 * (chain - 1)).expect("small offset");
        msg.record(&[0xc0, 12], 10, 1, 0, &rdata)
            .record(&[0xc0, last], 1, 1, 0, &[1, 2, 3, 4])
    };
    // `chain` pointers in the rdata, plus the owner's own.
    let ok = build(MAX_POINTERS - 1).parse_ok();
    assert_eq!(ok.answers.get(1).map(|r| r.name.is_root()), Some(true));
    assert_eq!(
        build(MAX_POINTERS).parse(),
        Err(ParseError {
            kind: ErrorKind::TooManyPointers,
            section: Section::Answer
        })
    );
}

#[test]
fn forward_pointer_chains_are_bounded() {
    // The question's name is a pointer forward into the rdata of a NULL
    // answer (owned by the root), which holds a chain of forward pointers,
    // each to the next, the last one to a zero byte: `pointers` jumps in all.
    let build = |pointers: usize| {
        let msg = Msg::new(1, 0x8180, [1, 1, 0, 0]);
        let rdata_start = 12 + 6 + 11;
        let at = |i: usize| u8::try_from(rdata_start + 2 * i).expect("small offset");
        let mut rdata = Vec::new();
        for i in 1..pointers {
            rdata.extend_from_slice(&[0xc0, at(i)]);
        }
        rdata.push(0);
        let msg = msg.raw(&[0xc0, at(0)]).u16(1).u16(1);
        let msg = msg.record(&[0], 10, 1, 0, &rdata);
        assert_eq!(msg.offset(), rdata_start + 2 * (pointers - 1) + 1);
        msg
    };
    let ok = build(MAX_POINTERS).parse_ok();
    assert_eq!(ok.questions.first().map(|q| q.name.is_root()), Some(true));
    assert_eq!(
        build(MAX_POINTERS + 1).parse().map(|_| ()),
        Err(ParseError {
            kind: ErrorKind::TooManyPointers,
            section: Section::Question
        })
    );
}

#[test]
fn pointers_may_reach_outside_the_rdata_but_labels_may_not() {
    // CNAME whose inline label runs past rdlength (2) into the next bytes.
    let msg = Msg::response(1)
        .question("example.com", 5)
        .raw(&[0xc0, 12])
        .u16(5)
        .u16(1)
        .raw(&[0, 0, 0, 1])
        .u16(2)
        .raw(&[3, b'w', b'w', b'w', 0]);
    assert_eq!(
        msg.parse().map(|_| ()),
        Err(ParseError {
            kind: ErrorKind::RdataLengthMismatch,
            section: Section::Answer
        })
    );
}

#[test]
fn text_in_pieces_is_the_presentation_format() {
    // Every byte value in a label, escapes and plain runs mixed; and the root.
    let all: Vec<u8> = (0u8..=255).filter(|b| *b != 0).take(60).collect();
    let high: Vec<u8> = (120u8..=255).take(60).collect();
    for labels in [
        vec![b"www".to_vec(), b"Example".to_vec(), b"com".to_vec()],
        vec![all, b"a.b\\c\"d".to_vec()],
        vec![high],
        vec![],
    ] {
        let mut wire = Vec::new();
        for l in &labels {
            wire.push(l.len() as u8);
            wire.extend_from_slice(l);
        }
        wire.push(0);
        let msg = Msg::new(1, 0, [1, 0, 0, 0]).raw(&wire).u16(1).u16(1);
        let name = qname(&msg);
        let mut text = Vec::new();
        name.write_text(|piece| text.extend_from_slice(piece));
        assert_eq!(
            String::from_utf8(text).unwrap_or_default(),
            name.to_string()
        );
    }
}
