//! The one checked reader every parser goes through.
//!
//! A cursor reads a window of the message but keeps the whole message, because
//! compression pointers are offsets from the message's first byte.

use super::error::ErrorKind;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor<'a> {
    /// The whole message: pointer targets are offsets into it.
    msg: &'a [u8],
    /// Offset of the next byte to read.
    pos: usize,
    /// Offset one past the last byte this window may read.
    end: usize,
    /// What running out of this window means: `Truncated` for the message,
    /// `RdataLengthMismatch` for an rdata window.
    short: ErrorKind,
}

impl<'a> Cursor<'a> {
    /// A cursor over the whole message, at its first byte.
    pub(crate) fn new(msg: &'a [u8]) -> Self {
        Self {
            msg,
            pos: 0,
            end: msg.len(),
            short: ErrorKind::Truncated,
        }
    }

    /// A cursor over the whole message from `offset` (a pointer target).
    pub(crate) fn at(msg: &'a [u8], offset: usize) -> Result<Self, ErrorKind> {
        if offset > msg.len() {
            return Err(ErrorKind::Truncated);
        }
        Ok(Self {
            msg,
            pos: offset,
            end: msg.len(),
            short: ErrorKind::Truncated,
        })
    }

    /// The whole message this cursor reads from.
    pub(crate) fn message(&self) -> &'a [u8] {
        self.msg
    }

    /// Offset of the next byte, from the start of the message.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left in this window.
    pub(crate) fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ErrorKind> {
        let stop = self
            .pos
            .checked_add(n)
            .filter(|&stop| stop <= self.end)
            .ok_or(self.short)?;
        let bytes = self.msg.get(self.pos..stop).ok_or(self.short)?;
        self.pos = stop;
        Ok(bytes)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ErrorKind> {
        let short = self.short;
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| short)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ErrorKind> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ErrorKind> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ErrorKind> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Splits off the next `n` bytes as their own window; running out of it
    /// reports `short`. Pointers read through it still reach the whole message.
    pub(crate) fn sub(&mut self, n: usize, short: ErrorKind) -> Result<Cursor<'a>, ErrorKind> {
        let start = self.pos;
        self.take(n)?;
        Ok(Self {
            msg: self.msg,
            pos: start,
            end: self.pos,
            short,
        })
    }

    /// Everything left in this window.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let bytes = self.msg.get(self.pos..self.end).unwrap_or_default();
        self.pos = self.end.max(self.pos);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_stops_at_the_end() {
        let mut c = Cursor::new(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(c.u8(), Ok(1));
        assert_eq!(c.u16(), Ok(0x0203));
        assert_eq!(c.u32(), Ok(0x0405_0607));
        assert_eq!(c.position(), 7);
        assert!(c.is_empty());
        assert_eq!(c.u8(), Err(ErrorKind::Truncated));
        assert_eq!(c.take(usize::MAX), Err(ErrorKind::Truncated));
    }

    #[test]
    fn sub_window_reports_its_own_error_and_rest_drains() {
        let mut c = Cursor::new(&[1, 2, 3, 4]);
        let mut w = c
            .sub(2, ErrorKind::RdataLengthMismatch)
            .expect("two bytes are there");
        assert_eq!(c.position(), 2);
        assert_eq!(w.u8(), Ok(1));
        assert_eq!(w.u16(), Err(ErrorKind::RdataLengthMismatch));
        assert_eq!(w.rest(), &[2]);
        assert!(w.is_empty());
        assert_eq!(w.message().len(), 4);
        assert_eq!(
            c.sub(3, ErrorKind::RdataLengthMismatch).err(),
            Some(ErrorKind::Truncated)
        );
        assert_eq!(c.rest(), &[3, 4]);
        assert!(Cursor::at(&[0], 2).is_err());
    }
}
