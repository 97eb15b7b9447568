//! Palisade flow worker library: flow events (with Community ID), alerts about flows and
//! IP policy drops, and the worker's protocol (`worker`) that `main.rs` runs under the
//! runtime.
pub mod event;
pub mod ip_alert;
pub mod worker;
