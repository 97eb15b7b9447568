//! Domain names: reading with decompression (RFC 1035 §4.1.4), and
//! presentation format.
//!
//! # Decompression rules
//!
//! A name is read as a chain of label sequences: its own bytes, then the
//! bytes at each pointer's target. Pointers may point anywhere in the message,
//! backwards or forwards: Suricata and Wireshark follow forward pointers too,
//! and the corpus' `dns-forward-pointer` query names its first question by a
//! pointer to the second. Each rule is a bound on hostile input:
//!
//! * A pointer whose target lies inside a byte range this name has already
//!   read is a [`ErrorKind::PointerLoop`]. The ranges are, for each label
//!   sequence read so far (the current one included), its first byte through
//!   the second byte of the pointer that ends it.
//! * At most [`MAX_POINTERS`] pointers per name: the next one is
//!   [`ErrorKind::TooManyPointers`] (or [`ErrorKind::PointerLoop`] if it
//!   also breaks the first rule, which is checked first).
//! * At most [`MAX_NAME_LEN`] octets once decompressed
//!   ([`ErrorKind::NameTooLong`]). Label types `0b01` and `0b10` are
//!   rejected; with type `0b00` a length cannot exceed 63.
//! * A target outside the message, or a label sequence there that runs past
//!   its end, is [`ErrorKind::Truncated`]: after a jump, reading goes through
//!   a cursor over the whole message, and running out of the message is
//!   truncation wherever it happens. (The name's own bytes are read through
//!   the caller's window, so inside rdata running out of them is
//!   [`ErrorKind::RdataLengthMismatch`], as for any other rdata field.)
//!
//! # Why the work stays bounded
//!
//! The jump and length limits alone bound it, whatever the pointers do: at
//! most [`MAX_POINTERS`] jumps, and every label read counts towards the 255
//! decompressed octets. One name reads the labels it keeps (at most 255
//! bytes with their length bytes and the zero), at most one label it rejects
//! (64 bytes), and two bytes for each of at most `MAX_POINTERS + 1` pointers;
//! it compares each of those targets with at most `MAX_POINTERS + 1` ranges
//! kept in a fixed array, so rejecting a name never allocates.
//!
//! # Why every loop is caught
//!
//! Reading is deterministic: what is read from an offset on, up to and
//! including the next jump, depends only on that offset. A read that never
//! ends follows unboundedly many pointers, yet the message has finitely many
//! offsets, so some target `t` is jumped to twice. The first jump to `t`
//! reads at least the byte at `t`, so `t` lies in that sequence's range, and
//! the second jump to `t` is rejected as [`ErrorKind::PointerLoop`]. So no
//! target is ever entered twice, and a loop is reported at the first pointer
//! that closes it; only a cycle too long to close within [`MAX_POINTERS`]
//! jumps is reported as [`ErrorKind::TooManyPointers`] instead, and it is an
//! error all the same. Forward pointers change none of this: the argument
//! never used the direction of a jump.
//!
//! The range rule also rejects a target inside already-read bytes that is
//! not a label boundary there (reading part of a label as a length byte).
//! That is not an endless read, but no compressor writes it: compressors
//! point at the first label of a suffix of a name written earlier.
//!
//! # Compatibility with backward-only decompression
//!
//! Every message the former backward-only rule accepted (each target
//! strictly before the start of the sequence its pointer ends, as any
//! compressor writes) is read exactly as before: there targets strictly
//! decrease, so each lies below the first byte of every range read so far
//! and the range rule never fires. What it rejected as a loop is still
//! [`ErrorKind::PointerLoop`] (the range test is unchanged); only what it
//! rejected as a forward pointer now parses, or fails for another reason.

use std::fmt;
use std::iter;

use super::cursor::Cursor;
use super::error::ErrorKind;
use super::text::push_label;

/// Longest name in wire format, length bytes and the root's zero included.
pub const MAX_NAME_LEN: usize = 255;

/// Most pointers one name may follow. A compressor emits one pointer per
/// name; a chain grows by one hop per suffix that already ended in a
/// pointer, so real chains stay a few hops long.
pub const MAX_POINTERS: usize = 32;

/// A decompressed domain name, case kept as on the wire.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Name {
    /// The labels, each behind its length byte, without the root's zero.
    wire: Vec<u8>,
}

impl Name {
    /// The root name, `"."`.
    pub fn root() -> Self {
        Self::default()
    }

    pub fn is_root(&self) -> bool {
        self.wire.is_empty()
    }

    /// The labels, root excluded.
    pub fn labels(&self) -> Labels<'_> {
        Labels { rest: &self.wire }
    }

    /// Length in uncompressed wire format, the root's zero included.
    pub fn wire_len(&self) -> usize {
        self.wire.len() + 1
    }

    /// Reads a name at the cursor, following pointers through the whole
    /// message. The cursor moves past the name's own bytes: up to its first
    /// pointer, or its terminating zero.
    pub(crate) fn read(cur: &mut Cursor<'_>) -> Result<Self, ErrorKind> {
        let msg = cur.message();
        let mut src = *cur;
        // Most names fit: one allocation instead of three growths.
        let mut wire = Vec::with_capacity(64);
        // Start of the label sequence being read.
        let mut seq_start = src.position();
        // Byte ranges already read (inclusive), one per sequence left
        // through a pointer.
        let mut visited = [(0usize, 0usize); MAX_POINTERS];
        let mut jumps = 0usize;
        loop {
            let at = src.position();
            let len = src.u8()?;
            match len >> 6 {
                0b00 if len == 0 => break,
                0b00 => {
                    let label = src.take(usize::from(len))?;
                    // This label's length byte and bytes, then the root's zero.
                    if wire.len() + 1 + label.len() + 1 > MAX_NAME_LEN {
                        return Err(ErrorKind::NameTooLong);
                    }
                    wire.push(len);
                    wire.extend_from_slice(label);
                }
                0b11 => {
                    let target = usize::from(u16::from_be_bytes([len & 0x3f, src.u8()?]));
                    // This sequence, through the pointer's second byte.
                    let current = (seq_start, at + 1);
                    let looped = visited
                        .iter()
                        .take(jumps)
                        .chain(iter::once(&current))
                        .any(|&(start, end)| (start..=end).contains(&target));
                    if looped {
                        return Err(ErrorKind::PointerLoop);
                    }
                    let slot = visited.get_mut(jumps).ok_or(ErrorKind::TooManyPointers)?;
                    *slot = current;
                    if jumps == 0 {
                        // The name's own bytes end after its first pointer.
                        *cur = src;
                    }
                    jumps += 1;
                    // Past the end of the message: `Truncated`.
                    src = Cursor::at(msg, target)?;
                    seq_start = target;
                }
                _ => return Err(ErrorKind::BadLabelType),
            }
        }
        if jumps == 0 {
            *cur = src;
        }
        Ok(Self { wire })
    }
}

impl Name {
    /// Whether the presentation format is just the labels joined by `.` (no byte of any
    /// label needs a presentation escape), and the name is not the root.
    pub fn is_plain(&self) -> bool {
        !self.is_root()
            && self.labels().all(|l| {
                l.iter()
                    .all(|&b| (0x21..=0x7e).contains(&b) && b != b'.' && b != b'\\')
            })
    }

    /// The presentation format (as `Display`) in pieces, without allocating: runs of plain
    /// bytes are pushed as they are, escapes as they come.
    pub fn write_text(&self, mut push: impl FnMut(&[u8])) {
        if self.is_root() {
            return push(b".");
        }
        for (i, label) in self.labels().enumerate() {
            if i > 0 {
                push(b".");
            }
            let mut start = 0;
            for (at, &b) in label.iter().enumerate() {
                if (0x21..=0x7e).contains(&b) && b != b'.' && b != b'\\' {
                    continue;
                }
                push(label.get(start..at).unwrap_or_default());
                if b == b'.' || b == b'\\' {
                    push(&[b'\\', b]);
                } else {
                    push(&[b'\\', b'0' + b / 100, b'0' + b / 10 % 10, b'0' + b % 10]);
                }
                start = at + 1;
            }
            push(label.get(start..).unwrap_or_default());
        }
    }
}

/// Presentation format: labels joined by `.`, no trailing dot, root as `"."`;
/// `.` and `\` inside a label backslash-escaped, bytes outside printable
/// ASCII (space included) as `\DDD`. Case is kept.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        let mut out = String::with_capacity(self.wire.len());
        for (i, label) in self.labels().enumerate() {
            if i > 0 {
                out.push('.');
            }
            push_label(&mut out, label);
        }
        f.write_str(&out)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({:?})", self.to_string())
    }
}

/// Iterator over a name's labels.
#[derive(Clone, Debug)]
pub struct Labels<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, tail) = self.rest.split_first()?;
        let (label, rest) = tail.split_at_checked(usize::from(len))?;
        self.rest = rest;
        Some(label)
    }
}
