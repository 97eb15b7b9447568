//! Palisade TLS worker library: parsing and event building.
pub mod parse;
