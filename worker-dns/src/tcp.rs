//! DNS over TCP: reassembles the 2-byte-length-prefixed messages of each
//! direction of each connection (RFC 1035 §4.2.2, RFC 7766), bounded.
//!
//! Records carry TCP payloads in the order the kernel saw them; they carry
//! no sequence numbers, so a retransmission or reordering desynchronises a
//! stream. A prefix that cannot be a DNS message (shorter than a header)
//! resets that stream and is counted, and the next segment starts afresh.

use std::{collections::HashMap, net::IpAddr};

/// Streams tracked at most; beyond it the oldest is dropped and counted.
pub const MAX_STREAMS: usize = 4096;
/// Bytes buffered per stream at most (one maximal message plus prefix).
pub const MAX_BUFFER: usize = 65_535 + 2;

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
    last_used: u64,
}

/// All TCP DNS streams.
#[derive(Debug, Default)]
pub struct Reassembler {
    streams: HashMap<StreamKey, Stream>,
    clock: u64,
}

impl Reassembler {
    /// Appends a segment's payload; returns every message it completes.
    pub fn feed(&mut self, key: StreamKey, payload: &[u8]) -> Fed {
        let mut fed = Fed::default();
        self.clock += 1;
        if !self.streams.contains_key(&key)
            && self.streams.len() >= MAX_STREAMS
            && let Some(oldest) = self
                .streams
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k)
        {
            self.streams.remove(&oldest);
            fed.drops.push("dns_tcp_stream_evicted");
        }
        let stream = self.streams.entry(key).or_default();
        stream.last_used = self.clock;
        if stream.buf.len() + payload.len() > MAX_BUFFER {
            stream.buf.clear();
            fed.drops.push("dns_tcp_overflow");
            return fed;
        }
        stream.buf.extend_from_slice(payload);
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
        if stream.buf.is_empty() {
            self.streams.remove(&key);
        }
        fed
    }

    /// Forgets a connection (both directions), e.g. on FIN/RST.
    pub fn close(&mut self, a: StreamKey) {
        self.streams.remove(&a);
        self.streams.remove(&(a.2, a.3, a.0, a.1));
    }

    /// Streams currently buffered.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
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
        assert_eq!(r.feed(key(), &framed(&msg)).messages, vec![msg.to_vec()]);
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
        assert!(r.feed(key(), first).messages.is_empty());
        assert_eq!(r.len(), 1);
        assert_eq!(r.feed(key(), second).messages, vec![a.to_vec(), b.to_vec()]);
        assert!(r.is_empty());
    }

    #[test]
    fn desync_resets_and_counts() {
        let mut r = Reassembler::default();
        let fed = r.feed(key(), &[0, 3, 1, 2, 3]);
        assert_eq!(fed.drops, vec!["dns_tcp_desync"]);
        assert!(r.is_empty());
    }

    #[test]
    fn bounded_streams() {
        let mut r = Reassembler::default();
        for port in 0..(MAX_STREAMS as u16 + 1) {
            let (a, _, c, d) = key();
            let fed = r.feed((a, port, c, d), &[0, 40]);
            if usize::from(port) == MAX_STREAMS {
                assert_eq!(fed.drops, vec!["dns_tcp_stream_evicted"]);
            }
        }
        assert_eq!(r.len(), MAX_STREAMS);
    }
}
