//! The kernel side, as the supervisor manages it: loading the object,
//! pinning, attaching, and reading counters. The only code in Palisade that
//! calls BPF_PROG_LOAD, creates maps, attaches or pins (invariant 1).

pub mod attach;
pub mod clsact;
pub mod counters;
pub mod loader;
pub mod maps;
pub mod pin;
pub mod xdp;
