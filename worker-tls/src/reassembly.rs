//! One direction of a followed TCP connection put back in order: the kernel
//! copies segments as they pass (retransmitted, reordered, overlapping), each
//! with its stream offset; this yields every byte once, in order.
//!
//! Bounded: bytes waiting behind a gap are capped at [`MAX_PENDING`] (the
//! kernel follows at most `TLS_MAX_BYTES` per direction anyway); a segment
//! that would exceed it is refused and counted by the caller.

use std::collections::BTreeMap;

/// Bytes held behind a gap at most.
pub const MAX_PENDING: usize = 64 * 1024;

/// What [`Reassembler::push`] did with a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Bytes became available in order (possibly none, if all were old).
    InOrder,
    /// Held behind a gap.
    Held,
    /// Every byte was seen before (a retransmission).
    Duplicate,
    /// Held bytes would exceed [`MAX_PENDING`]: dropped.
    Refused,
}

/// Stream bytes in order from out-of-order pieces.
#[derive(Debug, Clone, Default)]
pub struct Reassembler {
    /// Offset of the next byte to deliver.
    next: u64,
    /// Pieces past a gap, by offset (may overlap each other).
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
}

impl Reassembler {
    /// A stream at offset 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Offset of the next byte to deliver: bytes before it were delivered.
    pub fn delivered(&self) -> u64 {
        self.next
    }

    /// Bytes held behind a gap.
    pub fn pending(&self) -> usize {
        self.pending_bytes
    }

    /// Adds the piece at stream `offset`; appends to `out` every byte that is
    /// now in order (once each).
    pub fn push(&mut self, offset: u64, bytes: &[u8], out: &mut Vec<u8>) -> Pushed {
        let end = offset + bytes.len() as u64;
        if end <= self.next {
            return Pushed::Duplicate;
        }
        if offset > self.next {
            if self.pending_bytes + bytes.len() > MAX_PENDING {
                return Pushed::Refused;
            }
            let slot = self.pending.entry(offset).or_default();
            if slot.len() < bytes.len() {
                self.pending_bytes += bytes.len() - slot.len();
                *slot = bytes.to_vec();
            }
            return Pushed::Held;
        }
        self.deliver(offset, bytes, out);
        // Pieces that the gap was hiding.
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > self.next {
                break;
            }
            let (off, piece) = entry.remove_entry();
            self.pending_bytes -= piece.len();
            self.deliver(off, &piece, out);
        }
        Pushed::InOrder
    }

    /// Appends the part of `bytes` (at `offset` <= next) past `next`.
    fn deliver(&mut self, offset: u64, bytes: &[u8], out: &mut Vec<u8>) {
        let skip = usize::try_from(self.next - offset).unwrap_or(usize::MAX);
        if let Some(new) = bytes.get(skip..) {
            out.extend_from_slice(new);
            self.next += new.len() as u64;
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retransmissions_overlaps_and_reordering() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        assert_eq!(r.push(300, &data[300..600], &mut out), Pushed::Held);
        assert_eq!(r.push(500, &data[500..700], &mut out), Pushed::Held);
        assert!(out.is_empty());
        assert_eq!(r.push(0, &data[0..200], &mut out), Pushed::InOrder);
        assert_eq!(out.len(), 200, "the gap 200..300 holds the rest back");
        assert_eq!(r.push(0, &data[0..200], &mut out), Pushed::Duplicate);
        assert_eq!(r.push(150, &data[150..320], &mut out), Pushed::InOrder);
        assert_eq!(out, data[..700].to_vec());
        assert_eq!(r.pending(), 0);
        assert_eq!(r.push(700, &data[700..], &mut out), Pushed::InOrder);
        assert_eq!(out, data);
    }

    #[test]
    fn pending_is_bounded() {
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        let big = vec![0u8; MAX_PENDING];
        assert_eq!(r.push(10, &big, &mut out), Pushed::Held);
        assert_eq!(
            r.push(MAX_PENDING as u64 + 20, &[1], &mut out),
            Pushed::Refused
        );
    }

    proptest! {
        /// Any order, any duplication, any split: the same bytes once, in order.
        #[test]
        fn any_arrival_order_gives_the_stream(
            len in 1usize..3000,
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
            order in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % len).collect();
            bounds.push(0);
            bounds.push(len);
            bounds.sort_unstable();
            bounds.dedup();
            let pieces: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
            let mut r = Reassembler::new();
            let mut out = Vec::new();
            for o in &order {
                let (a, b) = pieces[o % pieces.len()];
                r.push(a as u64, &data[a..b], &mut out);
            }
            for &(a, b) in &pieces {
                r.push(a as u64, &data[a..b], &mut out);
            }
            prop_assert_eq!(out, data);
        }
    }
}
