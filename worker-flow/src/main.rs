//! palisade-worker-flow: flow records -> EVE `flow` events, flow alerts and IP policy
//! alerts (`worker.rs`).
//!
//! Started by `palisade run` only (it refuses to run privileged or by hand).

use std::process::ExitCode;

fn main() -> ExitCode {
    palisade_worker_runtime::run(palisade_worker_flow::worker::Flow::default())
}
