//! A JSON writer for the hot path: appends to the sink's buffer without allocating.
//!
//! Workers that log at line rate (DNS, flows) write their events through it instead of
//! building owned structs for serde: keys are static, strings are escaped as they are
//! copied (eight bytes at a time when nothing needs escaping), integers, timestamps, MACs
//! and addresses are formatted by hand. The output is the same JSON serde_json writes for
//! the same values (compact, `\uXXXX` for control characters, `/` and non-ASCII as is);
//! the tests check that against serde_json.

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr},
};

use crate::eve::{Mac, Timestamp};

/// Appends one JSON value (usually an event object) to a buffer.
#[derive(Debug)]
pub struct JsonWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Per nesting level (bit n = level n): a value was written, the next needs a comma.
    filled: u64,
    depth: u32,
    /// A key was just written: the next value follows it without a comma.
    after_key: bool,
}

impl<'a> JsonWriter<'a> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            filled: 0,
            depth: 0,
            after_key: false,
        }
    }

    /// The separator before a value or key at the current level.
    #[inline(always)]
    fn sep(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        let bit = 1u64 << (self.depth & 63);
        if self.filled & bit != 0 {
            self.out.push(b',');
        }
        self.filled |= bit;
    }

    #[inline]
    fn open(&mut self, c: u8) -> &mut Self {
        self.sep();
        self.out.push(c);
        self.depth += 1;
        self.filled &= !(1u64 << (self.depth & 63));
        self
    }

    #[inline]
    fn close(&mut self, c: u8) -> &mut Self {
        self.depth = self.depth.saturating_sub(1);
        self.out.push(c);
        self
    }

    /// `{`
    #[inline]
    pub fn begin_object(&mut self) -> &mut Self {
        self.open(b'{')
    }

    /// `}`
    #[inline]
    pub fn end_object(&mut self) -> &mut Self {
        self.close(b'}')
    }

    /// `[`
    #[inline]
    pub fn begin_array(&mut self) -> &mut Self {
        self.open(b'[')
    }

    /// `]`
    #[inline]
    pub fn end_array(&mut self) -> &mut Self {
        self.close(b']')
    }

    /// `"key":` (keys are the program's own: written without escaping).
    #[inline(always)]
    pub fn key(&mut self, key: &str) -> &mut Self {
        self.sep();
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.after_key = true;
        self
    }

    /// A string value, escaped.
    #[inline(always)]
    pub fn str(&mut self, value: &str) -> &mut Self {
        self.sep();
        self.out.push(b'"');
        escape_into(self.out, value.as_bytes());
        self.out.push(b'"');
        self
    }

    /// A string value from bytes that are text (the caller's guarantee: ASCII or UTF-8),
    /// escaped.
    #[inline]
    pub fn str_bytes(&mut self, value: &[u8]) -> &mut Self {
        self.sep();
        self.out.push(b'"');
        escape_into(self.out, value);
        self.out.push(b'"');
        self
    }

    /// A string value made of `parts` joined by `sep` (a byte that needs no escaping), each
    /// part escaped.
    #[inline]
    pub fn str_join<'p>(&mut self, parts: impl Iterator<Item = &'p [u8]>, sep: u8) -> &mut Self {
        self.sep();
        self.out.push(b'"');
        for (i, part) in parts.enumerate() {
            if i > 0 {
                self.out.push(sep);
            }
            escape_into(self.out, part);
        }
        self.out.push(b'"');
        self
    }

    /// A string value whose text `f` produces in pieces (escaped as they come).
    #[inline]
    pub fn str_with(&mut self, f: impl FnOnce(&mut StrOut<'_>)) -> &mut Self {
        self.sep();
        self.out.push(b'"');
        f(&mut StrOut { out: self.out });
        self.out.push(b'"');
        self
    }

    /// A string value from `Display` (formatted into a stack buffer when it fits).
    pub fn display(&mut self, value: impl std::fmt::Display) -> &mut Self {
        self.str_with(|s| {
            let _ = write!(s, "{value}");
        })
    }

    /// An unsigned integer.
    #[inline]
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.sep();
        push_u64(self.out, value);
        self
    }

    /// A boolean.
    #[inline]
    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.sep();
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    /// A finite float (non-finite ones as `null`, as serde_json writes them).
    pub fn f64(&mut self, value: f64) -> &mut Self {
        self.sep();
        if value.is_finite() {
            let mut s = StrOut { out: self.out };
            let _ = write!(s, "{value:?}");
        } else {
            self.out.extend_from_slice(b"null");
        }
        self
    }

    /// A timestamp, as [`Timestamp`]'s `Display` (Suricata's format).
    pub fn timestamp(&mut self, ts: Timestamp) -> &mut Self {
        self.sep();
        self.out.push(b'"');
        ts.write_to(self.out);
        self.out.push(b'"');
        self
    }

    /// A byte as a two-digit lower-case hex string (`"1b"`).
    #[inline]
    pub fn hex_u8(&mut self, value: u8) -> &mut Self {
        self.sep();
        self.out.push(b'"');
        push_hex_byte(self.out, value);
        self.out.push(b'"');
        self
    }

    /// A MAC address, `aa:bb:cc:dd:ee:ff`.
    pub fn mac(&mut self, mac: Mac) -> &mut Self {
        self.sep();
        self.out.push(b'"');
        for (i, b) in mac.0.iter().enumerate() {
            if i > 0 {
                self.out.push(b':');
            }
            push_hex_byte(self.out, *b);
        }
        self.out.push(b'"');
        self
    }

    /// An IP address in its standard text form.
    pub fn ip(&mut self, ip: IpAddr) -> &mut Self {
        match ip {
            IpAddr::V4(v4) => self.ipv4(v4),
            IpAddr::V6(v6) => self.display(v6),
        }
    }

    /// An IPv4 address, dotted decimal.
    pub fn ipv4(&mut self, ip: Ipv4Addr) -> &mut Self {
        self.sep();
        self.out.push(b'"');
        let mut text = [0u8; 15];
        let mut len = 0;
        for (i, octet) in ip.octets().into_iter().enumerate() {
            let mut put = |b: u8| {
                if let Some(slot) = text.get_mut(len) {
                    *slot = b;
                    len += 1;
                }
            };
            if i > 0 {
                put(b'.');
            }
            if octet >= 100 {
                put(b'0' + octet / 100);
            }
            if octet >= 10 {
                put(b'0' + octet / 10 % 10);
            }
            put(b'0' + octet % 10);
        }
        self.out
            .extend_from_slice(text.get(..len).unwrap_or_default());
        self.out.push(b'"');
        self
    }

    /// A value serde serializes (the slow path, for rare parts of an event).
    pub fn serde(&mut self, value: &impl serde::Serialize) -> &mut Self {
        self.sep();
        let at = self.out.len();
        if serde_json::to_writer(&mut *self.out, value).is_err() {
            self.out.truncate(at);
            self.out.extend_from_slice(b"null");
        }
        self
    }
}

/// The inside of a string value being written: text pushed here is escaped.
#[derive(Debug)]
pub struct StrOut<'b> {
    out: &'b mut Vec<u8>,
}

impl StrOut<'_> {
    /// Appends text, escaped.
    #[inline]
    pub fn push(&mut self, text: &[u8]) {
        escape_into(self.out, text);
    }

    /// Appends one byte, escaped.
    pub fn push_byte(&mut self, b: u8) {
        escape_into(self.out, &[b]);
    }

    /// Appends a number in decimal.
    pub fn push_u64(&mut self, value: u64) {
        push_u64(self.out, value);
    }
}

impl std::fmt::Write for StrOut<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        escape_into(self.out, s.as_bytes());
        Ok(())
    }
}

/// Whether any of the 8 bytes of `w` is `"`, `\` or a control character (< 0x20).
#[inline]
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (below_space | zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64))) != 0
}

/// Whether one byte needs escaping in a JSON string.
#[inline]
fn needs_escape_byte(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Length of the longest prefix that needs no escaping (scanned eight bytes at a time).
#[inline]
fn clean_prefix(text: &[u8]) -> usize {
    let mut at = 0;
    while let Some(word) = text
        .get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
    {
        if needs_escape(u64::from_le_bytes(word)) {
            break;
        }
        at += 8;
    }
    while text.get(at).is_some_and(|&b| !needs_escape_byte(b)) {
        at += 1;
    }
    at
}

/// Appends `text` as the inside of a JSON string.
#[inline]
pub fn escape_into(out: &mut Vec<u8>, text: &[u8]) {
    // Names, addresses, keywords: almost always nothing to escape, one copy.
    let clean = clean_prefix(text);
    out.extend_from_slice(text.get(..clean).unwrap_or_default());
    if clean < text.len() {
        escape_slow(out, text.get(clean..).unwrap_or_default());
    }
}

#[cold]
fn escape_slow(out: &mut Vec<u8>, rest: &[u8]) {
    let mut start = 0;
    for (i, &b) in rest.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(rest.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            push_hex_byte(out, b);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(rest.get(start..).unwrap_or_default());
}

/// Appends a decimal number.
pub fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (value % 10) as u8;
        }
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(at..).unwrap_or_default());
}

/// Appends a byte as two lower-case hex digits.
pub fn push_hex_byte(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digit = |n: u8| HEX.get(usize::from(n & 0xf)).copied().unwrap_or(b'0');
    out.push(digit(b >> 4));
    out.push(digit(b));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        JsonWriter::new(&mut out).str(s);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn strings_escape_as_serde_json_does() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "plain".into(),
            "exactly8".into(),
            "a \"quoted\" \\back\\ slash/".into(),
            "ctl \u{0}\u{1}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1f}\u{7f} end".into(),
            "ünïcødé ✓ and more text after it to cross words".into(),
        ];
        // Every byte value at every position of a 17-byte string.
        for b in 0u8..0x80 {
            for at in [0usize, 3, 7, 8, 15, 16] {
                let mut s = vec![b'x'; 17];
                if let Some(slot) = s.get_mut(at) {
                    *slot = b;
                }
                samples.push(String::from_utf8(s).unwrap_or_default());
            }
        }
        for s in samples {
            let want = serde_json::to_string(&s).unwrap_or_default();
            assert_eq!(escaped(&s), want, "{s:?}");
        }
    }

    #[test]
    fn objects_arrays_and_numbers() {
        let mut out = Vec::new();
        let mut w = JsonWriter::new(&mut out);
        w.begin_object();
        w.key("a").u64(0);
        w.key("b").u64(u64::MAX);
        w.key("c").begin_array();
        w.bool(true).bool(false).f64(1.5).f64(f64::NAN);
        w.begin_object().end_object();
        w.end_array();
        w.key("d").begin_object();
        w.key("e").str("x");
        w.end_object();
        w.key("mac").mac(Mac([0, 0x1b, 0x2c, 0xff, 1, 2]));
        w.key("v4").ip("198.18.0.1"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        w.key("v6").ip("2001:db8::1"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        w.key("ts").timestamp(Timestamp(1_795_315_513_123_456_789));
        w.end_object();
        let text = String::from_utf8(out).unwrap_or_default();
        let want = serde_json::json!({
            "a": 0, "b": u64::MAX, "c": [true, false, 1.5, null, {}], "d": {"e": "x"},
            "mac": "00:1b:2c:ff:01:02", "v4": "198.18.0.1", "v6": "2001:db8::1",
            "ts": "2026-11-22T02:45:13.123456+0000",
        });
        let got: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(got, want, "{text}");
    }
}
