//! `palisade restart <worker|all>`.

use palisade_ipc::messages::{ControlResponse, RestartTarget, WorkerKind};

use super::failed;
use crate::daemon::Daemon;

/// `restart`: each targeted worker drains and exits, and a new one starts at
/// once (a failed slot is retried).
pub(super) fn restart(
    d: &mut Daemon,
    registry: &mio::Registry,
    target: RestartTarget,
) -> ControlResponse {
    let kinds: Vec<WorkerKind> = match target {
        RestartTarget::All => WorkerKind::ALL.to_vec(),
        RestartTarget::One(k) => vec![k],
    };
    for k in &kinds {
        match d.slots.get_mut(k) {
            Some(slot) => slot.stop(registry, true),
            None => return failed(format!("no {} worker", k.name())),
        }
    }
    ControlResponse::Restarted(kinds)
}
