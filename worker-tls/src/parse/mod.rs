//! Zero-I/O TLS handshake parser: bytes in, typed hellos or a small `Copy`
//! error out (RFC 8446, RFC 5246, RFC 6066, RFC 7301, RFC 8422, RFC 8701).
//!
//! * [`stream::HandshakeStream`] turns one direction's bytes, in order, into
//!   handshake messages: records of any size, several messages per record or
//!   one message over several records, the SSLv2-compatible ClientHello, and
//!   the second ClientHello after a HelloRetryRequest (behind a
//!   ChangeCipherSpec in middlebox-compatibility mode).
//! * [`hello`] reads ClientHello and ServerHello bodies: every extension in
//!   wire order (GREASE kept), and the contents of those Palisade logs.
//! * Everything reads through the checked cursor of
//!   `palisade_worker_runtime::cursor`: no indexing, no `unwrap`, no
//!   `unsafe`; loops are bounded by the bytes left and [`hello::MAX_EXTENSIONS`].
//!
//! Malformed input: the mandatory fields of a hello must parse or the hello is
//! rejected with a [`TlsError`]; past them, a broken extension is listed,
//! flagged as an [`Anomaly`] and skipped, and the rest is still read.

#![forbid(unsafe_code)]

pub mod certificate;
mod error;
pub mod hello;
pub mod stream;
mod types;

#[cfg(test)]
mod tests;

pub use error::{Anomaly, TlsError};
pub use hello::{ClientHello, ServerHello, parse_client_hello, parse_server_hello};
pub use stream::{HandshakeStream, MAX_HANDSHAKE_MESSAGE, RawKind, RawMessage, StreamState};
pub use types::{ExtensionType, NamedGroup, ProtocolVersion, SignatureScheme, is_grease};

/// A handshake message Palisade reads (one per message, short-lived: the
/// size difference between the variants does not matter).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    /// ClientHello (TLS or SSLv2-compatible format).
    ClientHello(ClientHello),
    /// ServerHello or HelloRetryRequest.
    ServerHello(ServerHello),
    /// Certificate (TLS <= 1.2: plaintext): the DER certificates, leaf first.
    Certificate(Vec<Vec<u8>>),
    /// Any other handshake message, by type.
    Other(u8),
}

/// Decodes a raw handshake message.
pub fn parse_message(raw: &RawMessage) -> Result<Message, TlsError> {
    match raw.kind {
        RawKind::Sslv2ClientHello => {
            hello::parse_sslv2_client_hello(&raw.body).map(Message::ClientHello)
        }
        RawKind::Handshake(stream::CLIENT_HELLO) => {
            parse_client_hello(&raw.body).map(Message::ClientHello)
        }
        RawKind::Handshake(stream::SERVER_HELLO) => {
            parse_server_hello(&raw.body).map(Message::ServerHello)
        }
        RawKind::Handshake(stream::CERTIFICATE) => {
            certificate::parse_certificate_list(&raw.body).map(Message::Certificate)
        }
        RawKind::Handshake(other) => Ok(Message::Other(other)),
    }
}

/// The first hello in `bytes` (the start of one direction of a connection):
/// for tests, the fuzz target and one-shot use.
pub fn parse_first_hello(bytes: &[u8]) -> Result<Message, TlsError> {
    let mut stream = HandshakeStream::new();
    for raw in stream.push(bytes) {
        if matches!(
            raw.kind,
            RawKind::Sslv2ClientHello
                | RawKind::Handshake(stream::CLIENT_HELLO | stream::SERVER_HELLO)
        ) {
            return parse_message(&raw);
        }
    }
    match stream.state() {
        StreamState::Failed(e) => Err(e),
        StreamState::Open | StreamState::AfterChangeCipherSpec => Err(TlsError::Truncated),
        StreamState::Encrypted | StreamState::Alert => Err(TlsError::NotHandshake),
    }
}
