//! What every Palisade worker shares.
//!
//! A worker binary is a [`Protocol`] implementation plus one call to
//! [`run`]. Everything else (the startup contract, privilege checks,
//! seccomp, the IPC conversation, draining the ring buffer, writing JSON
//! lines, counting every drop) lives here, so the DNS, DHCP, TLS and flow
//! workers cannot drift apart.
//!
//! The startup order is fixed and visible in [`run`]:
//! 1. verify we are unprivileged ([`privilege::verify_unprivileged`]);
//! 2. harden the process (not dumpable, parent-death signal);
//! 3. take FD 3 and handshake with the supervisor;
//! 4. receive configuration and FDs, map the ring buffer (or take the AF_PACKET socket,
//!    [`packet`], when the supervisor runs without eBPF);
//! 5. install the seccomp allow-list ([`seccomp::install`]);
//! 6. only then read the first record.

pub mod alert;
pub mod channel;
pub mod community_id;
pub mod cursor;
pub mod eve;
pub mod json;
pub mod offline;
pub mod packet;
pub mod privilege;
pub mod ringbuf;
pub mod run;
pub mod seccomp;
pub mod sink;
pub mod stats;

pub use run::{Protocol, Record, Started, run, startup};
pub use sink::EventOut;
