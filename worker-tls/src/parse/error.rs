//! Why bytes were rejected, and what was odd in a hello that still parsed.
//! Both are `Copy`: rejecting input never allocates.

use palisade_worker_runtime::cursor::Truncated;

use super::types::ExtensionType;

/// Why a record, a handshake message or a hello could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsError {
    /// The bytes ended inside a field (segment boundary, capture cap).
    Truncated,
    /// A record that is not a handshake record where one was expected.
    NotHandshake,
    /// A handshake message other than the one asked for.
    OtherHandshake,
    /// A record longer than RFC 8446 section 5.2 allows (2^14 + 256 bytes
    /// of ciphertext), or one with a major version other than 3: not TLS.
    BadRecord,
    /// A handshake message longer than [`super::MAX_HANDSHAKE_MESSAGE`].
    MessageTooLong,
    /// A length inside a hello that disagrees with the one around it (a
    /// cipher-suite list of odd length, a ServerHello session id over 32).
    BadLength,
}

impl TlsError {
    /// Stable snake_case reason for drop counters.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Truncated => "tls_hello_incomplete",
            Self::NotHandshake => "tls_not_handshake",
            Self::OtherHandshake => "tls_other_handshake",
            Self::BadRecord => "tls_bad_record",
            Self::MessageTooLong => "tls_message_too_long",
            Self::BadLength => "tls_bad_length",
        }
    }
}

impl From<Truncated> for TlsError {
    fn from(_: Truncated) -> Self {
        Self::Truncated
    }
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for TlsError {}

/// Something wrong in a hello whose mandatory fields parsed: the hello is
/// logged with what parsed, and the anomaly is flagged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anomaly {
    /// An extension's body did not match its type's syntax; its type is
    /// still listed, its values are not used.
    MalformedExtension(ExtensionType),
    /// The same extension type twice (RFC 8446 section 4.2 forbids it);
    /// the first one's values are used.
    DuplicateExtension(ExtensionType),
    /// The extension block ended inside an extension, or its length ran past
    /// the hello: the extensions before it are kept.
    ExtensionsTruncated,
    /// More than [`super::hello::MAX_EXTENSIONS`] extensions: the rest were not read.
    TooManyExtensions,
    /// Bytes after the extension block (or after the compression methods when
    /// there is no block) inside the hello.
    TrailingBytes,
}

impl Anomaly {
    /// Stable snake_case name (notice counter, `palisade.tls.anomalies`).
    pub const fn reason(self) -> &'static str {
        match self {
            Self::MalformedExtension(_) => "tls_malformed_extension",
            Self::DuplicateExtension(_) => "tls_duplicate_extension",
            Self::ExtensionsTruncated => "tls_extensions_truncated",
            Self::TooManyExtensions => "tls_too_many_extensions",
            Self::TrailingBytes => "tls_trailing_bytes",
        }
    }

    /// The text written in `palisade.tls.anomalies`: the reason without its
    /// `tls_` prefix, with the extension number where there is one.
    pub fn describe(self) -> String {
        let name = self.reason().trim_start_matches("tls_");
        match self {
            Self::MalformedExtension(t) | Self::DuplicateExtension(t) => {
                format!("{name}:{}", t.0)
            }
            _ => name.to_owned(),
        }
    }
}
