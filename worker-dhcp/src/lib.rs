//! Palisade DHCP worker library: parsing, event building, and the worker's protocol
//! (`worker`) that `main.rs` runs under the runtime.
pub mod parse;
pub mod worker;
