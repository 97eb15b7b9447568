//! Palisade DNS worker library: parsing and event building.
pub mod event;
pub mod parse;
