//! Palisade TLS worker library: the handshake parser (`parse`), fingerprints
//! (`fingerprint`), the reassembly of followed connections (`reassembly`,
//! `conn`) and the EVE `tls` event built from them (`event`), and the
//! worker's protocol (`worker`), which `main.rs` runs under the runtime.
pub mod conn;
pub mod event;
pub mod fingerprint;
pub mod parse;
pub mod policy;
pub mod quic;
pub mod reassembly;
pub mod worker;
