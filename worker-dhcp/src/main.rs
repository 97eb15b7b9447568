//! palisade-worker-dhcp: DHCP records -> EVE `dhcp` events (`worker.rs`).
//!
//! Started by `palisade run` only (it refuses to run privileged or by hand).

use std::process::ExitCode;

fn main() -> ExitCode {
    palisade_worker_runtime::run(palisade_worker_dhcp::worker::Dhcp::default())
}
