//! Palisade DNS worker library: parsing, TCP reassembly, query/answer
//! correlation and event building. `main.rs` wires them to the runtime.
pub mod correlate;
pub mod event;
pub mod parse;
pub mod policy;
pub mod tcp;
