//! DHCP transactions: the messages of one exchange, keyed by (transaction id, client),
//! from the first message until the answer that ends it or until it expires.
//!
//! DHCPv4: DISCOVER, OFFER, REQUEST, ACK share one xid; ACK ends the transaction
//! (`complete`), NAK and DECLINE end it `rejected`, RELEASE `released`; INFORM is answered
//! by ACK. DHCPv6: SOLICIT/ADVERTISE and REQUEST (RENEW, REBIND, CONFIRM,
//! INFORMATION-REQUEST, RELEASE, DECLINE)/REPLY are separate exchanges with their own
//! transaction ids (RFC 8415 section 18); ADVERTISE and REPLY end them (`complete`).
//!
//! Memory is bounded: at most [`MAX_OPEN`] open transactions; a transaction open longer
//! than the timeout, or the oldest one when the table is full, is taken out and returned
//! to the caller (which writes it as `incomplete` and counts it). Expiry is checked in
//! creation order from a queue, so a tick costs only the expired entries.

use std::collections::{HashMap, VecDeque};

use palisade_abi::RecordHeader;

/// Open transactions kept at most.
pub const MAX_OPEN: usize = 4096;
/// Default time a transaction may stay open, nanoseconds (30 s; `dhcp.transaction_timeout`).
pub const DEFAULT_TIMEOUT_NS: u64 = 30_000_000_000;
/// Message types kept per transaction at most.
const MAX_MESSAGES: usize = 16;

/// What identifies a transaction: the transaction id and the client (its MAC for DHCPv4,
/// its DUID for DHCPv6, which has no fixed client address field).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// 4 or 6.
    pub version: u8,
    pub xid: u32,
    pub client: Vec<u8>,
}

/// What a message does to its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Opens it, or continues it.
    Continue,
    /// Ends it with this state (`complete`, `rejected`, `released`).
    End(&'static str),
}

/// One transaction.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The first message's header (time, addresses, interface) for the event written if it
    /// expires.
    pub first: RecordHeader,
    /// The client MAC when known.
    pub client_mac: Option<[u8; 6]>,
    /// Message type names seen, in order.
    pub messages: Vec<&'static str>,
    /// When it started (record time).
    pub start_ns: u64,
}

/// A transaction that left the table, and how.
#[derive(Debug)]
pub struct Ended {
    pub key: Key,
    pub transaction: Transaction,
    /// `complete`, `rejected`, `released`, or `incomplete` (expired or evicted).
    pub state: &'static str,
    /// Why an incomplete one left (`expired` or `evicted`).
    pub reason: Option<&'static str>,
}

/// The table of open transactions.
#[derive(Debug)]
pub struct Transactions {
    open: HashMap<Key, Transaction>,
    /// Keys in creation order with their start, for expiry; entries whose transaction
    /// ended (or was replaced) are skipped when they reach the front.
    order: VecDeque<(u64, Key)>,
    timeout_ns: u64,
    /// Transactions ever opened.
    pub opened: u64,
}

impl Default for Transactions {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT_NS)
    }
}

impl Transactions {
    /// An empty table whose transactions expire after `timeout_ns`.
    pub fn new(timeout_ns: u64) -> Self {
        Self {
            open: HashMap::new(),
            order: VecDeque::new(),
            timeout_ns,
            opened: 0,
        }
    }

    /// Changes the timeout (applies to open transactions too).
    pub fn set_timeout(&mut self, timeout_ns: u64) {
        self.timeout_ns = timeout_ns;
    }

    /// Open transactions now (the `dhcp_open_transactions` gauge).
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// No open transactions.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Records one message of type `name`: returns the transaction's state after it (the
    /// message types seen, whether it ended, its start) and, when the table was full, the
    /// transaction evicted to make room.
    pub fn message(
        &mut self,
        key: Key,
        hdr: &RecordHeader,
        client_mac: Option<[u8; 6]>,
        name: &'static str,
        step: Step,
    ) -> (Transaction, Option<&'static str>, Option<Ended>) {
        let mut evicted = None;
        let now = hdr.ts_boot_ns;
        if !self.open.contains_key(&key) && self.open.len() >= MAX_OPEN {
            evicted = self.pop_oldest(now, true);
        }
        let entry = self.open.entry(key.clone()).or_insert_with(|| {
            self.opened += 1;
            self.order.push_back((now, key.clone()));
            Transaction {
                first: *hdr,
                client_mac,
                messages: Vec::new(),
                start_ns: now,
            }
        });
        if entry.messages.len() < MAX_MESSAGES {
            entry.messages.push(name);
        }
        if entry.client_mac.is_none() {
            entry.client_mac = client_mac;
        }
        let snapshot = entry.clone();
        let state = match step {
            Step::Continue => None,
            Step::End(state) => {
                self.open.remove(&key);
                Some(state)
            }
        };
        self.compact();
        (snapshot, state, evicted)
    }

    /// Takes out the oldest open transaction: expired (older than the timeout at `now`) or,
    /// with `force`, any.
    fn pop_oldest(&mut self, now: u64, force: bool) -> Option<Ended> {
        while let Some((start, key)) = self.order.front() {
            let live = self.open.get(key).is_some_and(|t| t.start_ns == *start);
            if !live {
                self.order.pop_front();
                continue;
            }
            let expired = now.saturating_sub(*start) >= self.timeout_ns;
            if !expired && !force {
                return None;
            }
            let (_, key) = self.order.pop_front()?;
            let transaction = self.open.remove(&key)?;
            return Some(Ended {
                key,
                transaction,
                state: "incomplete",
                reason: Some(if expired { "expired" } else { "evicted" }),
            });
        }
        None
    }

    /// Every transaction open longer than the timeout at `now_ns`, taken out.
    pub fn expire(&mut self, now_ns: u64) -> Vec<Ended> {
        let mut out = Vec::new();
        while let Some(e) = self.pop_oldest(now_ns, false) {
            out.push(e);
        }
        out
    }

    /// Every open transaction, taken out (shutdown).
    pub fn drain(&mut self) -> Vec<Ended> {
        let mut out = Vec::new();
        while let Some(mut e) = self.pop_oldest(0, true) {
            e.reason = Some("shutdown");
            out.push(e);
        }
        out
    }

    /// Keeps the order queue within twice the table's bound (stale entries of ended
    /// transactions removed).
    fn compact(&mut self) {
        if self.order.len() > 2 * MAX_OPEN.max(self.open.len()) {
            let open = &self.open;
            self.order
                .retain(|(start, key)| open.get(key).is_some_and(|t| t.start_ns == *start));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(ts: u64) -> RecordHeader {
        RecordHeader {
            ts_boot_ns: ts,
            ..RecordHeader::default()
        }
    }

    fn key(xid: u32) -> Key {
        Key {
            version: 4,
            xid,
            client: vec![1, 2, 3, 4, 5, 6],
        }
    }

    #[test]
    fn dora_completes_and_leaves() {
        let mut t = Transactions::new(1000);
        for (i, name) in ["discover", "offer", "request"].into_iter().enumerate() {
            let (_, state, ev) = t.message(key(7), &hdr(i as u64), None, name, Step::Continue);
            assert!(state.is_none() && ev.is_none());
        }
        let (tx, state, _) = t.message(key(7), &hdr(3), None, "ack", Step::End("complete"));
        assert_eq!(state, Some("complete"));
        assert_eq!(tx.messages, vec!["discover", "offer", "request", "ack"]);
        assert!(t.is_empty());
        assert!(t.expire(1_000_000).is_empty());
    }

    #[test]
    fn open_transaction_expires_once() {
        let mut t = Transactions::new(1000);
        t.message(key(1), &hdr(0), None, "discover", Step::Continue);
        t.message(key(2), &hdr(500), None, "discover", Step::Continue);
        assert!(t.expire(999).is_empty());
        let e = t.expire(1000);
        assert_eq!(e.len(), 1);
        assert_eq!(e.first().map(|e| e.key.xid), Some(1));
        assert_eq!(e.first().and_then(|e| e.reason), Some("expired"));
        assert_eq!(t.len(), 1);
        assert_eq!(t.expire(1500).len(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_evicts_the_oldest() {
        let mut t = Transactions::new(u64::MAX);
        for xid in 0..MAX_OPEN as u32 {
            t.message(
                key(xid),
                &hdr(u64::from(xid)),
                None,
                "discover",
                Step::Continue,
            );
        }
        let (_, _, ev) = t.message(
            key(u32::MAX),
            &hdr(1 << 40),
            None,
            "discover",
            Step::Continue,
        );
        let ev = ev.expect("evicted");
        assert_eq!(ev.key.xid, 0);
        assert_eq!(ev.reason, Some("evicted"));
        assert_eq!(t.len(), MAX_OPEN);
    }

    #[test]
    fn order_queue_stays_bounded() {
        let mut t = Transactions::new(u64::MAX);
        for xid in 0..(10 * MAX_OPEN) as u32 {
            t.message(
                key(xid),
                &hdr(u64::from(xid)),
                None,
                "inform",
                Step::Continue,
            );
            t.message(
                key(xid),
                &hdr(u64::from(xid)),
                None,
                "ack",
                Step::End("complete"),
            );
        }
        assert!(t.order.len() <= 2 * MAX_OPEN + 1);
        assert!(t.is_empty());
    }
}
