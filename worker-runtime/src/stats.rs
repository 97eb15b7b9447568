//! The worker's counters: everything it consumed, wrote and lost, and what it noted
//! without losing anything.

use std::collections::BTreeMap;

use palisade_ipc::messages::{DropCount, WorkerStats};

/// Drop reason: a ring record failed the header check (magic, ABI, length).
pub const DROP_BAD_RECORD: &str = "bad_record";
/// Drop reason: writing to the sink failed (disk full, pipe closed...).
pub const DROP_SINK_ERROR: &str = "sink_error";
/// Drop reason: a sink write failed part-way through this event's line; the partial line is
/// terminated before the next write.
pub const DROP_SINK_PARTIAL_LINE: &str = "sink_partial_line";
/// Drop reason: a record of a kind this worker does not handle.
pub const DROP_UNEXPECTED_KIND: &str = "unexpected_kind";

/// Counters since this process started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records consumed from the ring buffer.
    pub records: u64,
    /// Events written.
    pub events: u64,
    /// Bytes written to the sink.
    pub bytes: u64,
    drops: BTreeMap<&'static str, u64>,
    notices: BTreeMap<&'static str, u64>,
    gauges: BTreeMap<&'static str, u64>,
}

fn counts(map: &BTreeMap<&'static str, u64>) -> Vec<DropCount> {
    map.iter()
        .map(|(reason, count)| DropCount {
            reason: (*reason).to_owned(),
            count: *count,
        })
        .collect()
}

impl Stats {
    /// Counts `n` events lost for `reason` (snake_case, static).
    pub fn drop(&mut self, reason: &'static str, n: u64) {
        *self.drops.entry(reason).or_default() += n;
    }

    /// Counts `n` notices for `reason`: something an event could have had and does not
    /// (e.g. no RTT for a query the correlation table had no room for). No event was lost.
    pub fn notice(&mut self, reason: &'static str, n: u64) {
        if n > 0 {
            *self.notices.entry(reason).or_default() += n;
        }
    }

    /// Sets the level of gauge `name` (reported as it is, not summed).
    pub fn gauge(&mut self, name: &'static str, value: u64) {
        self.gauges.insert(name, value);
    }

    /// Total notices for one reason.
    pub fn notices(&self, reason: &str) -> u64 {
        self.notices.get(reason).copied().unwrap_or(0)
    }

    /// Total drops for one reason.
    pub fn drops(&self, reason: &str) -> u64 {
        self.drops.get(reason).copied().unwrap_or(0)
    }

    /// Snapshot for IPC.
    pub fn snapshot(&self) -> WorkerStats {
        WorkerStats {
            records: self.records,
            events: self.events,
            bytes: self.bytes,
            drops: counts(&self.drops),
            notices: counts(&self.notices),
            gauges: counts(&self.gauges),
        }
    }
}
