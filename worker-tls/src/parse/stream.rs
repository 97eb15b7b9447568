//! One direction of a TLS connection, as bytes in order: the record layer
//! (RFC 8446 section 5.1, RFC 5246 section 6.2) and the handshake layer on
//! top of it (messages may share a record or span several). Yields each
//! complete plaintext handshake message; stops where the handshake turns
//! encrypted, at application data, at an alert, or at the first byte that
//! is not TLS.

use palisade_worker_runtime::cursor::Cursor;

use super::error::TlsError;

/// Record content types (RFC 8446 section 5.1).
pub const CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
pub const CONTENT_ALERT: u8 = 21;
pub const CONTENT_HANDSHAKE: u8 = 22;
pub const CONTENT_APPLICATION_DATA: u8 = 23;

/// Handshake message types (RFC 8446 section 4).
pub const CLIENT_HELLO: u8 = 1;
pub const SERVER_HELLO: u8 = 2;
pub const CERTIFICATE: u8 = 11;
pub const SERVER_HELLO_DONE: u8 = 14;

/// Longest record accepted: 2^14 bytes of plaintext plus 2048 of expansion
/// (RFC 5246 section 6.2.3; TLS 1.3 allows less).
pub const MAX_RECORD: usize = (1 << 14) + 2048;
/// Longest handshake message reassembled (a certificate chain of 64 KiB is
/// far beyond any real one; RFC 8446 allows 2^24 bytes).
pub const MAX_HANDSHAKE_MESSAGE: usize = 64 * 1024;

/// A complete handshake message, body without its 4-byte header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// HandshakeType, or [`RawKind::Sslv2ClientHello`].
    pub kind: RawKind,
    /// The message body.
    pub body: Vec<u8>,
}

/// What a [`RawMessage`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawKind {
    /// A TLS handshake message of this HandshakeType.
    Handshake(u8),
    /// An SSLv2-format ClientHello (RFC 5246 appendix E.2), body after msg_type.
    Sslv2ClientHello,
}

/// Where the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// Reading plaintext handshake records.
    Open,
    /// A ChangeCipherSpec passed: only a hello that fills its record exactly
    /// is still read (TLS 1.3 middlebox compatibility sends CCS before the
    /// second ClientHello and ServerHello after a HelloRetryRequest); anything
    /// else means the handshake is encrypted.
    AfterChangeCipherSpec,
    /// Encrypted from here (application data, encrypted handshake): done.
    Encrypted,
    /// An alert record: done.
    Alert,
    /// Not TLS, or broken beyond reading: done.
    Failed(TlsError),
}

/// One direction's bytes, in order, turned into handshake messages.
#[derive(Debug, Clone)]
pub struct HandshakeStream {
    /// Stream bytes not consumed as whole records yet.
    pending: Vec<u8>,
    /// Handshake-layer bytes not consumed as whole messages yet.
    handshake: Vec<u8>,
    /// Stream bytes consumed so far (records and partial data).
    consumed: u64,
    state: StreamState,
}

impl Default for HandshakeStream {
    fn default() -> Self {
        Self::new()
    }
}

impl HandshakeStream {
    /// A stream at its first byte.
    pub fn new() -> Self {
        Self {
            pending: Vec::new(),
            handshake: Vec::new(),
            consumed: 0,
            state: StreamState::Open,
        }
    }

    /// Where the stream is.
    pub fn state(&self) -> StreamState {
        self.state
    }

    /// Whether more bytes can still give messages.
    pub fn is_open(&self) -> bool {
        matches!(
            self.state,
            StreamState::Open | StreamState::AfterChangeCipherSpec
        )
    }

    /// Bytes held waiting for the rest of a record or message.
    pub fn buffered(&self) -> usize {
        self.pending.len() + self.handshake.len()
    }

    /// Appends the next bytes of the stream (in order) and returns every
    /// handshake message they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<RawMessage> {
        let mut out = Vec::new();
        if !self.is_open() {
            return out;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(bytes);
        let mut at = 0;
        while self.is_open() {
            let rest = pending.get(at..).unwrap_or_default();
            match self.record(rest, &mut out) {
                Ok(Some(n)) => {
                    at += n;
                    self.consumed += n as u64;
                }
                Ok(None) => break,
                Err(e) => self.state = StreamState::Failed(e),
            }
        }
        pending.drain(..at.min(pending.len()));
        self.pending = pending;
        if !self.is_open() {
            self.pending = Vec::new();
            self.handshake = Vec::new();
        }
        out
    }

    /// Reads one record from `rest`: `Ok(None)` when it is not all there yet.
    fn record(
        &mut self,
        rest: &[u8],
        out: &mut Vec<RawMessage>,
    ) -> Result<Option<usize>, TlsError> {
        let mut c = Cursor::new(rest);
        let Ok(first) = c.u8() else { return Ok(None) };
        if self.consumed == 0 && first & 0x80 != 0 {
            return self.sslv2(rest, out);
        }
        let Ok(version) = c.u16() else {
            return Ok(None);
        };
        let Ok(len) = c.u16() else { return Ok(None) };
        let len = usize::from(len);
        if version >> 8 != 3 || len > MAX_RECORD {
            return Err(TlsError::BadRecord);
        }
        let Ok(fragment) = c.take(len) else {
            return Ok(None);
        };
        match first {
            CONTENT_HANDSHAKE => {
                if self.state == StreamState::AfterChangeCipherSpec {
                    if !fills_record_as_client_hello(fragment) {
                        self.state = StreamState::Encrypted;
                        return Ok(Some(5 + len));
                    }
                    self.state = StreamState::Open;
                }
                self.handshake.extend_from_slice(fragment);
                self.messages(out)?;
            }
            CONTENT_CHANGE_CIPHER_SPEC => self.state = StreamState::AfterChangeCipherSpec,
            CONTENT_APPLICATION_DATA => self.state = StreamState::Encrypted,
            CONTENT_ALERT => self.state = StreamState::Alert,
            _ => return Err(TlsError::NotHandshake),
        }
        Ok(Some(5 + len))
    }

    /// Takes every complete message off the handshake layer.
    fn messages(&mut self, out: &mut Vec<RawMessage>) -> Result<(), TlsError> {
        let mut at = 0;
        loop {
            let mut c = Cursor::new(self.handshake.get(at..).unwrap_or_default());
            let (Ok(msg_type), Ok(len)) = (c.u8(), c.u24()) else {
                break;
            };
            let len = len as usize;
            if len > MAX_HANDSHAKE_MESSAGE {
                return Err(TlsError::MessageTooLong);
            }
            let Ok(body) = c.take(len) else { break };
            out.push(RawMessage {
                kind: RawKind::Handshake(msg_type),
                body: body.to_vec(),
            });
            at += 4 + len;
        }
        self.handshake.drain(..at.min(self.handshake.len()));
        Ok(())
    }

    /// The SSLv2 record that opens a stream: a 2-byte header (high bit set,
    /// 15-bit length), then msg_type 1 (CLIENT-HELLO).
    fn sslv2(&mut self, rest: &[u8], out: &mut Vec<RawMessage>) -> Result<Option<usize>, TlsError> {
        let mut c = Cursor::new(rest);
        let (Ok(hi), Ok(lo)) = (c.u8(), c.u8()) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi & 0x7f, lo]));
        let Ok(mut record) = c.sub(len) else {
            return Ok(None);
        };
        if record.u8()? != CLIENT_HELLO {
            return Err(TlsError::NotHandshake);
        }
        out.push(RawMessage {
            kind: RawKind::Sslv2ClientHello,
            body: record.rest().to_vec(),
        });
        Ok(Some(2 + len))
    }
}

/// Whether a handshake record holds exactly one whole ClientHello or
/// ServerHello (the second ones after a HelloRetryRequest, each behind the
/// sender's ChangeCipherSpec in middlebox-compatibility mode). An encrypted
/// TLS 1.2 Finished passes for one with a chance of 2^-31.
fn fills_record_as_client_hello(fragment: &[u8]) -> bool {
    let mut c = Cursor::new(fragment);
    matches!((c.u8(), c.u24()), (Ok(CLIENT_HELLO | SERVER_HELLO), Ok(len)) if len as usize == c.remaining())
}
