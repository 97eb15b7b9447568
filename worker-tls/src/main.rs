//! palisade-worker-tls: followed TLS handshakes -> EVE `tls` events (`worker.rs`).
//!
//! Started by `palisade run` only (it refuses to run privileged or by hand).

use std::process::ExitCode;

fn main() -> ExitCode {
    palisade_worker_runtime::run(palisade_worker_tls::worker::Tls::default())
}
