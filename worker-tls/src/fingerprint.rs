//! Client and server fingerprints of a hello.
//!
//! * JA3 (Salesforce): `version,ciphers,extensions,groups,point_formats`, the
//!   lists as decimal values joined by `-`, GREASE (RFC 8701) removed from
//!   ciphers, extensions and groups, as Salesforce's reference, Suricata,
//!   Arkime and tshark do; its MD5 in lower-case hex.
//! * JA3S: `version,cipher,extensions` of a ServerHello and its MD5.
//! * JA4 and JA4_r (FoxIO, BSD-3-Clause; the JA4+ methods under FoxIO's own
//!   licence, JA4S/JA4H/JA4X/..., are deliberately not implemented):
//!   `a_b_c` with
//!   - a: `t` (TCP) or `q` (QUIC), the highest offered version (`13`, `12`,
//!     `11`, `10`, `s3`, `s2`, `s1`, else `00`), `d` if a server_name extension
//!     is present else `i`, the count of non-GREASE ciphers and of non-GREASE
//!     extensions (two digits each, at most 99), the first and last character
//!     of the first ALPN id (`00` without ALPN; a non-ASCII character counts
//!     as `9`, a one-character id gives that character and `0`);
//!   - b: the first 12 hex digits of SHA-256 over the sorted non-GREASE
//!     ciphers (4 lower-case hex digits each, comma-separated);
//!   - c: the same over the sorted non-GREASE extensions without server_name
//!     and ALPN, then `_` and the signature algorithms in wire order (the `_`
//!     stays when there are no signature algorithms, as FoxIO's Python
//!     reference and Suricata write it; FoxIO's Rust tool drops it, and the
//!     two disagree on such hellos: the shared corpus holds Suricata's value);
//!   - an empty string hashes to `000000000000` (no ciphers; neither
//!     extensions nor signature algorithms). JA4_r is the same string
//!     before hashing. Checked on every JA4 of the shared corpus.

use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::parse::{ClientHello, ExtensionType, ServerHello, is_grease};

/// A JA3 or JA3S: the string and its MD5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ja3 {
    /// The fingerprint string.
    pub string: String,
    /// MD5 of `string`, lower-case hex.
    pub hash: String,
}

impl Ja3 {
    fn of(string: String) -> Self {
        let hash = hex::encode(Md5::digest(string.as_bytes()));
        Self { string, hash }
    }
}

// The strings are built by hand, without `fmt`: two fingerprints per hello, on the worker's
// hot path (`fmt` took a third of the TLS worker's instructions).

/// Appends `v` in decimal.
fn push_dec(s: &mut String, v: u16) {
    if v >= 10 {
        push_dec(s, v / 10);
    }
    push_digit(s, v % 10, 10);
}

/// Appends one digit (`d` < `radix`), hex lower-case.
fn push_digit(s: &mut String, d: u16, radix: u32) {
    s.push(char::from_digit(u32::from(d), radix).unwrap_or('0'));
}

/// Appends `v` as four lower-case hex digits.
fn push_hex4(s: &mut String, v: u16) {
    for shift in [12, 8, 4, 0] {
        push_digit(s, (v >> shift) & 0xf, 16);
    }
}

fn join_dec<I: IntoIterator<Item = u16>>(values: I) -> String {
    let mut s = String::with_capacity(128);
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            s.push('-');
        }
        push_dec(&mut s, v);
    }
    s
}

/// JA3 of a ClientHello; `None` for an SSLv2-format hello (the reference
/// computes none: its cipher specs are not TLS cipher suites).
pub fn ja3(h: &ClientHello) -> Option<Ja3> {
    if h.sslv2 {
        return None;
    }
    let ciphers = join_dec(h.ciphers.iter().copied().filter(|c| !is_grease(*c)));
    let exts = join_dec(h.extensions.iter().map(|e| e.0).filter(|e| !is_grease(*e)));
    let groups = join_dec(
        h.supported_groups
            .iter()
            .map(|g| g.0)
            .filter(|g| !is_grease(*g)),
    );
    let formats = join_dec(h.ec_point_formats.iter().map(|f| u16::from(*f)));
    let mut s =
        String::with_capacity(8 + ciphers.len() + exts.len() + groups.len() + formats.len());
    push_dec(&mut s, h.legacy_version.0);
    for part in [&ciphers, &exts, &groups, &formats] {
        s.push(',');
        s.push_str(part);
    }
    Some(Ja3::of(s))
}

/// JA3S of a ServerHello (GREASE removed from the extensions, as for JA3).
pub fn ja3s(h: &ServerHello) -> Ja3 {
    let exts = join_dec(h.extensions.iter().map(|e| e.0).filter(|e| !is_grease(*e)));
    let mut s = String::with_capacity(12 + exts.len());
    push_dec(&mut s, h.legacy_version.0);
    s.push(',');
    push_dec(&mut s, h.cipher);
    s.push(',');
    s.push_str(&exts);
    Ja3::of(s)
}

/// Transport of the hello, JA4's first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS over TCP: `t`.
    Tcp,
    /// TLS inside QUIC: `q`.
    Quic,
}

/// JA4 and JA4_r of a client hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ja4 {
    /// `a_b_c`, hashed.
    pub ja4: String,
    /// `a_b_c` before hashing (sorted lists).
    pub ja4_r: String,
}

fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0200 => "s2",
        0x0100 => "s1",
        _ => "00",
    }
}

/// First and last character of an ALPN id as JA4 takes them.
fn alpn_chars(id: &[u8]) -> (char, char) {
    let text = String::from_utf8_lossy(id);
    let ascii = |c: char| if c.is_ascii() { c } else { '9' };
    let mut chars = text.chars();
    let first = chars.next().map_or('0', ascii);
    let last = chars.next_back().map_or('0', ascii);
    (first, last)
}

/// Appends the first 12 hex digits of SHA-256 of `s` (`000000000000` for an empty `s`).
fn push_hash12(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push_str("000000000000");
        return;
    }
    for b in Sha256::digest(s.as_bytes()).iter().take(6) {
        push_digit(out, u16::from(b >> 4), 16);
        push_digit(out, u16::from(b & 0xf), 16);
    }
}

fn hex_list<I: IntoIterator<Item = u16>>(values: I) -> String {
    let mut s = String::with_capacity(256);
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_hex4(&mut s, v);
    }
    s
}

/// Appends `n` (at most 99) as two decimal digits.
fn push_two_digits(s: &mut String, n: usize) {
    let n = u16::try_from(n.min(99)).unwrap_or(99);
    push_digit(s, n / 10, 10);
    push_digit(s, n % 10, 10);
}

/// JA4 of a ClientHello; `None` for an SSLv2-format hello.
pub fn ja4(h: &ClientHello, transport: Transport) -> Option<Ja4> {
    if h.sslv2 {
        return None;
    }
    let mut ciphers: Vec<u16> = h
        .ciphers
        .iter()
        .copied()
        .filter(|c| !is_grease(*c))
        .collect();
    let exts: Vec<u16> = h
        .extensions
        .iter()
        .map(|e| e.0)
        .filter(|e| !is_grease(*e))
        .collect();
    let (a0, a1) = h.alpn.first().map_or(('0', '0'), |id| alpn_chars(id));
    let mut a = String::with_capacity(10);
    a.push(match transport {
        Transport::Tcp => 't',
        Transport::Quic => 'q',
    });
    a.push_str(version_code(h.max_version().0));
    a.push(if h.has(ExtensionType::SERVER_NAME) {
        'd'
    } else {
        'i'
    });
    push_two_digits(&mut a, ciphers.len());
    push_two_digits(&mut a, exts.len());
    a.push(a0);
    a.push(a1);
    ciphers.sort_unstable();
    let mut sorted_exts: Vec<u16> = exts
        .into_iter()
        .filter(|e| *e != ExtensionType::SERVER_NAME.0 && *e != ExtensionType::ALPN.0)
        .collect();
    sorted_exts.sort_unstable();
    let b = hex_list(ciphers);
    let sigs = hex_list(h.sig_algs.iter().map(|s| s.0));
    let exts = hex_list(sorted_exts);
    let mut c = exts;
    if !c.is_empty() || !sigs.is_empty() {
        c.push('_');
        c.push_str(&sigs);
    }
    let mut ja4 = String::with_capacity(36);
    ja4.push_str(&a);
    ja4.push('_');
    push_hash12(&mut ja4, &b);
    ja4.push('_');
    push_hash12(&mut ja4, &c);
    let mut ja4_r = a;
    for part in [&b, &c] {
        ja4_r.push('_');
        ja4_r.push_str(part);
    }
    Some(Ja4 { ja4, ja4_r })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{ProtocolVersion, SignatureScheme};

    /// FoxIO's own unit-test vector for JA4 (its README's example hello).
    #[test]
    fn ja4_matches_the_reference_example() {
        let h = ClientHello {
            legacy_version: ProtocolVersion(0x0303),
            ciphers: vec![
                0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
                0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
            ],
            extensions: [
                0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023,
                0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
            ]
            .into_iter()
            .map(ExtensionType)
            .collect(),
            supported_versions: vec![ProtocolVersion(0x0304)],
            alpn: vec![b"h2".to_vec()],
            sig_algs: [
                0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
            ]
            .into_iter()
            .map(SignatureScheme)
            .collect(),
            ..ClientHello::default()
        };
        let f = ja4(&h, Transport::Tcp).expect("a TLS hello");
        assert_eq!(f.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
        assert_eq!(
            f.ja4_r,
            "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"
        );
    }

    #[test]
    fn alpn_characters() {
        assert_eq!(alpn_chars(b"h2"), ('h', '2'));
        assert_eq!(alpn_chars(b"http/1.1"), ('h', '1'));
        assert_eq!(alpn_chars(b"a"), ('a', '0'));
        assert_eq!(alpn_chars(&[0xba, 0xad]), ('9', '9'));
    }

    #[test]
    fn empty_lists_hash_to_zeros() {
        let h = ClientHello {
            legacy_version: ProtocolVersion(0x0301),
            ..ClientHello::default()
        };
        let f = ja4(&h, Transport::Quic).expect("a TLS hello");
        assert_eq!(f.ja4, "q10i000000_000000000000_000000000000");
        let j = ja3(&h).expect("a TLS hello");
        assert_eq!(j.string, "769,,,,");
        assert_eq!(j.hash, hex::encode(Md5::digest(b"769,,,,")));
    }
}
