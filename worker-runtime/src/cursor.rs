//! A checked reader over untrusted bytes: every read is bounds-checked and
//! returns [`Truncated`] instead of panicking. Parsers in workers read
//! through this (no indexing, no unwrap).

/// The input ended before the read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

/// Position in a byte slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        if n > self.rest.len() {
            return Err(Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), Truncated> {
        self.take(n).map(|_| ())
    }

    /// Next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        self.take(N)
            .and_then(|b| b.try_into().map_err(|_| Truncated))
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Truncated> {
        self.array::<1>().map(|[b]| b)
    }

    /// Big-endian u16.
    pub fn u16(&mut self) -> Result<u16, Truncated> {
        self.array().map(u16::from_be_bytes)
    }

    /// Big-endian 24-bit integer.
    pub fn u24(&mut self) -> Result<u32, Truncated> {
        self.array::<3>()
            .map(|[a, b, c]| u32::from_be_bytes([0, a, b, c]))
    }

    /// Big-endian u32.
    pub fn u32(&mut self) -> Result<u32, Truncated> {
        self.array().map(u32::from_be_bytes)
    }

    /// A sub-cursor over the next `n` bytes.
    pub fn sub(&mut self, n: usize) -> Result<Cursor<'a>, Truncated> {
        self.take(n).map(Cursor::new)
    }

    /// A sub-cursor over a vector with a one-byte length prefix.
    pub fn prefixed_u8(&mut self) -> Result<Cursor<'a>, Truncated> {
        let n = usize::from(self.u8()?);
        self.sub(n)
    }

    /// A sub-cursor over a vector with a two-byte length prefix.
    pub fn prefixed_u16(&mut self) -> Result<Cursor<'a>, Truncated> {
        let n = usize::from(self.u16()?);
        self.sub(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_bounds() {
        let mut c = Cursor::new(&[1, 0, 2, 0, 0, 3, 9]);
        assert_eq!(c.u8(), Ok(1));
        assert_eq!(c.u16(), Ok(2));
        assert_eq!(c.u24(), Ok(3));
        assert_eq!(c.u16(), Err(Truncated));
        assert_eq!(c.remaining(), 1, "a failed read consumes nothing");
        assert_eq!(c.rest(), &[9]);
        assert_eq!(c.u8(), Err(Truncated));
    }
}
