//! Why a message was rejected, and in which section.

use std::fmt;

/// What was wrong with the bytes. `Copy`, so rejecting input never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The message ended inside a field.
    Truncated,
    /// The message is longer than 65535 bytes, which no DNS transport carries.
    MessageTooLong,
    /// The header counts claim more than [`super::MAX_RECORDS`] records.
    TooManyRecords,
    /// A label length byte starts with `0b01` (extended) or `0b10` (reserved).
    /// A length above 63 always lands here: its top bits cannot be `0b00`.
    BadLabelType,
    /// A compression pointer points into bytes this name has already read
    /// (see [`super::name`]); pointing forward is allowed.
    PointerLoop,
    /// A name follows more than [`super::name::MAX_POINTERS`] pointers.
    TooManyPointers,
    /// A decompressed name is longer than 255 octets.
    NameTooLong,
    /// The rdata decoder needed more or fewer bytes than `rdlength`.
    RdataLengthMismatch,
    /// SVCB/HTTPS parameters out of order, or a known key with a bad value.
    BadSvcParam,
    /// Bytes left after the last record the header announced.
    TrailingBytes,
}

impl ErrorKind {
    /// Stable snake_case name, used as a metrics label.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::MessageTooLong => "message_too_long",
            Self::TooManyRecords => "too_many_records",
            Self::BadLabelType => "bad_label_type",
            Self::PointerLoop => "pointer_loop",
            Self::TooManyPointers => "too_many_pointers",
            Self::NameTooLong => "name_too_long",
            Self::RdataLengthMismatch => "rdata_length_mismatch",
            Self::BadSvcParam => "bad_svc_param",
            Self::TrailingBytes => "trailing_bytes",
        }
    }
}

/// Where in the message the error was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    Header,
    Question,
    Answer,
    Authority,
    Additional,
    /// After the additional section (only [`ErrorKind::TrailingBytes`]).
    End,
}

impl Section {
    /// Stable snake_case name, used as a metrics label.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Question => "question",
            Self::Answer => "answer",
            Self::Authority => "authority",
            Self::Additional => "additional",
            Self::End => "end",
        }
    }
}

/// A rejected message: what was wrong and in which section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParseError {
    pub kind: ErrorKind,
    pub section: Section,
}

impl ParseError {
    pub const fn new(kind: ErrorKind, section: Section) -> Self {
        Self { kind, section }
    }

    /// Stable snake_case name of the kind, used as a metrics label.
    pub const fn reason(self) -> &'static str {
        self.kind.reason()
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.section {
            Section::End => write!(
                f,
                "malformed DNS message: {} after the last record",
                self.reason()
            ),
            section => write!(
                f,
                "malformed DNS message: {} in the {} section",
                self.reason(),
                section.name()
            ),
        }
    }
}

impl std::error::Error for ParseError {}
