//! Palisade TLS worker library: the handshake parser (`parse`), fingerprints
//! (`fingerprint`) and the EVE `tls` event built from them (`event`).
//! `main.rs` wires them to the runtime.
pub mod event;
pub mod fingerprint;
pub mod parse;
