//! Policy the supervisor enforces in the kernel: it holds the canonical
//! rule sets (and their SHA-256), validates them fully before anything is
//! applied, and is the only writer of the policy maps.
//!
//! Per policy: its lists (`*_lists`), the rules in force (`dns`, `dns_state`,
//! `ip`), the kernel writes (`*_kernel`), and the transactions that change
//! them at run time: `dns_verdicts` (names learned from the workers'
//! verdicts) and `ip_block` (`palisade block`, TTL expiry, hook moves). The TLS policy
//! (`tls`) has its rules matched by the TLS worker and only writes the connections they cut.
//! The DHCP guard (`guard`) writes its allow-list and mode.
//! A list's errors are [`bad_lines::BadLines`]: every bad line of a file is
//! found, the first few are named.

pub mod bad_lines;
pub mod dns;
pub mod dns_kernel;
pub mod dns_lists;
pub mod dns_state;
pub mod dns_verdicts;
pub mod guard;
pub mod ip;
pub mod ip_block;
pub mod ip_kernel;
pub mod ip_lists;
pub mod tls;
