//! Parser tests: hand-built messages per record type and per error, real
//! captures from `testdata/` checked against the corpus, and a fuzz loop.

mod corpus;
mod errors;
mod fuzz;
mod names;
mod rdata;

use super::{Message, ParseError, parse_message};

/// Builds a message from parts, so tests read as the wire layout.
pub(super) struct Msg {
    bytes: Vec<u8>,
}

impl Msg {
    /// A header with the given id, flags and the four counts.
    pub(super) fn new(id: u16, flags: u16, counts: [u16; 4]) -> Self {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(&flags.to_be_bytes());
        for count in counts {
            bytes.extend_from_slice(&count.to_be_bytes());
        }
        Self { bytes }
    }

    /// A response (flags 0x8180) with one question and `an` answers.
    pub(super) fn response(an: u16) -> Self {
        Self::new(0x1234, 0x8180, [1, an, 0, 0])
    }

    pub(super) fn raw(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    pub(super) fn u16(self, v: u16) -> Self {
        self.raw(&v.to_be_bytes())
    }

    /// A name in uncompressed wire format from dotted text ("" is the root).
    pub(super) fn name(mut self, dotted: &str) -> Self {
        self.bytes.extend_from_slice(&wire_name(dotted));
        self
    }

    /// A question: name, type, class IN.
    pub(super) fn question(self, dotted: &str, qtype: u16) -> Self {
        self.name(dotted).u16(qtype).u16(1)
    }

    /// A record owned by the first question (pointer to offset 12), class IN,
    /// TTL 300, with `rdata` behind its length.
    pub(super) fn answer(self, rtype: u16, rdata: &[u8]) -> Self {
        self.record(&[0xc0, 12], rtype, 1, 300, rdata)
    }

    /// A record with every field given.
    pub(super) fn record(
        self,
        owner: &[u8],
        rtype: u16,
        class: u16,
        ttl: u32,
        rdata: &[u8],
    ) -> Self {
        let len = u16::try_from(rdata.len()).expect("test rdata fits in 16 bits");
        self.raw(owner)
            .u16(rtype)
            .u16(class)
            .raw(&ttl.to_be_bytes())
            .u16(len)
            .raw(rdata)
    }

    pub(super) fn offset(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(super) fn parse(&self) -> Result<Message, ParseError> {
        parse_message(&self.bytes)
    }

    pub(super) fn parse_ok(&self) -> Message {
        match self.parse() {
            Ok(message) => message,
            Err(e) => panic!(
                "expected a well-formed message, got {e}: {:02x?}",
                self.bytes
            ),
        }
    }
}

/// Uncompressed wire format of a dotted name ("" is the root).
pub(super) fn wire_name(dotted: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in dotted.split('.').filter(|l| !l.is_empty()) {
        out.push(u8::try_from(label.len()).expect("test label fits"));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}
