//! Domain names: reading with decompression (RFC 1035 §4.1.4), and
//! presentation format.
//!
//! Decompression rules, each a bound on hostile input:
//! * Every pointer must point strictly before the start of the label sequence
//!   it ends (the name's own start, then each earlier pointer's target). So
//!   targets strictly decrease and no pointer can ever be followed twice.
//!   Compressors only point at names they have already written, which lie
//!   earlier, so real messages never break this rule.
//! * A rule breaker is a [`ErrorKind::PointerLoop`] when it points into bytes
//!   this name has already read (itself included), else a
//!   [`ErrorKind::ForwardPointer`].
//! * At most [`MAX_POINTERS`] pointers per name, at most [`MAX_NAME_LEN`]
//!   octets once decompressed. Label types `0b01` and `0b10` are rejected;
//!   with type `0b00` a length cannot exceed 63.

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
        let mut wire = Vec::new();
        // Start of the label sequence being read; pointers must go below it.
        let mut seq_start = src.position();
        // Byte ranges already read, one per sequence left through a pointer.
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
                    let current = (seq_start, at + 1);
                    if target >= seq_start {
                        let looped = visited
                            .iter()
                            .take(jumps)
                            .chain(iter::once(&current))
                            .any(|&(start, end)| (start..=end).contains(&target));
                        return Err(if looped {
                            ErrorKind::PointerLoop
                        } else {
                            ErrorKind::ForwardPointer
                        });
                    }
                    let slot = visited.get_mut(jumps).ok_or(ErrorKind::TooManyPointers)?;
                    *slot = current;
                    if jumps == 0 {
                        // The name's own bytes end after its first pointer.
                        *cur = src;
                    }
                    jumps += 1;
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
