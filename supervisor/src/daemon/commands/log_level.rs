//! `palisade log-level LEVEL [--worker W]`: the supervisor's tracing filter, or the least
//! severe lines a worker sends, changed at run time (until the daemon stops: the start-up
//! filter is `PALISADE_LOG`).

use palisade_ipc::messages::{
    ControlResponse, LOG_FILTER_MAX, LogLevel, LogLevelChange, SupervisorToWorker,
};

use super::{super::Daemon, failed};

/// Applies `change`.
pub(super) fn set(d: &mut Daemon, change: &LogLevelChange) -> ControlResponse {
    if change.level.len() > LOG_FILTER_MAX {
        return failed(format!("a log filter has at most {LOG_FILTER_MAX} bytes"));
    }
    let Some(kind) = change.worker else {
        return match crate::set_log_filter(&change.level) {
            Ok(()) => {
                tracing::warn!(filter = %change.level, "log filter changed");
                ControlResponse::LogLevelSet(change.clone())
            }
            Err(e) => failed(format!("log filter {:?}: {e}", change.level)),
        };
    };
    let Some(level) = LogLevel::from_name(&change.level) else {
        return failed(format!(
            "a worker's log level is error, warn or info, not {:?} (workers send no debug lines)",
            change.level
        ));
    };
    let Some(slot) = d.slots.get_mut(&kind) else {
        return failed(format!("no {} worker is configured", kind.name()));
    };
    slot.log_level = level;
    // A worker not running now gets it when it is ready (`on_slot_event`).
    slot.send(&SupervisorToWorker::SetLogLevel(level));
    ControlResponse::LogLevelSet(LogLevelChange {
        level: level.name().to_owned(),
        worker: Some(kind),
    })
}
