//! Query/response correlation per (flow, id): answers get the query's
//! timestamp and the round-trip time; queries left unanswered for
//! [`TIMEOUT_NS`] are reported. Bounded: when [`MAX_PENDING`] queries are
//! waiting, new ones are not tracked and the overflow is counted.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
};

/// Queries waiting for an answer at most.
pub const MAX_PENDING: usize = 16_384;
/// A query unanswered this long is reported as unanswered.
pub const TIMEOUT_NS: u64 = 5_000_000_000;

/// Identifies a query: client address/port, server address/port, L4
/// protocol, DNS id.
pub type QueryKey = (IpAddr, u16, IpAddr, u16, u8, u16);

/// A query waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending<T> {
    /// Boot-clock time of the query.
    pub ts_ns: u64,
    /// What the caller needs to report it later.
    pub info: T,
}

/// The correlation table.
#[derive(Debug)]
pub struct Correlator<T> {
    pending: HashMap<QueryKey, Pending<T>>,
    /// (query time, key) in arrival order, for expiry.
    order: VecDeque<(u64, QueryKey)>,
}

impl<T> Default for Correlator<T> {
    fn default() -> Self {
        Self {
            pending: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

/// Result of recording a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Track {
    /// Tracked.
    Tracked,
    /// A query with the same key was already waiting (retransmission): the
    /// older one is replaced.
    Replaced,
    /// The table is full: not tracked.
    Full,
}

impl<T> Correlator<T> {
    /// Records a query.
    pub fn query(&mut self, key: QueryKey, ts_ns: u64, info: T) -> Track {
        let replaced = self.pending.contains_key(&key);
        if !replaced && self.pending.len() >= MAX_PENDING {
            return Track::Full;
        }
        self.pending.insert(key, Pending { ts_ns, info });
        self.order.push_back((ts_ns, key));
        if replaced {
            Track::Replaced
        } else {
            Track::Tracked
        }
    }

    /// Matches an answer (key as seen from the query's side); returns the
    /// query it answers.
    pub fn answer(&mut self, key: &QueryKey) -> Option<Pending<T>> {
        self.pending.remove(key)
    }

    /// Removes and returns queries older than the timeout at `now_ns`.
    pub fn expire(&mut self, now_ns: u64) -> Vec<(QueryKey, Pending<T>)> {
        let mut out = Vec::new();
        while let Some(&(ts, key)) = self.order.front() {
            if now_ns.saturating_sub(ts) < TIMEOUT_NS {
                break;
            }
            self.order.pop_front();
            // Only if this entry is the one still pending (not answered,
            // not replaced by a later query with the same key).
            if self.pending.get(&key).is_some_and(|p| p.ts_ns == ts)
                && let Some(p) = self.pending.remove(&key)
            {
                out.push((key, p));
            }
        }
        // The order queue may hold stale entries for answered queries; keep
        // it bounded too.
        while self.order.len() > 2 * MAX_PENDING {
            self.order.pop_front();
        }
        out
    }

    /// Queries waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when none is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "a panic is a test failure")]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn key(id: u16) -> QueryKey {
        (
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            40000,
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            53,
            17,
            id,
        )
    }

    #[test]
    fn answer_matches_query() {
        let mut c = Correlator::default();
        assert_eq!(c.query(key(1), 100, "a"), Track::Tracked);
        assert_eq!(c.answer(&key(2)), None);
        assert_eq!(
            c.answer(&key(1)),
            Some(Pending {
                ts_ns: 100,
                info: "a"
            })
        );
        assert!(c.is_empty());
        assert!(
            c.expire(u64::MAX).is_empty(),
            "answered queries never time out"
        );
    }

    #[test]
    fn unanswered_queries_expire_in_order() {
        let mut c = Correlator::default();
        c.query(key(1), 0, 1);
        c.query(key(2), 1_000_000_000, 2);
        assert!(c.expire(TIMEOUT_NS - 1).is_empty());
        let out = c.expire(TIMEOUT_NS);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.info, 1);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn retransmission_replaces_and_expires_once() {
        let mut c = Correlator::default();
        c.query(key(1), 0, "first");
        assert_eq!(c.query(key(1), 10, "again"), Track::Replaced);
        let out = c.expire(TIMEOUT_NS + 10);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.info, "again");
    }

    #[test]
    fn bounded() {
        let mut c = Correlator::default();
        for i in 0..MAX_PENDING {
            let (a, _, s, p, l, _) = key(0);
            c.query((a, (i >> 16) as u16, s, p, l, i as u16), 0, ());
        }
        assert_eq!(c.len(), MAX_PENDING);
        assert_eq!(
            c.query(
                (
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    1,
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    53,
                    17,
                    9
                ),
                0,
                ()
            ),
            Track::Full
        );
    }
}
