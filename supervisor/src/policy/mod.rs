//! Policy the supervisor enforces in the kernel: it holds the canonical
//! rule sets (and their SHA-256), validates them fully before anything is
//! applied, and is the only writer of the policy maps.

pub mod dns;
pub mod dns_kernel;
pub mod dns_lists;
pub mod dns_state;
pub mod ip;
pub mod ip_kernel;
pub mod ip_lists;
