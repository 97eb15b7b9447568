//! Palisade's record ABI: what the kernel side writes and what user space may read of it.
//!
//! This crate is the unprivileged half of the kernel interface. It makes no system call at all:
//! it holds the constants and struct layouts of `include/records.h` (the one C header shared by
//! the eBPF programs and Rust), validating readers for ring-buffer records, the DNS name rules
//! the kernel applies, and the names of the object's programs and maps. Workers depend on this
//! crate and on `palisade-worker-runtime`'s ring-buffer reader, and on nothing that can load a
//! program or write a map: that code lives in `palisade-ebpf`, which only the supervisor (and
//! benches and tests) link. `tests/tests/structure.rs` keeps it so.
//!
//! - [`consts`]: the constants of `records.h` (taken from the C header at build time) and typed
//!   views of them: [`Ring`], [`StatGroup`], [`StatSlot`], [`Kind`], the counters' names.
//! - [`records`]: `#[repr(C)]` mirrors of the shared structs, checked against the C layout at
//!   compile time, and readers that validate ring-buffer records.
//! - [`dns_name`]: DNS names exactly as the kernel's domain policy sees them (normalization,
//!   FNV-1a 64 hash, parent suffixes).
//! - [`names`]: program, map and global names of the object, and the sizes it declares.
//! - [`time`]: the calendar arithmetic of EVE timestamps.

pub mod consts;
pub mod dns_name;
pub mod names;
pub mod records;
pub mod time;

pub use consts::*;
pub use names::*;
pub use records::{
    CaptureConfig, DnsConfig, DnsLearned, DnsRule, FlowBlock, FlowConfig, FlowEndArgs, FlowKey,
    FlowRecord, FlowSweep, FlowValue, GuardConfig, GuardKey, GuardSource, GuardSourceKey, Ip4Key,
    Ip6Key, IpBlockRecord, IpConfig, IpRule, RecordError, RecordHeader, RuleKind, TlsConn, TlsSeg,
    TraceConfig, TraceEvent, flow_record,
};

/// The C-side layout facts and constants of records.h, printed by the host probe of `build.rs`.
mod c {
    include!(concat!(env!("OUT_DIR"), "/records_c.rs"));
}
