//! `palisade reload` and `palisade reopen-logs` (SIGHUP does both).

use palisade_ipc::messages::ControlResponse;

use super::failed;
use crate::daemon::Daemon;

/// `reload`: see `daemon::reload`; a refusal leaves the running configuration.
pub(super) fn reload(d: &mut Daemon) -> ControlResponse {
    match d.reload() {
        Ok(r) => {
            tracing::info!(report = ?r, "configuration reloaded");
            ControlResponse::Reloaded(r)
        }
        Err(e) => {
            let message = crate::error_chain(&e);
            tracing::error!("reload refused, the running configuration stays in force: {message}");
            failed(message)
        }
    }
}

/// `reopen-logs`: new event log files, workers restarted onto them.
pub(super) fn reopen_logs(d: &mut Daemon, registry: &mio::Registry) -> ControlResponse {
    match d.reopen_logs(registry) {
        Ok(kinds) => ControlResponse::LogsReopened(kinds),
        Err(e) => failed(crate::error_chain(&e)),
    }
}
