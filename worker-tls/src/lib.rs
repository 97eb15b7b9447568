//! Palisade TLS worker library: the handshake parser (`parse`), fingerprints
//! (`fingerprint`), the reassembly of followed connections (`reassembly`,
//! `conn`) and the EVE `tls` event built from them (`event`). `main.rs`
//! wires them to the runtime.
pub mod conn;
pub mod event;
pub mod fingerprint;
pub mod parse;
pub mod reassembly;
