//! Palisade DHCP worker library: DHCPv4 and DHCPv6 parsing, event building, transaction
//! tracking, the device inventory, ARP and neighbour discovery (`neigh`, `bindings`), and the worker's protocol (`worker`) that `main.rs` runs
//! under the runtime.
pub mod bindings;
pub mod devices;
pub mod event;
pub mod neigh;
pub mod parse;
pub mod parse6;
pub mod transaction;
pub mod worker;
