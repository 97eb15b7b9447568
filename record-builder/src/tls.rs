//! TLS handshakes followed across segments, both ways, on any TCP port: the user-space twin
//! of `tls_capture.bpf.h`, decision for decision (same states, same bounds, same record
//! walk, same flags), so that the TLS worker gets the `KIND_TLS` records it gets live.
//!
//! The kernel keeps a followed handshake in `pal_tls_conns` (an LRU hash keyed by the flow
//! key) and a `tls_follow` byte in the flow entry; here they are [`Builder::tls_conns`] and
//! the flow table's `tls_follow`. A connection is followed from a segment that starts a
//! ClientHello or ServerHello record (or an SSLv2 ClientHello); each direction is copied
//! until its records turn encrypted (application data, alert), `TLS_MAX_BYTES` of stream,
//! `TLS_MAX_NS` after the first hello, or a FIN/RST.

use palisade_abi::{
    CAP_TLS, KIND_TLS, RecordHeader, TLS_CHUNKS, TLS_CONNS, TLS_DIR_CLIENT, TLS_DIR_SERVER,
    TLS_MAX_BYTES, TLS_MAX_NS, TLS_SEG_CUT, TLS_SEG_FIN, TLS_SEG_FIRST, TLS_SEG_LAST, TLS_ST_BLIND,
    TLS_ST_DONE, TLS_ST_NO_BASE, TLS_ST_WALK, TlsSeg,
};

use super::{Builder, Key, Pkt, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, key_fill};

const CONTENT_HANDSHAKE: u8 = 22;
const CONTENT_CCS: u8 = 20;
const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const REC_HDR: u32 = 5;
/// Record headers read per segment (`PAL_TLS_WALK_MAX`).
const WALK_MAX: usize = 8;
/// Segment bytes per record: the cap less the segment header (`PAL_TLS_SEG_DATA`).
const SEG_DATA: u32 = CAP_TLS - TlsSeg::SIZE as u32;

/// `hello_start()` result: a ClientHello (its sender is the client).
const HELLO_CLIENT: u8 = TLS_DIR_CLIENT + 1;
/// ... a ServerHello.
const HELLO_SERVER: u8 = TLS_DIR_SERVER + 1;

/// `struct pal_tls_conn`. Index: `TLS_DIR_*`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Conn {
    start_ns: u64,
    base: [u32; 2],
    next_rec: [u32; 2],
    client_is_lo: bool,
    state: [u8; 2],
}

impl Conn {
    fn state(&self, dir: usize) -> u8 {
        self.state.get(dir).copied().unwrap_or(TLS_ST_DONE)
    }

    fn set_state(&mut self, dir: usize, st: u8) {
        if let Some(s) = self.state.get_mut(dir) {
            *s = st;
        }
    }

    fn base(&self, dir: usize) -> u32 {
        self.base.get(dir).copied().unwrap_or_default()
    }

    fn next_rec(&self, dir: usize) -> u32 {
        self.next_rec.get(dir).copied().unwrap_or_default()
    }
}

/// `tls_hello_start()`: `HELLO_CLIENT` for a ClientHello (TLS record 22/3.x with handshake
/// type 1, or an SSLv2 record: high bit, msg_type 1, version 0x0002 or 3.x),
/// `HELLO_SERVER` for a ServerHello, 0 for anything else.
pub(crate) fn hello_start(data: &[u8], p: &Pkt) -> u8 {
    if p.pay_len < 6 {
        return 0;
    }
    let Some(&[b0, b1, b2, b3, b4, b5]) = data.get(p.pay_off..p.pay_off + 6) else {
        return 0;
    };
    if b0 == CONTENT_HANDSHAKE && b1 == 3 {
        return match b5 {
            HS_CLIENT_HELLO => HELLO_CLIENT,
            HS_SERVER_HELLO => HELLO_SERVER,
            _ => 0,
        };
    }
    if b0 & 0x80 != 0 && b2 == HS_CLIENT_HELLO && (b3 == 3 || (b3 == 0 && b4 == 2)) {
        return HELLO_CLIENT;
    }
    0
}

/// Sequence number of the first payload byte (a SYN takes one).
fn data_seq(p: &Pkt) -> u32 {
    p.tcp_seq
        .wrapping_add(u32::from(p.tcp_flags & TCP_SYN != 0))
}

/// `struct tls_walk`.
#[derive(Debug, Default)]
struct Walk {
    next_rec: u32,
    off: u32,
    end: u32,
    /// Offset of `off` in the frame.
    at: usize,
    copy_end: u32,
    client: bool,
    last: bool,
    blind: bool,
}

/// `tls_walk()`: follows the record headers that start inside the segment [off, end).
fn walk(data: &[u8], w: &mut Walk) {
    for _ in 0..WALK_MAX {
        let (nr, off, end) = (w.next_rec, w.off, w.end);
        if nr < off || nr >= end {
            return; // not in this segment (a gap before it, or later)
        }
        if nr + REC_HDR > end {
            w.blind = true; // split across segments
            return;
        }
        let at = w.at + (nr - off) as usize;
        let Some(&[h0, h1, _, h3, h4]) = data.get(at..at + REC_HDR as usize) else {
            w.blind = true;
            return;
        };
        let next = if nr == 0 && w.client && h0 & 0x80 != 0 {
            2 + ((u32::from(h0 & 0x7f) << 8) | u32::from(h1)) // SSLv2 record
        } else if h1 == 3 && (h0 == CONTENT_HANDSHAKE || h0 == CONTENT_CCS) {
            nr + REC_HDR + ((u32::from(h3) << 8) | u32::from(h4))
        } else {
            // Application data, alert, or not TLS: plaintext ends here.
            w.copy_end = nr;
            w.last = true;
            return;
        };
        w.next_rec = next;
    }
}

/// `struct tls_emit_args`.
struct Emit {
    conn_ns: u64,
    offset: u32,
    seq: u32,
    at: usize,
    len: u32,
    dir: u8,
    flags: u8,
}

impl Builder {
    fn flow_set_tls(&mut self, key: &Key, on: bool) {
        if let Some(v) = self.flows.get_mut(key) {
            v.tls_follow = on;
        }
    }

    /// `tls_end()`: the entry goes, and the flow's byte with it.
    fn tls_end(&mut self, key: &Key) {
        self.tls_conns.remove(key);
        self.flow_set_tls(key, false);
    }

    /// `tls_start()`: follows from a hello sent by the packet's sender; an entry that
    /// exists already is kept (the kernel's `BPF_NOEXIST`). The table is an LRU in the
    /// kernel: when full, the oldest handshake goes.
    fn tls_start(&mut self, key: &Key, p: &Pkt, sender_is_lo: bool, hello: u8) -> Conn {
        let has_ack = p.tcp_flags & TCP_ACK != 0;
        let (me, peer) = if hello == HELLO_CLIENT {
            (0, 1)
        } else {
            (1, 0)
        };
        let mut fresh = Conn {
            start_ns: p.now_ns,
            client_is_lo: if hello == HELLO_CLIENT {
                sender_is_lo
            } else {
                !sender_is_lo
            },
            ..Conn::default()
        };
        if let (Some(b), Some(s)) = (fresh.base.get_mut(me), fresh.state.get_mut(me)) {
            *b = data_seq(p);
            *s = TLS_ST_WALK;
        }
        if let (Some(b), Some(s)) = (fresh.base.get_mut(peer), fresh.state.get_mut(peer)) {
            *b = p.tcp_ack;
            *s = if has_ack { TLS_ST_WALK } else { TLS_ST_NO_BASE };
        }
        if !self.tls_conns.contains_key(key) && self.tls_conns.len() >= TLS_CONNS as usize {
            let oldest = self
                .tls_conns
                .iter()
                .min_by_key(|(k, c)| (c.start_ns, **k))
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.tls_end(&k);
            }
        }
        let c = *self.tls_conns.entry(*key).or_insert(fresh);
        self.flow_set_tls(key, true);
        c
    }

    /// `tls_capture()`: one TCP packet of a followed connection, or of one that may start
    /// being followed.
    pub(crate) fn tls_capture(&mut self, data: &[u8], p: &Pkt, out: &mut impl FnMut(u16, &[u8])) {
        let fin = p.tcp_flags & (TCP_FIN | TCP_RST) != 0;
        let mut hello = 0;
        if !p.tls_follow && p.flow_start_ns != 0 {
            // Known flow, not followed: only a hello can start it.
            hello = hello_start(data, p);
            if hello == 0 {
                return;
            }
        } else if p.pay_len == 0 && !fin {
            return;
        }
        let (key, sender_is_lo) = key_fill(p);
        if hello == 0 && p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            // A new connection on the tuple (port reuse): forget the old one.
            self.tls_end(&key);
            hello = hello_start(data, p); // TCP Fast Open: a hello in the SYN
            if hello == 0 {
                return;
            }
        }
        let mut conn = None;
        if hello == 0 {
            conn = self.tls_conns.get(&key).copied();
            if conn.is_none() {
                if p.tls_follow {
                    self.flow_set_tls(&key, false); // evicted
                }
                hello = hello_start(data, p);
                if hello == 0 {
                    return;
                }
            }
        }
        let mut c = match conn {
            Some(c) => c,
            None => self.tls_start(&key, p, sender_is_lo, hello),
        };
        if p.now_ns.wrapping_sub(c.start_ns) > TLS_MAX_NS {
            self.tls_end(&key);
            // A hello that comes this late starts a new handshake.
            hello = hello_start(data, p);
            if hello == 0 {
                return;
            }
            c = self.tls_start(&key, p, sender_is_lo, hello);
        }
        let mut dir = usize::from(sender_is_lo != c.client_is_lo);
        let mut st = c.state(dir);
        let seq = data_seq(p);
        if st == TLS_ST_NO_BASE && p.pay_len > 0 && hello_start(data, p) != 0 {
            // The peer of a hello sent without ACK (TCP Fast Open): its first hello.
            if let Some(b) = c.base.get_mut(dir) {
                *b = seq;
            }
            c.set_state(dir, TLS_ST_WALK);
            st = TLS_ST_WALK;
        }
        if p.pay_len > 0 && (st == TLS_ST_WALK || st == TLS_ST_BLIND) {
            self.tls_segment(data, p, &key, sender_is_lo, &mut c, &mut dir, st, fin, out);
        }
        // out:
        if fin || (c.state(0) == TLS_ST_DONE && c.state(1) == TLS_ST_DONE) {
            self.tls_end(&key);
        } else {
            self.tls_conns.insert(key, c);
        }
    }

    /// The copying part of `tls_capture()`: the segment's stream offset, the record walk,
    /// the bounds and flags, the records; ends with the direction's new state in `c`.
    #[allow(clippy::too_many_arguments)]
    fn tls_segment(
        &mut self,
        data: &[u8],
        p: &Pkt,
        key: &Key,
        sender_is_lo: bool,
        c: &mut Conn,
        dir: &mut usize,
        mut st: u8,
        fin: bool,
        out: &mut impl FnMut(u16, &[u8]),
    ) {
        let seq = data_seq(p);
        let mut off = seq.wrapping_sub(c.base(*dir));
        if off >= TLS_MAX_BYTES || (off as i32) < 0 {
            let hello = hello_start(data, p);
            if hello != 0 {
                // A hello outside the followed stream: a new connection on the tuple whose
                // SYN was not seen. Follow it instead.
                self.tls_end(key);
                *c = self.tls_start(key, p, sender_is_lo, hello);
                *dir = usize::from(sender_is_lo != c.client_is_lo);
                st = TLS_ST_WALK;
                off = 0;
            }
        }
        let mut skip = 0u32;
        if (off as i32) < 0 {
            // Starts before the followed stream (a retransmission of older bytes).
            skip = off.wrapping_neg();
            if skip >= p.pay_len {
                return;
            }
            off = 0;
        }
        if off >= TLS_MAX_BYTES {
            c.set_state(*dir, TLS_ST_DONE);
            return;
        }
        let end = off.wrapping_add(p.pay_len - skip);
        let mut w = Walk {
            copy_end: end,
            ..Walk::default()
        };
        let mut flags = 0u8;
        if st == TLS_ST_WALK {
            w.next_rec = c.next_rec(*dir);
            w.off = off;
            w.end = end;
            w.at = p.pay_off + skip as usize;
            w.client = *dir == usize::from(TLS_DIR_CLIENT);
            walk(data, &mut w);
            if let Some(n) = c.next_rec.get_mut(*dir) {
                *n = w.next_rec;
            }
            if w.blind {
                st = TLS_ST_BLIND;
            }
        }
        if w.copy_end > TLS_MAX_BYTES {
            w.copy_end = TLS_MAX_BYTES;
            flags |= TLS_SEG_CUT | TLS_SEG_LAST;
            st = TLS_ST_DONE;
        }
        if w.last {
            flags |= TLS_SEG_LAST;
            st = TLS_ST_DONE;
        }
        if fin {
            flags |= TLS_SEG_FIN | TLS_SEG_LAST;
        }
        if off == 0 && skip == 0 {
            flags |= TLS_SEG_FIRST;
        }
        if w.copy_end > off {
            let e = Emit {
                conn_ns: c.start_ns,
                offset: off,
                seq: seq.wrapping_add(skip),
                at: p.pay_off + skip as usize,
                len: w.copy_end - off,
                dir: *dir as u8,
                flags,
            };
            self.tls_emit(data, p, &e, out);
        }
        c.set_state(*dir, st);
    }

    /// `tls_emit()`: the bytes as records of at most `SEG_DATA` bytes, at most `TLS_CHUNKS`
    /// of them. A capture cut at its snap length (the kernel always has the bytes) gives a
    /// shorter last record flagged `TLS_SEG_CUT`.
    fn tls_emit(&mut self, data: &[u8], p: &Pkt, a: &Emit, out: &mut impl FnMut(u16, &[u8])) {
        let mut done = 0u32;
        for _ in 0..TLS_CHUNKS {
            if done >= a.len {
                return;
            }
            let n = (a.len - done).min(SEG_DATA);
            let mut f = a.flags;
            if done + n < a.len {
                f &= !(TLS_SEG_LAST | TLS_SEG_FIN);
            }
            if done > 0 {
                f &= !TLS_SEG_FIRST;
            }
            let from = a.at + done as usize;
            let have = data.get(from..).unwrap_or_default();
            let bytes = have.get(..n as usize).unwrap_or(have);
            if bytes.is_empty() {
                return;
            }
            if bytes.len() < n as usize {
                f |= TLS_SEG_CUT;
            }
            let taken = bytes.len() as u32;
            let seg = TlsSeg {
                conn_ns: a.conn_ns,
                offset: a.offset + done,
                seq: a.seq.wrapping_add(done),
                dir: a.dir,
                flags: f,
                _pad: 0,
                _pad2: 0,
            };
            let payload_len = TlsSeg::SIZE as u32 + taken;
            let hdr = RecordHeader {
                kind: KIND_TLS,
                ifindex: p.ifindex,
                ts_boot_ns: p.now_ns,
                direction: p.direction,
                ip_version: p.ip_version,
                l4_proto: p.l4_proto,
                flags: p.flags,
                vlan_id: p.vlan_id,
                src_port: p.sport,
                dst_port: p.dport,
                src_mac: p.src_mac,
                dst_mac: p.dst_mac,
                src_addr: p.saddr,
                dst_addr: p.daddr,
                orig_payload_len: TlsSeg::SIZE as u32 + p.pay_len,
                flow_start_ns: p.flow_start_ns,
                ..RecordHeader::new(palisade_abi::Kind::Tls, payload_len)
            };
            self.buf.clear();
            self.buf.extend_from_slice(&hdr.to_bytes());
            self.buf.extend_from_slice(&seg.to_bytes());
            self.buf.extend_from_slice(bytes);
            out(KIND_TLS, &self.buf);
            if taken < n {
                return;
            }
            done += n;
        }
    }
}
