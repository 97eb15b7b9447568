//! A slot's health: the deadlines it is held to (readiness after start,
//! heartbeats while running, exit after a stop request), and what `status`
//! shows of it.

use std::{collections::BTreeMap, time::Instant};

use mio::Registry;
use palisade_ipc::messages::{DropCount, WorkerStats, WorkerStatus};

use super::{MISSED_HEARTBEATS, READY_TIMEOUT, WorkerSlot};

/// Adds a process's counters to a total (drops and notices summed by reason).
pub(super) fn add_stats(total: &mut WorkerStats, more: &WorkerStats) {
    total.records += more.records;
    total.events += more.events;
    total.bytes += more.bytes;
    add_counts(&mut total.drops, &more.drops);
    add_counts(&mut total.notices, &more.notices);
    // Levels, not totals: the latest process's (the caller adds the current one last).
    total.gauges = more.gauges.clone();
}

fn add_counts(total: &mut Vec<DropCount>, more: &[DropCount]) {
    let mut by_reason: BTreeMap<String, u64> =
        total.drain(..).map(|d| (d.reason, d.count)).collect();
    for d in more {
        *by_reason.entry(d.reason.clone()).or_default() += d.count;
    }
    *total = by_reason
        .into_iter()
        .map(|(reason, count)| DropCount { reason, count })
        .collect();
}

impl WorkerSlot {
    /// Timers: heartbeat and readiness deadlines, stop timeouts, restarts.
    pub fn tick(&mut self, registry: &Registry, now: Instant) {
        if let Some(p) = self.process.as_ref() {
            let reason = if p.stop_deadline.is_some_and(|d| now >= d) {
                Some("did not stop in time".to_owned())
            } else if p.ready_at.is_none() && now.duration_since(p.spawned_at) >= READY_TIMEOUT {
                Some(format!("not ready after {READY_TIMEOUT:?}"))
            } else if let Some(hb) = p.last_heartbeat {
                let limit = self.heartbeat * MISSED_HEARTBEATS;
                (now.duration_since(hb) > limit).then(|| format!("missed heartbeats for {limit:?}"))
            } else {
                None
            };
            if let Some(reason) = reason
                && p.killed_for.is_none()
            {
                self.kill(registry, reason);
            }
        } else if self.restart_at.is_some_and(|t| now >= t) {
            self.start(registry);
        }
    }

    /// Earliest instant this slot needs a tick.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.process {
            Some(p) => {
                let hb = p
                    .last_heartbeat
                    .map(|t| t + self.heartbeat * MISSED_HEARTBEATS);
                let ready = p.ready_at.is_none().then_some(p.spawned_at + READY_TIMEOUT);
                [hb, ready, p.stop_deadline].into_iter().flatten().min()
            }
            None => self.restart_at,
        }
    }

    /// Status for `palisade status`.
    pub fn status(&self, now: Instant) -> WorkerStatus {
        let mut stats = self.past.clone();
        if let Some(p) = &self.process {
            add_stats(&mut stats, &p.stats);
        }
        WorkerStatus {
            kind: self.kind,
            state: self.state,
            pid: self.pid(),
            uid: self.creds.uid,
            gid: self.creds.gid,
            uptime_ms: self
                .process
                .as_ref()
                .and_then(|p| p.ready_at)
                .map(|t| now.duration_since(t).as_millis() as u64),
            restarts: self.restarts,
            violations: self.violations,
            last_heartbeat_ms_ago: self
                .process
                .as_ref()
                .and_then(|p| p.last_heartbeat)
                .map(|t| now.duration_since(t).as_millis() as u64),
            last_exit: self.last_exit.clone(),
            stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_accumulate_by_reason() {
        let mut total = WorkerStats::default();
        let a = WorkerStats {
            records: 1,
            events: 1,
            bytes: 10,
            drops: vec![DropCount {
                reason: "x".into(),
                count: 2,
            }],
            notices: vec![DropCount {
                reason: "y".into(),
                count: 1,
            }],
            gauges: vec![DropCount {
                reason: "g".into(),
                count: 5,
            }],
        };
        add_stats(&mut total, &a);
        add_stats(&mut total, &a);
        assert_eq!(total.records, 2);
        assert_eq!(
            total.drops,
            vec![DropCount {
                reason: "x".into(),
                count: 4
            }]
        );
        assert_eq!(total.notices.first().map(|n| n.count), Some(2));
    }
}
