//! Palisade DNS worker library: parsing, TCP reassembly, query/answer
//! correlation, event building, and the worker's protocol (`worker`) that
//! `main.rs` runs under the runtime.
pub mod correlate;
pub mod event;
pub mod parse;
pub mod policy;
pub mod tcp;
pub mod worker;
