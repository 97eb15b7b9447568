//! DNS over TCP: reassembles the 2-byte-length-prefixed messages of each
//! direction of each connection (RFC 1035 §4.2.2, RFC 7766), bounded.
//!
//! Records carry TCP payloads in the order the kernel saw them; they carry
//! no sequence numbers, so a retransmission or reordering desynchronises a
//! stream. A prefix that cannot be a DNS message (shorter than a header)
//! resets that stream and is counted, and the next segment starts afresh.
//!
//! Memory is bounded by bytes, not only by streams: all partial messages together hold at
//! most [`MAX_BUFFERED`] bytes (the least recently fed streams are evicted to make room, and
//! counted), a stream idle for [`IDLE_TIMEOUT_NS`] is dropped and counted, and a stream's
//! buffer gives its memory back once it is emptied. Finding the stream to evict is a
//! `BTreeMap` pop, not a scan, so a flood of new streams costs O(log n) each.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

/// Streams tracked at most; beyond it the least recently fed is dropped and counted.
pub const MAX_STREAMS: usize = 4096;
/// Bytes buffered per stream at most (one maximal message plus prefix).
pub const MAX_BUFFER: usize = 65_535 + 2;
/// Bytes buffered over all streams at most.
pub const MAX_BUFFERED: usize = 4 << 20;
/// A stream not fed for this long is dropped (its partial message is lost, counted).
pub const IDLE_TIMEOUT_NS: u64 = 30_000_000_000;

/// One direction of one TCP connection.
pub type StreamKey = (IpAddr, u16, IpAddr, u16);

/// What feeding a segment produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// Complete DNS messages, in order.
    pub messages: Vec<Vec<u8>>,
    /// Drop reasons to count.
    pub drops: Vec<&'static str>,
}

#[derive(Debug, Default)]
struct Stream {
    buf: Vec<u8>,
    /// Position in the LRU order (`Reassembler::order`).
    tick: u64,
    /// Boot-clock time of the last segment.
    last_ns: u64,
}

/// All TCP DNS streams.
#[derive(Debug, Default)]
pub struct Reassembler {
    streams: HashMap<StreamKey, Stream>,
    /// Streams by the tick of their last segment, oldest first.
    order: BTreeMap<u64, StreamKey>,
    clock: u64,
    /// Bytes in all buffers.
    buffered: usize,
}

impl Reassembler {
    /// Appends a segment's payload, seen at `now_ns` (boot clock); returns every message it
    /// completes.
    pub fn feed(&mut self, key: StreamKey, payload: &[u8], now_ns: u64) -> Fed {
        let mut fed = Fed::default();
        self.clock += 1;
        let (old_len, old_tick) = match self.streams.get(&key) {
            Some(s) => (s.buf.len(), Some(s.tick)),
            None => (0, None),
        };
        if old_len + payload.len() > MAX_BUFFER {
            self.remove(&key);
            fed.drops.push("dns_tcp_overflow");
            return fed;
        }
        if let Some(tick) = old_tick {
            self.order.remove(&tick);
        }
        // Make room: the stream count, then the byte budget, least recently fed first.
        while (old_tick.is_none() && self.streams.len() >= MAX_STREAMS)
            || self.buffered + payload.len() > MAX_BUFFERED
        {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(s) = self.streams.remove(&oldest) {
                self.buffered -= s.buf.len();
            }
            fed.drops.push("dns_tcp_stream_evicted");
        }
        self.order.insert(self.clock, key);
        let stream = self.streams.entry(key).or_default();
        stream.tick = self.clock;
        stream.last_ns = now_ns;
        stream.buf.extend_from_slice(payload);
        self.buffered += payload.len();
        let before = stream.buf.len();
        while let Some((len, rest)) = stream.buf.split_first_chunk::<2>() {
            let len = usize::from(u16::from_be_bytes(*len));
            if len < 12 {
                // Not a DNS message: the stream is out of sync.
                stream.buf.clear();
                fed.drops.push("dns_tcp_desync");
                break;
            }
            let Some(msg) = rest.get(..len) else { break };
            fed.messages.push(msg.to_vec());
            stream.buf.drain(..len + 2);
        }
        self.buffered -= before - stream.buf.len();
        if stream.buf.is_empty() {
            self.remove(&key);
        } else if stream.buf.capacity() > 2 * stream.buf.len() + 512 {
            stream.buf.shrink_to_fit();
        }
        fed
    }

    fn remove(&mut self, key: &StreamKey) {
        if let Some(s) = self.streams.remove(key) {
            self.order.remove(&s.tick);
            self.buffered -= s.buf.len();
        }
    }

    /// Drops streams not fed since `now_ns - IDLE_TIMEOUT_NS`; returns how many (each lost a
    /// partial message). Walks from the least recently fed and stops at the first live one.
    pub fn expire(&mut self, now_ns: u64) -> usize {
        let cutoff = now_ns.saturating_sub(IDLE_TIMEOUT_NS);
        let mut expired = 0;
        while let Some((_, key)) = self.order.first_key_value() {
            let key = *key;
            match self.streams.get(&key) {
                Some(s) if s.last_ns >= cutoff => break,
                Some(_) => {
                    self.remove(&key);
                    expired += 1;
                }
                None => {
                    self.order.pop_first();
                }
            }
        }
        expired
    }

    /// Forgets a connection (both directions), e.g. on FIN/RST.
    pub fn close(&mut self, a: StreamKey) {
        self.remove(&a);
        self.remove(&(a.2, a.3, a.0, a.1));
    }

    /// Streams currently buffered.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Bytes of partial messages buffered over all streams.
    pub fn buffered(&self) -> usize {
        self.buffered
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn key() -> StreamKey {
        (
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            40000,
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            53,
        )
    }

    fn framed(msg: &[u8]) -> Vec<u8> {
        let mut v = (msg.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(msg);
        v
    }

    #[test]
    fn one_message_in_one_segment() {
        let mut r = Reassembler::default();
        let msg = [7u8; 20];
        assert_eq!(r.feed(key(), &framed(&msg), 0).messages, vec![msg.to_vec()]);
        assert!(r.is_empty());
    }

    #[test]
    fn message_split_across_segments_and_two_in_one() {
        let mut r = Reassembler::default();
        let a = [1u8; 30];
        let b = [2u8; 14];
        let mut bytes = framed(&a);
        bytes.extend(framed(&b));
        let (first, second) = bytes.split_at(5);
        assert!(r.feed(key(), first, 0).messages.is_empty());
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.feed(key(), second, 0).messages,
            vec![a.to_vec(), b.to_vec()]
        );
        assert!(r.is_empty());
    }

    #[test]
    fn desync_resets_and_counts() {
        let mut r = Reassembler::default();
        let fed = r.feed(key(), &[0, 3, 1, 2, 3], 0);
        assert_eq!(fed.drops, vec!["dns_tcp_desync"]);
        assert!(r.is_empty());
    }

    #[test]
    fn bounded_streams() {
        let mut r = Reassembler::default();
        for port in 0..(MAX_STREAMS as u16 + 1) {
            let (a, _, c, d) = key();
            let fed = r.feed((a, port, c, d), &[0, 40], 0);
            if usize::from(port) == MAX_STREAMS {
                assert_eq!(fed.drops, vec!["dns_tcp_stream_evicted"]);
            }
        }
        assert_eq!(r.len(), MAX_STREAMS);
    }

    #[test]
    fn bytes_are_bounded_by_evicting_the_least_recently_fed() {
        let mut r = Reassembler::default();
        let (a, _, c, d) = key();
        // Streams that each hold most of a maximal message.
        let mut chunk = vec![0xff_u8, 0xff];
        chunk.extend(vec![0_u8; 60_000]);
        let mut evicted = 0;
        for port in 0..200_u16 {
            let fed = r.feed((a, port, c, d), &chunk, u64::from(port));
            evicted += fed
                .drops
                .iter()
                .filter(|d| **d == "dns_tcp_stream_evicted")
                .count();
            assert!(r.buffered() <= MAX_BUFFERED, "{} bytes", r.buffered());
        }
        assert_eq!(r.len() + evicted, 200);
        assert_eq!(r.len(), MAX_BUFFERED / chunk.len());
        // The survivors are the most recently fed.
        let first_kept = 200 - r.len() as u16;
        for port in 0..200_u16 {
            assert_eq!(
                r.streams.contains_key(&(a, port, c, d)),
                port >= first_kept,
                "{port}"
            );
        }
    }

    #[test]
    fn idle_streams_expire() {
        let mut r = Reassembler::default();
        let (a, _, c, d) = key();
        r.feed((a, 1, c, d), &[0, 40, 1], 0);
        r.feed((a, 2, c, d), &[0, 40, 1], IDLE_TIMEOUT_NS);
        assert_eq!(r.expire(IDLE_TIMEOUT_NS + 1), 1);
        assert_eq!(r.len(), 1);
        assert_eq!(r.buffered(), 3);
        assert_eq!(r.expire(3 * IDLE_TIMEOUT_NS), 1);
        assert!(r.is_empty());
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn overflow_drops_the_stream_and_its_bytes() {
        let mut r = Reassembler::default();
        r.feed(key(), &[0xff, 0xff, 1], 0);
        let fed = r.feed(key(), &vec![0_u8; MAX_BUFFER], 0);
        assert_eq!(fed.drops, vec!["dns_tcp_overflow"]);
        assert!(r.is_empty());
        assert_eq!(r.buffered(), 0);
    }
}
