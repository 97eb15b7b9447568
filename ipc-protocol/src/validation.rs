//! Which messages each side may send in each state, and bounds on their
//! contents. The supervisor treats anything outside this table as an attack:
//! it kills the worker and counts a violation (ARCHITECTURE.md invariant 3).

use crate::messages::{DropCount, WorkerKind, WorkerToSupervisor};

/// Longest log line a worker may send.
pub const MAX_LOG_LEN: usize = 1024;
/// Most drop reasons one stats message may carry.
pub const MAX_DROP_REASONS: usize = 64;
/// Longest drop reason name.
pub const MAX_REASON_LEN: usize = 64;
/// Longest domain name in a block request (presentation format).
pub const MAX_NAME_LEN: usize = 255;
/// Most CNAME targets in one check.
pub const MAX_CNAME_TARGETS: usize = 16;

/// The supervisor's view of one worker conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerSession {
    /// Waiting for the worker's handshake frame (raw, not bincode).
    AwaitHello,
    /// Configuration and FDs sent; waiting for `Ready`.
    AwaitReady,
    /// Ready: heartbeats, stats and logs flow.
    Running,
    /// `Shutdown` sent: final stats and logs may still arrive.
    Draining,
}

/// A message the worker was not allowed to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// Message not allowed in this state.
    #[error("{worker} worker sent {message} while {state:?}")]
    Unexpected {
        worker: &'static str,
        message: &'static str,
        state: WorkerSession,
    },
    /// A field exceeds its bound.
    #[error("{worker} worker sent {message} with {field} out of bounds")]
    OutOfBounds {
        worker: &'static str,
        message: &'static str,
        field: &'static str,
    },
}

/// Short name of a worker message, for logs.
pub fn message_name(msg: &WorkerToSupervisor) -> &'static str {
    match msg {
        WorkerToSupervisor::Ready => "Ready",
        WorkerToSupervisor::Heartbeat { .. } => "Heartbeat",
        WorkerToSupervisor::Stats(_) => "Stats",
        WorkerToSupervisor::Log { .. } => "Log",
        WorkerToSupervisor::BlockRequest { .. } => "BlockRequest",
        WorkerToSupervisor::RulesetApplied { .. } => "RulesetApplied",
        WorkerToSupervisor::CnameCheck { .. } => "CnameCheck",
        WorkerToSupervisor::FlowBlockRequest(_) => "FlowBlockRequest",
    }
}

/// A counter reason must be a short snake_case word (it becomes a metric label).
fn bad_reason(d: &DropCount) -> bool {
    d.reason.is_empty()
        || d.reason.len() > MAX_REASON_LEN
        || !d
            .reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks a decoded worker message against the state table and bounds.
/// `AwaitHello` admits no bincode message at all (the hello is raw).
pub fn check_worker_message(
    worker: WorkerKind,
    state: WorkerSession,
    msg: &WorkerToSupervisor,
) -> Result<(), Violation> {
    use WorkerSession::*;
    use WorkerToSupervisor as M;
    let dns = worker == WorkerKind::Dns;
    let allowed = match (state, msg) {
        (AwaitReady, M::Ready | M::Log { .. }) => true,
        (Running | Draining, M::Heartbeat { .. } | M::Stats(_) | M::Log { .. }) => true,
        // Only the DNS worker matches regexes and reads CNAME chains; the
        // DNS and flow workers apply policies.
        (Running, M::BlockRequest { .. } | M::CnameCheck { .. }) => dns,
        // Only the TLS worker matches TLS rules.
        (Running, M::FlowBlockRequest(_)) => worker == WorkerKind::Tls,
        (Running, M::RulesetApplied { .. }) => {
            dns || worker == WorkerKind::Flow
                || worker == WorkerKind::Tls
                || worker == WorkerKind::Dhcp
        }
        _ => false,
    };
    let name = message_name(msg);
    if !allowed {
        return Err(Violation::Unexpected {
            worker: worker.name(),
            message: name,
            state,
        });
    }
    let oob = |field| Violation::OutOfBounds {
        worker: worker.name(),
        message: name,
        field,
    };
    match msg {
        M::Log { message, .. } if message.len() > MAX_LOG_LEN => Err(oob("message")),
        M::BlockRequest { name, .. } if name.is_empty() || name.len() > MAX_NAME_LEN => {
            Err(oob("name"))
        }
        M::CnameCheck { name, .. } if name.is_empty() || name.len() > MAX_NAME_LEN => {
            Err(oob("name"))
        }
        M::CnameCheck { targets, .. }
            if targets.is_empty()
                || targets.len() > MAX_CNAME_TARGETS
                || targets
                    .iter()
                    .any(|t| t.is_empty() || t.len() > MAX_NAME_LEN) =>
        {
            Err(oob("targets"))
        }
        M::FlowBlockRequest(r) if r.observed.is_empty() || r.observed.len() > MAX_NAME_LEN => {
            Err(oob("observed"))
        }
        M::FlowBlockRequest(r) if !matches!(r.ip_version, 4 | 6) => Err(oob("ip_version")),
        M::FlowBlockRequest(r) if !matches!(r.l4_proto, 6 | 17) => Err(oob("l4_proto")),
        M::Stats(stats) if stats.drops.len() > MAX_DROP_REASONS => Err(oob("drops")),
        M::Stats(stats) if stats.notices.len() > MAX_DROP_REASONS => Err(oob("notices")),
        M::Stats(stats) if stats.drops.iter().any(bad_reason) => Err(oob("drops.reason")),
        M::Stats(stats) if stats.notices.iter().any(bad_reason) => Err(oob("notices.reason")),
        M::Stats(stats) if stats.gauges.len() > MAX_DROP_REASONS => Err(oob("gauges")),
        M::Stats(stats) if stats.gauges.iter().any(bad_reason) => Err(oob("gauges.reason")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{LogLevel, WorkerStats};

    const K: WorkerKind = WorkerKind::Dns;

    #[test]
    fn state_table() {
        use WorkerSession::*;
        let hb = WorkerToSupervisor::Heartbeat { seq: 1 };
        let ready = WorkerToSupervisor::Ready;
        assert!(check_worker_message(K, AwaitHello, &ready).is_err());
        assert!(check_worker_message(K, AwaitHello, &hb).is_err());
        assert!(check_worker_message(K, AwaitReady, &ready).is_ok());
        assert!(check_worker_message(K, AwaitReady, &hb).is_err());
        assert!(check_worker_message(K, Running, &hb).is_ok());
        assert!(
            check_worker_message(K, Running, &ready).is_err(),
            "Ready twice is a violation"
        );
        assert!(check_worker_message(K, Draining, &hb).is_ok());
        assert!(check_worker_message(K, Draining, &ready).is_err());
        let req = WorkerToSupervisor::BlockRequest {
            name: "x.example".into(),
            rule_id: 1,
        };
        assert!(check_worker_message(K, Running, &req).is_ok());
        assert!(
            check_worker_message(WorkerKind::Tls, Running, &req).is_err(),
            "only the DNS worker may ask"
        );
        assert!(check_worker_message(K, AwaitReady, &req).is_err());
        let block = WorkerToSupervisor::FlowBlockRequest(crate::messages::FlowBlockRequest {
            rule_id: 1,
            observed: "evil.example".into(),
            ip_version: 4,
            l4_proto: 6,
            src: ([0; 16], 1),
            dst: ([0; 16], 2),
            hello_ns: 3,
        });
        assert!(check_worker_message(WorkerKind::Tls, Running, &block).is_ok());
        assert!(
            check_worker_message(K, Running, &block).is_err(),
            "only the TLS worker may ask to cut a connection"
        );
    }

    #[test]
    fn bounds() {
        let long = WorkerToSupervisor::Log {
            level: LogLevel::Info,
            message: "x".repeat(MAX_LOG_LEN + 1),
        };
        assert!(check_worker_message(K, WorkerSession::Running, &long).is_err());
        let bad_reason = WorkerToSupervisor::Stats(WorkerStats {
            drops: vec![DropCount {
                reason: "Bad Reason\n".into(),
                count: 1,
            }],
            ..WorkerStats::default()
        });
        assert!(check_worker_message(K, WorkerSession::Running, &bad_reason).is_err());
        let many = WorkerToSupervisor::Stats(WorkerStats {
            drops: (0..=MAX_DROP_REASONS)
                .map(|i| DropCount {
                    reason: format!("r{i}"),
                    count: 1,
                })
                .collect(),
            ..WorkerStats::default()
        });
        assert!(check_worker_message(K, WorkerSession::Running, &many).is_err());
        let bad_notice = WorkerToSupervisor::Stats(WorkerStats {
            notices: vec![DropCount {
                reason: String::new(),
                count: 1,
            }],
            ..WorkerStats::default()
        });
        assert!(check_worker_message(K, WorkerSession::Running, &bad_notice).is_err());
    }
}
