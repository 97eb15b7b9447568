//! Rendering attacker-chosen bytes as text without losing or inventing any.

/// Renders bytes as Suricata's `set_string_from_bytes` does: valid UTF-8 as
/// it is, otherwise ASCII bytes as they are and every byte >= 0x80 as `\xHH`.
/// Used for TXT and NULL rdata.
pub fn escape_bytes(bytes: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        if b.is_ascii() {
            out.push(char::from(b));
        } else {
            out.push_str("\\x");
            push_hex(&mut out, &[b]);
        }
    }
    out
}

/// Appends one name label in presentation format: printable ASCII as is,
/// `.` and `\` backslash-escaped, everything else (space included) as `\DDD`.
pub(crate) fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x21..=0x7e => out.push(char::from(b)),
            _ => push_decimal_escape(out, b),
        }
    }
}

/// Appends a `<character-string>` body (RFC 1035 §5.1) for use inside double
/// quotes: `"` and `\` and any byte in `also` backslash-escaped, printable
/// ASCII and space as is, everything else as `\DDD`.
pub(crate) fn push_char_string(out: &mut String, bytes: &[u8], also: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || also.contains(&b) {
            out.push('\\');
            out.push(char::from(b));
        } else if (0x20..=0x7e).contains(&b) {
            out.push(char::from(b));
        } else {
            push_decimal_escape(out, b);
        }
    }
}

fn push_decimal_escape(out: &mut String, b: u8) {
    out.push('\\');
    for digit in [b / 100, b / 10 % 10, b % 10] {
        out.push(char::from(b'0' + digit));
    }
}

/// Appends lower-case hex, two digits a byte.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        for nibble in [b >> 4, b & 0xf] {
            // nibble < 16, so the lookup always succeeds.
            if let Some(&d) = DIGITS.get(usize::from(nibble)) {
                out.push(char::from(d));
            }
        }
    }
}

/// Appends standard padded base64 (RFC 4648 §4), as SVCB `ech=` uses.
pub(crate) fn push_base64(out: &mut String, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |v: u32, shift: u32| {
        // masked to 6 bits, so the lookup always succeeds.
        ALPHABET
            .get(((v >> shift) & 0x3f) as usize)
            .map_or('=', |&c| char::from(c))
    };
    for chunk in bytes.chunks(3) {
        let mut word = [0u8; 3];
        for (slot, &b) in word.iter_mut().zip(chunk) {
            *slot = b;
        }
        let [a, b, c] = word;
        let v = u32::from_be_bytes([0, a, b, c]);
        out.push(sextet(v, 18));
        out.push(sextet(v, 12));
        out.push(if chunk.len() > 1 { sextet(v, 6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(v, 0) } else { '=' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suricata_style_escaping() {
        assert_eq!(escape_bytes(b"v=spf1 ~all"), "v=spf1 ~all");
        assert_eq!(escape_bytes("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(
            escape_bytes(b"VACKD\x03\xc5\xe9\x01"),
            "VACKD\u{3}\\xc5\\xe9\u{1}"
        );
    }

    #[test]
    fn label_and_string_escaping() {
        let mut s = String::new();
        push_label(&mut s, b"a.b\\c d\x00\xff");
        assert_eq!(s, "a\\.b\\\\c\\032d\\000\\255");
        let mut s = String::new();
        push_char_string(&mut s, b"say \"hi\",\x7f", b",");
        assert_eq!(s, "say \\\"hi\\\"\\,\\127");
    }

    #[test]
    fn hex_and_base64() {
        let mut s = String::new();
        push_hex(&mut s, &[0x00, 0xab, 0x7f]);
        assert_eq!(s, "00ab7f");
        for (input, expected) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xff\xfe\xfd", "//79"),
        ] {
            let mut s = String::new();
            push_base64(&mut s, input);
            assert_eq!(s, expected);
        }
    }
}
