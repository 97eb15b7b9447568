//! Zero-I/O DNS message parser (RFC 1035 and successors): bytes in, typed
//! values or a small `Copy` error out.
//!
//! Everything reads through one checked cursor (`cursor.rs`): no indexing, no
//! `unwrap`, no `unsafe`, and every loop is bounded (by the bytes left, by
//! [`MAX_RECORDS`], or by [`name::MAX_POINTERS`]). Rejecting input never
//! allocates.
//!
//! # Two entry points
//!
//! * [`parse_message`] is strict: the whole message must be well formed, with
//!   no bytes after the last record, or it returns the first [`ParseError`].
//! * [`parse_message_partial`] is the sensor's best effort: it fails only when
//!   the 12-byte header cannot be read, and otherwise returns a
//!   [`PartialMessage`] holding every section that parsed completely plus the
//!   error that stopped it. Sections are all or nothing: the section named in
//!   `error.section` and every section after it are empty, the ones before it
//!   are complete. So a response with corrupt additional records still yields
//!   its header, questions, answers and authority records.
//!
//! # Bounds
//!
//! * A message is at most 65535 bytes ([`ErrorKind::MessageTooLong`]).
//! * The header counts may claim at most [`MAX_RECORDS`] records in total
//!   ([`ErrorKind::TooManyRecords`], checked before each section starts, so
//!   the earlier sections survive in partial mode). Running out of bytes alone
//!   would bound the work, but only loosely the memory: a record can be 11
//!   bytes whose 2-byte owner pointer expands to a 255-byte name, so a
//!   64 KiB message could grow to megabytes of names. 512 is above any real
//!   UDP message (a 4096-byte EDNS buffer holds at most 371 records of 11
//!   bytes, and one question); only large TCP zone transfers exceed it, and
//!   those keep their header and questions.
//! * Names: see [`name`] (pointers in either direction but never into bytes
//!   the name has already read, at most [`name::MAX_POINTERS`] jumps, at most
//!   255 octets).
//!
//! # Rendering
//!
//! [`Name`] displays in presentation format with case kept, no trailing dot,
//! root as `"."`. [`Rdata::to_presentation`] gives the string Suricata logs as
//! `rdata` (and the corpus' `answers[].data`) where there is one.

#![forbid(unsafe_code)]

mod cursor;
mod edns;
mod error;
mod header;
mod message;
pub mod name;
mod rdata;
mod svcb;
mod text;
mod types;

#[cfg(test)]
mod tests;

pub use edns::{Edns, EdnsOption, EdnsOptionCode};
pub use error::{ErrorKind, ParseError, Section};
pub use header::Header;
pub use message::{
    MAX_MESSAGE_LEN, MAX_RECORDS, Message, PartialMessage, Question, Record, parse_message,
    parse_message_partial,
};
pub use name::Name;
pub use rdata::{Caa, Rdata, Soa, Srv, Sshfp};
pub use svcb::{SvcParam, SvcParamKey, SvcParamValue, Svcb};
pub use text::escape_bytes;
pub use types::{Class, Opcode, Rcode, RrType};
