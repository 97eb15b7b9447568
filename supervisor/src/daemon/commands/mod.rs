//! The control socket's requests, answered by the daemon. [`Daemon::handle`]
//! is the one dispatch: a line per request, delegating to its family's
//! module:
//! - `status`, `version` (and so `palisade metrics`, which renders `status`) in [`status`];
//! - `restart` in [`workers`];
//! - `reload`, `reopen-logs` in [`reload`];
//! - `dns test`, `dns blocked-hits` in [`dns`];
//! - `flows top`, `flows show` in [`flows`];
//! - `block add`, `block remove`, `block list` (the IP policy) in [`block`];
//! - `tls rules add`, `tls rules remove`, `tls rules list` in [`tls`];
//! - `devices` (the DHCP worker's inventory file, unparsed) in [`devices`];
//! - `guard` (the DHCP guard's mode, allow-list and rogue senders) in [`guard`];
//! - `log-level` (the supervisor's tracing filter, a worker's level) in [`log_level`];
//! - `feature list|enable|disable` (runtime switches) in [`features`];
//! - `trace` (start, poll, stop) straight to `crate::trace::Tracer`.
//!
//! A new command goes into the family it belongs to (or a new module
//! here), as a function taking the daemon and returning the
//! `ControlResponse`, plus its line below; `control::is_mutating` decides
//! who may send it. Handlers run on the event loop, between two polls.

mod block;
mod devices;
mod dns;
mod features;
mod flows;
mod guard;
mod log_level;
mod reload;
mod status;
mod tls;
mod workers;

use palisade_ipc::messages::{ControlErrorKind, ControlRequest, ControlResponse};

pub use self::status::version_info;
use super::Daemon;

impl Daemon {
    /// Answers one control request.
    pub(super) fn handle(
        &mut self,
        registry: &mio::Registry,
        req: &ControlRequest,
    ) -> ControlResponse {
        match req {
            ControlRequest::Status => status::status(self),
            ControlRequest::Version => status::version(),
            ControlRequest::Restart(target) => workers::restart(self, registry, *target),
            ControlRequest::Reload => reload::reload(self),
            ControlRequest::ReopenLogs => reload::reopen_logs(self, registry),
            ControlRequest::DnsTest(name) => dns::test(self, name),
            ControlRequest::DnsBlockedHits => dns::blocked_hits(self),
            ControlRequest::FlowsTop { by, limit } => flows::top(self, *by, *limit),
            ControlRequest::FlowsShow { host, limit } => flows::show(self, host, *limit),
            ControlRequest::BlockAdd(add) => block::add(self, add),
            ControlRequest::BlockRemove(cidr) => block::remove(self, cidr),
            ControlRequest::BlockList { limit } => block::list(self, *limit),
            ControlRequest::TlsRuleAdd(spec) => tls::add(self, spec),
            ControlRequest::TlsRuleRemove(spec) => tls::remove(self, spec),
            ControlRequest::TlsRuleList { limit } => tls::list(self, *limit),
            ControlRequest::Devices { offset } => devices::chunk(self, *offset),
            ControlRequest::Check => ControlResponse::Checked(self.check_drift(registry)),
            ControlRequest::Guard { limit } => guard::report(self, *limit),
            ControlRequest::LogLevel(change) => log_level::set(self, change),
            ControlRequest::Features => ControlResponse::Features(self.features.states()),
            ControlRequest::FeatureSet { name, enabled } => {
                features::set(self, registry, name, *enabled)
            }
            ControlRequest::TraceStart(filter) => {
                let started = self.trace.start(self.loaded.as_ref(), filter.clone());
                self.trace_written();
                trace_answer(started)
            }
            ControlRequest::TracePoll { after } => {
                ControlResponse::Trace(Box::new(self.trace.poll(*after)))
            }
            ControlRequest::TraceStop => {
                let names = crate::trace::Names {
                    interfaces: &self.interfaces,
                    dns: &self.dns,
                    tls: &self.tls.rules,
                };
                let stopped = self.trace.stop(self.loaded.as_ref(), &names);
                self.trace_written();
                trace_answer(stopped)
            }
        }
    }
}

impl Daemon {
    /// The trace's filter changed in the kernel: what drift checks expect there now.
    pub(super) fn trace_written(&mut self) {
        if let Some(loaded) = &self.loaded {
            self.drift.config_written(loaded);
        }
    }
}

/// A trace request's answer.
fn trace_answer(r: Result<palisade_ipc::messages::TraceReport, String>) -> ControlResponse {
    match r {
        Ok(report) => ControlResponse::Trace(Box::new(report)),
        Err(e) => failed(e),
    }
}

/// The answer to a request that failed: `message` is what the CLI prints.
fn failed(message: String) -> ControlResponse {
    ControlResponse::Error {
        kind: ControlErrorKind::Failed,
        message,
    }
}
