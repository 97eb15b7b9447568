//! The TLS connections the kernel follows, as the worker sees them: each
//! direction's segments put back in order ([`Reassembler`]), read as TLS
//! records and handshake messages ([`HandshakeStream`]), and every hello
//! handed out with the record header of the segment that completed it.
//!
//! Bounded: at most [`MAX_CONNS`] connections (when full, the oldest
//! [`EVICT_BATCH`] go at once, their unfinished hellos counted), each forgotten
//! [`IDLE_NS`] after its last segment or once the kernel stopped following
//! both directions.

use std::collections::HashMap;
use std::net::IpAddr;

use palisade_abi::{RecordHeader, TLS_DIR_SERVER, TLS_SEG_LAST, TlsSeg};
use palisade_worker_runtime::eve;

use crate::parse::certificate::{CertInfo, cert_info};
use crate::parse::{
    ClientHello, HandshakeStream, Message, ServerHello, StreamState, parse_message,
};
use crate::reassembly::{Pushed, Reassembler};

/// Connections tracked at once at most.
pub const MAX_CONNS: usize = 16_384;
/// Connections evicted at once when the table is full: finding the oldest takes a pass over
/// the table, so one pass makes room for this many (one pass per new connection made a
/// busy gateway's hellos cost ~75 us each, and lost half of them).
pub const EVICT_BATCH: usize = MAX_CONNS / 16;
/// A connection with no segment for this long is forgotten (boot-clock ns).
pub const IDLE_NS: u64 = 30_000_000_000;

/// Drop reason: a hello that was never complete (its connection ended, idled
/// out or was evicted with bytes of it held).
pub const DROP_HELLO_INCOMPLETE: &str = "tls_hello_incomplete";
/// Notice: a segment refused because too many bytes waited behind a gap.
pub const NOTICE_GAP_REFUSED: &str = "tls_gap_refused";
/// Notice: a connection evicted to make room (table full).
pub const NOTICE_CONN_EVICTED: &str = "tls_conn_evicted";

/// Identity of a followed handshake: the client and server endpoints and
/// when the kernel started following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    conn_ns: u64,
}

impl ConnKey {
    /// The key of a segment record.
    pub fn of(hdr: &RecordHeader, seg: &TlsSeg) -> Self {
        let src = (eve::addr(hdr.ip_version, hdr.src_addr), hdr.src_port);
        let dst = (eve::addr(hdr.ip_version, hdr.dst_addr), hdr.dst_port);
        let (client, server) = if seg.dir == TLS_DIR_SERVER {
            (dst, src)
        } else {
            (src, dst)
        };
        Self {
            client,
            server,
            conn_ns: seg.conn_ns,
        }
    }
}

/// One direction.
#[derive(Debug, Default)]
struct Side {
    bytes: Reassembler,
    stream: HandshakeStream,
    /// Hellos read in this direction.
    hellos: u32,
    /// The kernel sent its last record for this direction.
    ended: bool,
}

impl Side {
    /// Bytes came in this direction and no hello was read from them.
    fn unfinished(&self) -> bool {
        self.hellos == 0
            && self.stream.is_open()
            && (self.bytes.delivered() > 0 || self.bytes.pending() > 0)
    }
}

#[derive(Debug, Default)]
struct Conn {
    sides: [Side; 2],
    last_ns: u64,
    /// server_name of the latest ClientHello, for the server's events.
    sni: Option<Vec<u8>>,
    /// A TLS <= 1.2 ServerHello waiting for the Certificate message that
    /// follows it (or for the sign that none does): its rank and the header
    /// of the segment that completed it.
    pending: Option<(ServerHello, u32, RecordHeader)>,
}

/// A hello ready to be logged.
#[derive(Debug, Clone)]
pub enum Hello {
    /// A ClientHello.
    Client(ClientHello),
    /// A ServerHello (or HelloRetryRequest), with the connection's SNI and,
    /// for TLS <= 1.2, its leaf certificate.
    Server(ServerHello, Option<Vec<u8>>, Option<CertInfo>),
}

/// A hello ready to be logged, with its rank among the hellos of its
/// direction (1 for the first) and the header of the segment that
/// completed it (or its certificate).
#[derive(Debug, Clone)]
pub struct Ready {
    /// The hello.
    pub hello: Hello,
    /// Its rank in its direction.
    pub index: u32,
    /// Time, addresses and interface for the event.
    pub hdr: RecordHeader,
}

/// Notice: a certificate whose DER did not parse as X.509 (its SHA-1 is still logged).
pub const NOTICE_CERT_UNREADABLE: &str = "tls_certificate_unreadable";

/// Whether a ServerHello's version encrypts the Certificate (TLS 1.3 and its drafts).
fn encrypts_certificate(h: &ServerHello) -> bool {
    matches!(h.version().0, 0x0304 | 0x7f00..=0x7fff)
}

/// Writes a held ServerHello without a certificate.
fn flush(conn: &mut Conn, out: &mut Output) {
    if let Some((h, index, hdr)) = conn.pending.take() {
        out.hellos.push(Ready {
            hello: Hello::Server(h, conn.sni.clone(), None),
            index,
            hdr,
        });
    }
}

/// What a segment gave.
#[derive(Debug, Default)]
pub struct Output {
    /// Hellos ready to be logged.
    pub hellos: Vec<Ready>,
    /// Messages that did not parse, and hellos lost (drop reasons).
    pub drops: Vec<&'static str>,
    /// Notices.
    pub notices: Vec<&'static str>,
}

/// Every followed connection.
#[derive(Debug, Default)]
pub struct Tracker {
    conns: HashMap<ConnKey, Conn>,
}

impl Tracker {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections held.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is held.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// One segment record: its header, its `TlsSeg` and bytes.
    pub fn segment(&mut self, hdr: &RecordHeader, seg: &TlsSeg, data: &[u8]) -> Output {
        let mut out = Output::default();
        let key = ConnKey::of(hdr, seg);
        if !self.conns.contains_key(&key) && self.conns.len() >= MAX_CONNS {
            self.evict_oldest(EVICT_BATCH, &mut out);
        }
        let conn = self.conns.entry(key).or_default();
        conn.last_ns = conn.last_ns.max(hdr.ts_boot_ns);
        let dir = usize::from(seg.dir == TLS_DIR_SERVER);
        let mut bytes = Vec::new();
        let Some(side) = conn.sides.get_mut(dir) else {
            return out;
        };
        match side.bytes.push(u64::from(seg.offset), data, &mut bytes) {
            Pushed::Refused => out.notices.push(NOTICE_GAP_REFUSED),
            Pushed::InOrder | Pushed::Held | Pushed::Duplicate => {}
        }
        let raws = side.stream.push(&bytes);
        if seg.flags & TLS_SEG_LAST != 0 {
            side.ended = true;
        }
        for raw in raws {
            let msg = parse_message(&raw);
            if dir == 1 && !matches!(msg, Ok(Message::Certificate(_))) {
                flush(conn, &mut out); // no Certificate right after the ServerHello
            }
            match msg {
                Ok(Message::ClientHello(h)) => {
                    conn.sni.clone_from(&h.sni);
                    if let Some(side) = conn.sides.get_mut(dir) {
                        side.hellos += 1;
                        out.hellos.push(Ready {
                            hello: Hello::Client(h),
                            index: side.hellos,
                            hdr: *hdr,
                        });
                    }
                }
                Ok(Message::ServerHello(h)) => {
                    if let Some(side) = conn.sides.get_mut(dir) {
                        side.hellos += 1;
                        if h.hello_retry_request || encrypts_certificate(&h) {
                            out.hellos.push(Ready {
                                hello: Hello::Server(h, conn.sni.clone(), None),
                                index: side.hellos,
                                hdr: *hdr,
                            });
                        } else {
                            conn.pending = Some((h, side.hellos, *hdr));
                        }
                    }
                }
                Ok(Message::Certificate(chain)) => {
                    if let Some((h, index, _)) = conn.pending.take() {
                        let cert = chain.first().map(|der| {
                            let (info, read) = cert_info(der);
                            if read.is_err() {
                                out.notices.push(NOTICE_CERT_UNREADABLE);
                            }
                            info
                        });
                        out.hellos.push(Ready {
                            hello: Hello::Server(h, conn.sni.clone(), cert),
                            index,
                            hdr: *hdr,
                        });
                    }
                }
                Ok(Message::Other(_)) => {}
                Err(e) => out.drops.push(e.reason()),
            }
        }
        if conn
            .sides
            .get(1)
            .is_some_and(|s| s.ended || !s.stream.is_open())
        {
            flush(conn, &mut out);
        }
        if let Some(side) = conn.sides.get(dir)
            && let StreamState::Failed(e) = side.stream.state()
            && side.hellos == 0
        {
            // Not TLS after all, or broken before its first hello: counted once.
            if !side.ended {
                out.drops.push(e.reason());
            }
            if let Some(side) = conn.sides.get_mut(dir) {
                side.ended = true;
            }
        }
        if conn.sides.iter().all(|s| s.ended)
            && let Some(mut conn) = self.conns.remove(&key)
        {
            finish(&mut conn, &mut out);
        }
        out
    }

    /// Forgets connections idle since before `now_ns - IDLE_NS`.
    pub fn expire(&mut self, now_ns: u64) -> Output {
        let mut out = Output::default();
        let cutoff = now_ns.saturating_sub(IDLE_NS);
        self.conns.retain(|_, conn| {
            let keep = conn.last_ns >= cutoff;
            if !keep {
                finish(conn, &mut out);
            }
            keep
        });
        out
    }

    /// Forgets every connection (shutdown).
    pub fn clear(&mut self) -> Output {
        let mut out = Output::default();
        for conn in self.conns.values_mut() {
            finish(conn, &mut out);
        }
        self.conns.clear();
        out
    }

    /// Evicts the `n` connections whose last segment is oldest (one pass over the table).
    fn evict_oldest(&mut self, n: usize, out: &mut Output) {
        let mut by_age: Vec<(u64, ConnKey)> =
            self.conns.iter().map(|(k, c)| (c.last_ns, *k)).collect();
        let n = n.clamp(1, by_age.len().max(1));
        if by_age.len() > n {
            by_age.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
            by_age.truncate(n);
        }
        for (_, key) in by_age {
            if let Some(mut conn) = self.conns.remove(&key) {
                out.notices.push(NOTICE_CONN_EVICTED);
                finish(&mut conn, out);
            }
        }
    }
}

/// Writes what a connection holds and counts what it leaves unfinished.
fn finish(conn: &mut Conn, out: &mut Output) {
    flush(conn, out);
    for side in &conn.sides {
        if side.unfinished() {
            out.drops.push(DROP_HELLO_INCOMPLETE);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use palisade_abi::{TLS_DIR_CLIENT, TLS_SEG_FIRST};
    use proptest::prelude::*;

    const CLIENT: &[u8] =
        include_bytes!("../testdata/sv_tls13-chrome-grease-tcp-and-quic.client.bin");
    const SERVER: &[u8] =
        include_bytes!("../testdata/sv_tls13-chrome-grease-tcp-and-quic.server.bin");

    fn hdr(from_client: bool, ts: u64) -> RecordHeader {
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let mut h = RecordHeader {
            ip_version: 4,
            l4_proto: 6,
            ts_boot_ns: ts,
            ..RecordHeader::default()
        };
        let (src, dst, sport, dport) = if from_client {
            (a, b, 40000, 443)
        } else {
            (b, a, 443, 40000)
        };
        h.src_addr[..4].copy_from_slice(&src);
        h.dst_addr[..4].copy_from_slice(&dst);
        h.src_port = sport;
        h.dst_port = dport;
        h
    }

    fn seg(dir: u8, offset: usize, flags: u8) -> TlsSeg {
        TlsSeg {
            conn_ns: 7,
            offset: offset as u32,
            dir,
            flags,
            ..TlsSeg::default()
        }
    }

    /// Feeds `stream` cut at `cuts`, pieces in `order` (indexes, may repeat).
    fn feed(
        t: &mut Tracker,
        dir: u8,
        stream: &[u8],
        cuts: &[usize],
        order: &[usize],
    ) -> Vec<(Hello, u32)> {
        feed_ready(t, dir, stream, cuts, order)
            .into_iter()
            .map(|r| (r.hello, r.index))
            .collect()
    }

    /// As `feed`, keeping the headers.
    fn feed_ready(
        t: &mut Tracker,
        dir: u8,
        stream: &[u8],
        cuts: &[usize],
        order: &[usize],
    ) -> Vec<Ready> {
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % stream.len()).collect();
        bounds.extend([0, stream.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        let pieces: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        let mut hellos = Vec::new();
        for i in order.iter().chain(&(0..pieces.len()).collect::<Vec<_>>()) {
            let (a, b) = pieces[i % pieces.len()];
            let out = t.segment(
                &hdr(dir == TLS_DIR_CLIENT, 1),
                &seg(dir, a, 0),
                &stream[a..b],
            );
            assert!(out.drops.is_empty(), "{:?}", out.drops);
            hellos.extend(out.hellos);
        }
        hellos
    }

    #[test]
    fn both_hellos_of_a_connection_and_the_sni_on_the_server_event() {
        let mut t = Tracker::new();
        let c = feed(&mut t, TLS_DIR_CLIENT, CLIENT, &[100, 700], &[2, 1, 1]);
        assert_eq!(c.len(), 1);
        assert!(matches!(&c[0], (Hello::Client(_), 1)));
        let s = feed(&mut t, TLS_DIR_SERVER, SERVER, &[50], &[]);
        assert_eq!(s.len(), 1);
        let (Hello::Server(h, sni, None), 1) = &s[0] else {
            panic!("{s:?}")
        };
        assert_eq!(h.version().0, 0x0304);
        assert!(sni.is_some());
        // The server's records turned encrypted; the kernel's last client record ends it.
        let out = t.segment(
            &hdr(true, 2),
            &seg(TLS_DIR_CLIENT, CLIENT.len(), TLS_SEG_LAST),
            &[],
        );
        assert!(out.drops.is_empty());
    }

    #[test]
    fn an_unfinished_hello_is_counted_when_the_connection_goes() {
        let mut t = Tracker::new();
        let out = t.segment(
            &hdr(true, 1),
            &seg(TLS_DIR_CLIENT, 0, TLS_SEG_FIRST),
            &CLIENT[..300],
        );
        assert!(out.hellos.is_empty());
        assert!(t.expire(1 + IDLE_NS / 2).drops.is_empty(), "not idle yet");
        assert_eq!(t.expire(2 + IDLE_NS).drops, vec![DROP_HELLO_INCOMPLETE]);
        assert!(t.is_empty());
    }

    #[test]
    fn not_tls_is_counted_once_and_the_table_stays_bounded() {
        let mut t = Tracker::new();
        let out = t.segment(
            &hdr(true, 1),
            &seg(TLS_DIR_CLIENT, 0, 0),
            b"GET / HTTP/1.1\r\n\r\n",
        );
        assert_eq!(out.drops.len(), 1);
        let out = t.segment(&hdr(true, 1), &seg(TLS_DIR_CLIENT, 18, 0), b"more");
        assert!(out.drops.is_empty());
        let mut evicted = 0;
        for i in 0..MAX_CONNS + 10 {
            let mut s = seg(TLS_DIR_CLIENT, 0, 0);
            s.conn_ns = 100 + i as u64;
            let out = t.segment(&hdr(true, 10 + i as u64), &s, &CLIENT[..10]);
            evicted += out
                .notices
                .iter()
                .filter(|n| **n == NOTICE_CONN_EVICTED)
                .count();
        }
        // Full once: the oldest EVICT_BATCH went in one pass, the newest stayed.
        assert_eq!(evicted, EVICT_BATCH);
        assert_eq!(t.len(), MAX_CONNS + 1 + 10 - EVICT_BATCH);
        let oldest_left = t.conns.values().map(|c| c.last_ns).min().unwrap();
        assert_eq!(
            oldest_left,
            10 + EVICT_BATCH as u64 - 1,
            "the oldest went first"
        );
    }

    #[test]
    fn tls12_server_hello_carries_its_leaf_certificate() {
        const GITHUB: &[u8] = include_bytes!("../testdata/sv_tls12-github.server.bin");
        let mut t = Tracker::new();
        let mut got = feed_ready(&mut t, TLS_DIR_SERVER, GITHUB, &[300, 1500, 2900], &[2, 0]);
        got.extend(t.clear().hellos);
        assert_eq!(got.len(), 1, "{got:?}");
        let Hello::Server(h, _, Some(cert)) = &got[0].hello else {
            panic!("{got:?}")
        };
        assert_eq!(h.version().0, 0x0303);
        assert!(
            cert.subject
                .as_deref()
                .is_some_and(|s| s.ends_with("CN=www.github.com")),
            "{cert:?}"
        );
        assert!(
            cert.issuerdn
                .as_deref()
                .is_some_and(|s| s.contains("DigiCert")),
            "{cert:?}"
        );
        assert_eq!(
            cert.fingerprint.len(),
            59,
            "20 bytes, colon-separated: {cert:?}"
        );
        assert!(
            cert.serial
                .as_deref()
                .is_some_and(|s| s.contains(':') && s == s.to_uppercase())
        );
        assert!(
            cert.notbefore
                .as_deref()
                .is_some_and(|d| d.len() == 19 && d < cert.notafter.as_deref().unwrap_or(""))
        );
    }

    #[test]
    fn dates_before_1970() {
        assert_eq!(
            crate::parse::certificate::tls_date(0),
            "1970-01-01T00:00:00"
        );
        assert_eq!(
            crate::parse::certificate::tls_date(-86_401),
            "1969-12-30T23:59:59"
        );
        assert_eq!(
            crate::parse::certificate::tls_date(951_782_400),
            "2000-02-29T00:00:00"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        /// Any split, order and duplication of the segments: one ClientHello, the same.
        #[test]
        fn any_segment_order_gives_one_hello(
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            order in proptest::collection::vec(any::<usize>(), 0..24),
        ) {
            let mut t = Tracker::new();
            let got = feed(&mut t, TLS_DIR_CLIENT, CLIENT, &cuts, &order);
            prop_assert_eq!(got.len(), 1);
            let (Hello::Client(h), 1) = &got[0] else { panic!() };
            let whole = crate::parse::parse_first_hello(CLIENT).unwrap();
            prop_assert_eq!(&Message::ClientHello(h.clone()), &whole);
        }
    }
}
