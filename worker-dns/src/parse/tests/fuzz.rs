//! Hostile input never panics and always terminates: random bytes, random
//! mutations of the testdata messages, and every single-byte change to them.
//! Sized to run in a few seconds; raise `PROPTEST_CASES` to search longer.

use proptest::collection::vec;
use proptest::prelude::*;

use super::corpus::{CAPTURES, HANDMADE};
use crate::parse::{Message, parse_message, parse_message_partial};

/// Parses both ways and renders whatever came out, so rendering is fuzzed too.
fn exercise(bytes: &[u8]) {
    let strict = parse_message(bytes);
    match parse_message_partial(bytes) {
        Ok(partial) => {
            render_all(&partial.message);
            match strict {
                Ok(message) => assert_eq!(message, partial.message),
                Err(e) => assert_eq!(Some(e), partial.error),
            }
        }
        Err(e) => assert_eq!(strict.err(), Some(e)),
    }
}

fn render_all(m: &Message) {
    let mut len = 0;
    for q in &m.questions {
        len += q.name.to_string().len() + q.qtype.name().len() + q.qclass.name().len();
    }
    for r in m.answers.iter().chain(&m.authority).chain(&m.additional) {
        len += r.name.to_string().len() + r.rtype.name().len() + r.data.to_presentation().len();
    }
    let _ = (len, m.rcode().name(), m.edns());
}

fn samples() -> impl Strategy<Value = Vec<u8>> {
    let all: Vec<Vec<u8>> = CAPTURES
        .iter()
        .chain(HANDMADE)
        .map(|(_, bytes)| bytes.to_vec())
        .collect();
    proptest::sample::select(all)
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes that steer the parser: label types, pointers, small lengths.
    let byte = prop_oneof![
        any::<u8>(),
        Just(0u8),
        Just(0xc0),
        Just(0x0c),
        Just(0x3f),
        Just(0x40),
        Just(0xff)
    ];
    prop_oneof![
        4 => (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: usize, len: usize| i.checked_rem(len).unwrap_or(0);
    match *m {
        Mutation::Set(i, b) => {
            let i = at(i, bytes.len());
            if let Some(slot) = bytes.get_mut(i) {
                *slot = b;
            }
        }
        Mutation::Insert(i, b) => {
            let i = at(i, bytes.len() + 1);
            bytes.insert(i, b);
        }
        Mutation::Remove(i) => {
            if !bytes.is_empty() {
                bytes.remove(at(i, bytes.len()));
            }
        }
        Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len() + 1)),
    }
}

/// 2000 cases a property unless `PROPTEST_CASES` says otherwise; failures
/// are printed, not written next to the sources.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes(bytes in vec(any::<u8>(), 0..700)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_plausible_header(counts in proptest::array::uniform4(0u16..4), body in vec(any::<u8>(), 0..300)) {
        let mut bytes = vec![0x12, 0x34, 0x81, 0x80];
        for c in counts {
            bytes.extend_from_slice(&c.to_be_bytes());
        }
        bytes.extend_from_slice(&body);
        exercise(&bytes);
    }

    #[test]
    fn mutated_samples(mut bytes in samples(), mutations in vec(mutation(), 1..8)) {
        for m in &mutations {
            apply(&mut bytes, m);
        }
        exercise(&bytes);
    }
}

#[test]
fn every_single_byte_change_and_every_cut() {
    for (_, sample) in CAPTURES.iter().chain(HANDMADE) {
        let mut bytes = sample.to_vec();
        for i in 0..bytes.len() {
            let original = bytes.get(i).copied().unwrap_or_default();
            for b in [
                0x00,
                0x01,
                0x0c,
                0x3f,
                0x40,
                0x80,
                0xc0,
                0xff,
                original ^ 0x01,
            ] {
                if let Some(slot) = bytes.get_mut(i) {
                    *slot = b;
                }
                exercise(&bytes);
            }
            if let Some(slot) = bytes.get_mut(i) {
                *slot = original;
            }
            exercise(bytes.get(..i).unwrap_or_default());
        }
    }
}
