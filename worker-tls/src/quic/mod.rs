//! QUIC handshakes: the Initial datagrams the kernel copies (PAL_KIND_QUIC,
//! both directions, any UDP port) decrypted ([`packet`]) and their CRYPTO
//! frames put back in order per direction, so that a ClientHello spread over
//! several Initial packets (post-quantum key shares) or sent again after a
//! HelloRetryRequest, and the server's ServerHello, come out whole. The TLS
//! messages inside are read by the same parser as over TCP.
//!
//! A connection is identified by its two endpoints; its Initial keys come
//! from the Destination Connection ID of the client's first Initial (RFC 9001
//! section 5.2), which later packets of both directions reuse whatever their
//! own connection IDs. Bounded: at most [`MAX_CONNS`] connections (the
//! oldest goes first), each forgotten [`IDLE_NS`] after its last datagram,
//! at most [`MAX_CRYPTO`] handshake bytes per direction.

pub mod packet;

use std::collections::HashMap;
use std::net::IpAddr;

use palisade_abi::{FLAG_TRUNCATED, RecordHeader};
use palisade_worker_runtime::eve;

use crate::conn::{Hello, Ready};
use crate::parse::stream::{CLIENT_HELLO, SERVER_HELLO};
use crate::parse::{MAX_HANDSHAKE_MESSAGE, parse_client_hello, parse_server_hello};
use crate::reassembly::{Pushed, Reassembler};
use packet::{Keys, QuicError, Sender, Version};

/// Connections tracked at once at most.
pub const MAX_CONNS: usize = 16_384;
/// A connection with no datagram for this long is forgotten (boot-clock ns).
pub const IDLE_NS: u64 = 30_000_000_000;
/// Handshake bytes read per direction at most (a ClientHello with
/// post-quantum key shares is under 2 KiB).
pub const MAX_CRYPTO: u64 = 64 * 1024;

/// Drop reason: a hello whose CRYPTO bytes never all arrived.
pub const DROP_HELLO_INCOMPLETE: &str = "quic_hello_incomplete";
/// Drop reason: a datagram the kernel cut at its capture cap (its tag is lost).
pub const DROP_DATAGRAM_CUT: &str = "quic_datagram_cut";
/// Notice: an Initial of a connection whose client Initial was not seen
/// (no keys: typically a server's Initial after its connection idled out).
pub const NOTICE_NO_KEYS: &str = "quic_no_keys";
/// Notice: a connection evicted to make room (table full).
pub const NOTICE_CONN_EVICTED: &str = "quic_conn_evicted";
/// Notice: CRYPTO bytes past [`MAX_CRYPTO`] or too far ahead of a gap, ignored.
pub const NOTICE_CRYPTO_BOUND: &str = "quic_crypto_bound";

type Endpoint = (IpAddr, u16);

/// The two endpoints of a datagram, in a fixed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ConnKey(Endpoint, Endpoint);

impl ConnKey {
    fn of(src: Endpoint, dst: Endpoint) -> Self {
        if src <= dst {
            Self(src, dst)
        } else {
            Self(dst, src)
        }
    }
}

/// One direction's handshake bytes.
#[derive(Debug, Default)]
struct Side {
    crypto: Reassembler,
    /// In-order bytes not yet read as a whole handshake message.
    buf: Vec<u8>,
    /// Largest packet number decrypted.
    largest: Option<u64>,
    hellos: u32,
    /// No more bytes are read (bound, or a message too large).
    closed: bool,
}

impl Side {
    fn unfinished(&self) -> bool {
        self.hellos == 0 && !self.closed && (!self.buf.is_empty() || self.crypto.pending() > 0)
    }
}

#[derive(Debug)]
struct Conn {
    version: Version,
    client: Endpoint,
    /// Client's and server's Initial keys.
    keys: [Keys; 2],
    sides: [Side; 2],
    /// The client's first Destination and Source Connection IDs.
    dcid: Vec<u8>,
    scid: Vec<u8>,
    /// The server's Source Connection ID, once seen.
    server_scid: Option<Vec<u8>>,
    sni: Option<Vec<u8>>,
    last_ns: u64,
}

impl Conn {
    fn new(version: Version, client: Endpoint, dcid: &[u8], scid: &[u8]) -> Self {
        Self {
            version,
            client,
            keys: [
                Keys::initial(version, dcid, Sender::Client),
                Keys::initial(version, dcid, Sender::Server),
            ],
            sides: [Side::default(), Side::default()],
            dcid: dcid.to_vec(),
            scid: scid.to_vec(),
            server_scid: None,
            sni: None,
            last_ns: 0,
        }
    }
}

/// A hello ready to be logged, with the QUIC connection it came in.
#[derive(Debug, Clone)]
pub struct QuicReady {
    /// The hello, its rank in its direction and the header of the datagram
    /// that completed it.
    pub ready: Ready,
    /// The connection's version.
    pub version: Version,
    /// Destination Connection ID of the client's first Initial (the one
    /// the Initial keys come from).
    pub dcid: Vec<u8>,
    /// The client's Source Connection ID.
    pub scid: Vec<u8>,
    /// The server's Source Connection ID (server hellos).
    pub server_scid: Option<Vec<u8>>,
}

/// What a datagram gave.
#[derive(Debug, Default)]
pub struct Output {
    /// Hellos ready to be logged.
    pub hellos: Vec<QuicReady>,
    /// Hellos lost and datagrams that could not be read (drop reasons).
    pub drops: Vec<&'static str>,
    /// Notices.
    pub notices: Vec<&'static str>,
}

/// Every QUIC connection seen in the middle of its handshake.
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

    /// One datagram record (its header and the UDP payload).
    pub fn datagram(&mut self, hdr: &RecordHeader, payload: &[u8]) -> Output {
        let mut out = Output::default();
        if hdr.flags & FLAG_TRUNCATED != 0 {
            out.drops.push(DROP_DATAGRAM_CUT);
            return out;
        }
        let src = (eve::addr(hdr.ip_version, hdr.src_addr), hdr.src_port);
        let dst = (eve::addr(hdr.ip_version, hdr.dst_addr), hdr.dst_port);
        let key = ConnKey::of(src, dst);
        let mut rest = payload;
        // Coalesced packets: Initials first (RFC 9000 section 12.2); the walk
        // stops at the first packet that is not one.
        while !rest.is_empty() {
            let hdr_q = match packet::parse_header(rest) {
                Ok(h) => h,
                Err(QuicError::NotInitial | QuicError::ShortHeader)
                    if rest.len() < payload.len() =>
                {
                    break;
                }
                Err(e) => {
                    out.drops.push(e.reason());
                    break;
                }
            };
            let end = hdr_q.end;
            self.packet(key, src, hdr, rest, &hdr_q, &mut out);
            rest = rest.get(end..).unwrap_or_default();
        }
        out
    }

    fn packet(
        &mut self,
        key: ConnKey,
        src: Endpoint,
        rec: &RecordHeader,
        bytes: &[u8],
        h: &packet::Header<'_>,
        out: &mut Output,
    ) {
        // Compatible version negotiation (RFC 9368): the server answers a v1
        // Initial in v2 (or back); both sides' Initial keys then come from the
        // same first DCID under the new version's salt and labels.
        if let Some(conn) = self.conns.get_mut(&key)
            && conn.version != h.version
        {
            conn.version = h.version;
            conn.keys = [
                Keys::initial(h.version, &conn.dcid, Sender::Client),
                Keys::initial(h.version, &conn.dcid, Sender::Server),
            ];
        }
        // Known connection: the keys of the sender's side.
        let opened = match self.conns.get(&key) {
            Some(conn) => {
                let dir = usize::from(src != conn.client);
                let keys = conn.keys.get(dir);
                let largest = conn.sides.get(dir).and_then(|s| s.largest);
                keys.map(|k| (dir, packet::open(bytes, h, k, largest)))
            }
            _ => None,
        };
        let (dir, opened) = match opened {
            Some((dir, Ok(o))) => (dir, o),
            other => {
                // A new connection from this side: its own DCID gives the keys.
                let fresh = Conn::new(h.version, src, h.dcid, h.scid);
                match packet::open(bytes, h, &fresh.keys[0], None) {
                    Ok(o) => {
                        if !self.conns.contains_key(&key) && self.conns.len() >= MAX_CONNS {
                            self.evict_oldest(out);
                        }
                        if let Some(mut old) = self.conns.insert(key, fresh) {
                            finish(&mut old, out);
                        }
                        (0, o)
                    }
                    Err(e) => {
                        match other {
                            Some((_, Err(known))) => out.drops.push(known.reason()),
                            _ if e == QuicError::Undecryptable => out.notices.push(NOTICE_NO_KEYS),
                            _ => out.drops.push(e.reason()),
                        }
                        return;
                    }
                }
            }
        };
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.last_ns = conn.last_ns.max(rec.ts_boot_ns);
        if dir == 1 && conn.server_scid.is_none() {
            conn.server_scid = Some(h.scid.to_vec());
        }
        let (crypto, err) = packet::crypto_frames(&opened.frames);
        if let Some(e) = err {
            out.drops.push(e.reason());
        }
        let Some(side) = conn.sides.get_mut(dir) else {
            return;
        };
        side.largest = Some(
            side.largest
                .map_or(opened.packet_number, |l| l.max(opened.packet_number)),
        );
        if side.closed {
            return;
        }
        for piece in crypto {
            if piece.offset.saturating_add(piece.data.len() as u64) > MAX_CRYPTO {
                out.notices.push(NOTICE_CRYPTO_BOUND);
                continue;
            }
            let mut bytes = Vec::new();
            if side.crypto.push(piece.offset, piece.data, &mut bytes) == Pushed::Refused {
                out.notices.push(NOTICE_CRYPTO_BOUND);
            }
            side.buf.extend_from_slice(&bytes);
        }
        read_messages(conn, dir, rec, out);
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

    fn evict_oldest(&mut self, out: &mut Output) {
        let oldest = self
            .conns
            .iter()
            .min_by_key(|(_, c)| c.last_ns)
            .map(|(k, _)| *k);
        if let Some(mut conn) = oldest.and_then(|k| self.conns.remove(&k)) {
            out.notices.push(NOTICE_CONN_EVICTED);
            finish(&mut conn, out);
        }
    }
}

/// Reads every whole handshake message of direction `dir`: ClientHellos
/// from the client, ServerHellos (or HelloRetryRequests) from the server.
fn read_messages(conn: &mut Conn, dir: usize, rec: &RecordHeader, out: &mut Output) {
    let Some(side) = conn.sides.get_mut(dir) else {
        return;
    };
    let mut hellos = Vec::new();
    while let Some(&[ty, a, b, c]) = side.buf.get(..4) {
        let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        if len > MAX_HANDSHAKE_MESSAGE {
            out.notices.push(NOTICE_CRYPTO_BOUND);
            side.closed = true;
            side.buf.clear();
            break;
        }
        let Some(body) = side.buf.get(4..4 + len) else {
            break;
        };
        let hello = match (dir, ty) {
            (0, CLIENT_HELLO) => Some(parse_client_hello(body).map(Hello::Client)),
            (1, SERVER_HELLO) => {
                Some(parse_server_hello(body).map(|h| Hello::Server(h, None, None)))
            }
            _ => None,
        };
        match hello {
            Some(Ok(h)) => {
                side.hellos += 1;
                hellos.push((h, side.hellos));
            }
            Some(Err(e)) => out.drops.push(e.reason()),
            None => {}
        }
        side.buf.drain(..4 + len);
    }
    for (hello, index) in hellos {
        let hello = match hello {
            Hello::Client(h) => {
                conn.sni.clone_from(&h.sni);
                Hello::Client(h)
            }
            Hello::Server(h, _, cert) => Hello::Server(h, conn.sni.clone(), cert),
        };
        out.hellos.push(QuicReady {
            ready: Ready {
                hello,
                index,
                hdr: *rec,
            },
            version: conn.version,
            dcid: conn.dcid.clone(),
            scid: conn.scid.clone(),
            server_scid: conn.server_scid.clone(),
        });
    }
}

/// Counts the hellos a connection leaves unfinished.
fn finish(conn: &mut Conn, out: &mut Output) {
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

    /// The first TLS record of a real Chrome connection: its ClientHello message.
    fn client_hello() -> Vec<u8> {
        let s = include_bytes!("../../testdata/sv_tls13-chrome-grease-tcp-and-quic.client.bin");
        let len = usize::from(u16::from_be_bytes([s[3], s[4]]));
        s[5..5 + len].to_vec()
    }

    fn server_hello() -> Vec<u8> {
        let s = include_bytes!("../../testdata/sv_tls13-chrome-grease-tcp-and-quic.server.bin");
        let len = usize::from(u16::from_be_bytes([s[3], s[4]]));
        s[5..5 + len].to_vec()
    }

    const DCID: &[u8] = &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

    fn seal(sender: Sender, pn: u8, frames: &[u8]) -> Vec<u8> {
        packet::seal(Version::V1, DCID, sender, pn, frames)
    }

    fn crypto(offset: usize, data: &[u8]) -> Vec<u8> {
        packet::crypto_frame(offset as u64, data)
    }

    fn hdr(from_client: bool, ts: u64) -> RecordHeader {
        let mut h = RecordHeader {
            ip_version: 4,
            l4_proto: 17,
            ts_boot_ns: ts,
            ..RecordHeader::default()
        };
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let (src, dst, sp, dp) = if from_client {
            (a, b, 50000, 443)
        } else {
            (b, a, 443, 50000)
        };
        h.src_addr[..4].copy_from_slice(&src);
        h.dst_addr[..4].copy_from_slice(&dst);
        h.src_port = sp;
        h.dst_port = dp;
        h
    }

    #[test]
    fn a_client_hello_over_two_initials_out_of_order_comes_out_whole() {
        let ch = client_hello();
        let cut = 300;
        let mut t = Tracker::new();
        let second = seal(Sender::Client, 1, &crypto(cut, &ch[cut..]));
        let out = t.datagram(&hdr(true, 1), &second);
        assert!(out.hellos.is_empty() && out.drops.is_empty(), "{out:?}");
        let first = seal(Sender::Client, 0, &crypto(0, &ch[..cut]));
        let out = t.datagram(&hdr(true, 2), &first);
        assert_eq!(out.hellos.len(), 1, "{out:?}");
        let q = &out.hellos[0];
        let Hello::Client(h) = &q.ready.hello else {
            panic!("not a ClientHello")
        };
        assert_eq!(h.sni.as_deref(), Some(&b"cloudflare-quic.com"[..]));
        assert_eq!(q.ready.index, 1);
        assert_eq!(q.ready.hdr.ts_boot_ns, 2, "the datagram that completed it");
        assert_eq!(q.dcid, DCID);
        // A retransmission of the first part adds nothing.
        let again = t.datagram(
            &hdr(true, 3),
            &seal(Sender::Client, 2, &crypto(0, &ch[..cut])),
        );
        assert!(
            again.hellos.is_empty() && again.drops.is_empty(),
            "{again:?}"
        );
        // The server's Initial: its keys come from the client's DCID.
        let out = t.datagram(
            &hdr(false, 4),
            &seal(Sender::Server, 0, &crypto(0, &server_hello())),
        );
        assert_eq!(out.hellos.len(), 1, "{out:?}");
        let Hello::Server(_, sni, _) = &out.hellos[0].ready.hello else {
            panic!("not a ServerHello")
        };
        assert_eq!(sni.as_deref(), Some(&b"cloudflare-quic.com"[..]));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn version_2_initials_are_read_too() {
        let mut t = Tracker::new();
        let d = packet::seal(
            Version::V2,
            DCID,
            Sender::Client,
            0,
            &crypto(0, &client_hello()),
        );
        let out = t.datagram(&hdr(true, 1), &d);
        assert_eq!(out.hellos.len(), 1, "{out:?}");
        assert_eq!(out.hellos[0].version, Version::V2);
    }

    #[test]
    fn a_second_client_hello_on_the_stream_is_logged_with_its_rank() {
        let ch = client_hello();
        let mut t = Tracker::new();
        let mut two = crypto(0, &ch);
        two.extend_from_slice(&crypto(ch.len(), &ch));
        let out = t.datagram(&hdr(true, 1), &seal(Sender::Client, 0, &two));
        let ranks: Vec<u32> = out.hellos.iter().map(|q| q.ready.index).collect();
        assert_eq!(ranks, [1, 2]);
    }

    #[test]
    fn what_cannot_be_read_is_counted_and_unfinished_hellos_expire() {
        let mut t = Tracker::new();
        // A server Initial with no client Initial seen: no keys.
        let out = t.datagram(
            &hdr(false, 1),
            &seal(Sender::Server, 0, &crypto(0, &server_hello())),
        );
        assert_eq!(out.notices, [NOTICE_NO_KEYS]);
        // A datagram the kernel cut.
        let mut h = hdr(true, 1);
        h.flags |= FLAG_TRUNCATED;
        assert_eq!(t.datagram(&h, &[0xc0; 1300]).drops, [DROP_DATAGRAM_CUT]);
        // Damaged bytes fail the AEAD tag.
        let mut bad = seal(Sender::Client, 0, &crypto(0, &client_hello()[..100]));
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(t.datagram(&hdr(true, 1), &bad).notices, [NOTICE_NO_KEYS]);
        // Half a hello, then silence: gone from memory, counted.
        let half = seal(Sender::Client, 0, &crypto(0, &client_hello()[..100]));
        assert!(t.datagram(&hdr(true, 5), &half).hellos.is_empty());
        assert_eq!(t.len(), 1);
        assert!(t.expire(5 + IDLE_NS - 1).drops.is_empty());
        assert_eq!(t.expire(5 + IDLE_NS + 1).drops, [DROP_HELLO_INCOMPLETE]);
        assert!(t.is_empty());
    }
}
