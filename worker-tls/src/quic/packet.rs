//! One QUIC Initial packet: the long header (RFC 9000 section 17.2.2), the
//! Initial keys (RFC 9001 section 5.2, RFC 9369 section 3.3), header
//! protection removed (RFC 9001 section 5.4), the payload decrypted with
//! AES-128-GCM (section 5.3) and its frames read (RFC 9000 section 19): the
//! CRYPTO frames' pieces of the TLS handshake, by offset.
//!
//! The cryptography is RustCrypto's (hkdf, sha2, aes-gcm and its aes); this
//! file only lays out the bytes. Reads go through the checked cursor: no
//! indexing, no panics on any input.

use aes_gcm::{
    Aes128Gcm, KeyInit,
    aead::{Aead, Payload},
    aes::{Aes128, cipher::BlockCipherEncrypt},
};
use hkdf::Hkdf;
use palisade_worker_runtime::cursor::{Cursor, Truncated};
use sha2::Sha256;

/// QUIC version 1 (RFC 9000).
pub const V1: u32 = palisade_abi::QUIC_V1;
/// QUIC version 2 (RFC 9369).
pub const V2: u32 = palisade_abi::QUIC_V2;

const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];

/// Longest connection ID (RFC 9000 section 17.2: 20 bytes in v1 and v2).
pub const MAX_CID: usize = 20;

/// A QUIC version Palisade decrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 9000.
    V1,
    /// RFC 9369.
    V2,
}

impl Version {
    /// The version of a long header's version field, `None` if not one of ours.
    pub const fn from_wire(v: u32) -> Option<Self> {
        match v {
            V1 => Some(Self::V1),
            V2 => Some(Self::V2),
            _ => None,
        }
    }

    /// `quic.version` in EVE: "1" or "2", as Zeek and Suricata print them.
    pub const fn eve_name(self) -> &'static str {
        match self {
            Self::V1 => "1",
            Self::V2 => "2",
        }
    }

    /// The long-header packet type of an Initial.
    const fn initial_type(self) -> u8 {
        match self {
            Self::V1 => 0,
            Self::V2 => 1,
        }
    }

    const fn salt(self) -> &'static [u8; 20] {
        match self {
            Self::V1 => &SALT_V1,
            Self::V2 => &SALT_V2,
        }
    }

    /// The labels of the packet protection key, IV and header protection key.
    const fn labels(self) -> [&'static [u8]; 3] {
        match self {
            Self::V1 => [b"quic key", b"quic iv", b"quic hp"],
            Self::V2 => [b"quicv2 key", b"quicv2 iv", b"quicv2 hp"],
        }
    }
}

/// Why a datagram yielded no handshake bytes. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuicError {
    /// The datagram ended inside the header or the packet.
    Truncated,
    /// A short-header packet (or not QUIC at all).
    ShortHeader,
    /// A version Palisade has no Initial keys for.
    Version(u32),
    /// A long-header packet that is not an Initial.
    NotInitial,
    /// A connection ID longer than 20 bytes.
    CidTooLong,
    /// The AEAD tag did not verify: other keys (another connection, the
    /// other direction), or damaged bytes.
    Undecryptable,
    /// A frame type that Initial packets cannot carry (frames before it were read).
    Frame(u64),
}

impl QuicError {
    /// Counter name (`drops` / `notices` reasons in the worker's stats).
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Truncated => "quic_truncated",
            Self::ShortHeader => "quic_short_header",
            Self::Version(_) => "quic_unknown_version",
            Self::NotInitial => "quic_not_initial",
            Self::CidTooLong => "quic_cid_too_long",
            Self::Undecryptable => "quic_undecryptable",
            Self::Frame(_) => "quic_bad_frame",
        }
    }
}

impl From<Truncated> for QuicError {
    fn from(_: Truncated) -> Self {
        Self::Truncated
    }
}

/// Which endpoint's Initial keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// "client in".
    Client,
    /// "server in".
    Server,
}

/// The Initial packet protection of one direction of one connection.
pub struct Keys {
    aead: Aes128Gcm,
    iv: [u8; 12],
    hp: Aes128,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// HKDF-Expand-Label (RFC 8446 section 7.1) with an empty context.
fn expand_label(prk: &Hkdf<Sha256>, label: &[u8], out: &mut [u8]) {
    const PREFIX: &[u8] = b"tls13 ";
    let mut info = Vec::with_capacity(4 + PREFIX.len() + label.len());
    info.extend_from_slice(&u16::try_from(out.len()).unwrap_or(u16::MAX).to_be_bytes());
    info.push(u8::try_from(PREFIX.len() + label.len()).unwrap_or(u8::MAX));
    info.extend_from_slice(PREFIX);
    info.extend_from_slice(label);
    info.push(0);
    // The lengths asked for here (12, 16, 32) are far below HKDF's 255 * 32 limit.
    let _ = prk.expand(&info, out);
}

impl Keys {
    /// The Initial keys of `sender` for a connection whose client chose
    /// `dcid` as the Destination Connection ID of its first Initial.
    pub fn initial(version: Version, dcid: &[u8], sender: Sender) -> Self {
        let (initial_secret, _) = Hkdf::<Sha256>::extract(Some(version.salt()), dcid);
        let initial = Hkdf::<Sha256>::from_prk(&initial_secret).unwrap_or_else(|_| {
            // A SHA-256 PRK is always 32 bytes: from_prk cannot refuse it.
            Hkdf::<Sha256>::new(None, &initial_secret)
        });
        let label: &[u8] = match sender {
            Sender::Client => b"client in",
            Sender::Server => b"server in",
        };
        let mut secret = [0u8; 32];
        expand_label(&initial, label, &mut secret);
        let side = Hkdf::<Sha256>::from_prk(&secret)
            .unwrap_or_else(|_| Hkdf::<Sha256>::new(None, &secret));
        let [key_label, iv_label, hp_label] = version.labels();
        let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
        expand_label(&side, key_label, &mut key);
        expand_label(&side, iv_label, &mut iv);
        expand_label(&side, hp_label, &mut hp);
        Self {
            aead: Aes128Gcm::new(&key.into()),
            iv,
            hp: Aes128::new(&hp.into()),
        }
    }
}

/// Reads a variable-length integer (RFC 9000 section 16).
pub fn varint(c: &mut Cursor<'_>) -> Result<u64, Truncated> {
    let first = c.u8()?;
    let extra = (1usize << (first >> 6)) - 1;
    let mut v = u64::from(first & 0x3f);
    for &b in c.take(extra)? {
        v = v << 8 | u64::from(b);
    }
    Ok(v)
}

fn len_of(v: u64) -> Result<usize, QuicError> {
    usize::try_from(v).map_err(|_| QuicError::Truncated)
}

/// The long header of an Initial packet, up to its (protected) packet number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// Its version.
    pub version: Version,
    /// Destination Connection ID.
    pub dcid: &'a [u8],
    /// Source Connection ID.
    pub scid: &'a [u8],
    /// Offset of the packet number in the datagram.
    pn_offset: usize,
    /// Offset of the end of this packet (coalesced packets may follow).
    pub end: usize,
}

/// Reads the long header of the Initial packet at the start of `datagram`.
pub fn parse_header(datagram: &[u8]) -> Result<Header<'_>, QuicError> {
    let mut c = Cursor::new(datagram);
    let first = c.u8()?;
    if first & 0x80 == 0 {
        return Err(QuicError::ShortHeader);
    }
    let wire = c.u32()?;
    let version = Version::from_wire(wire).ok_or(QuicError::Version(wire))?;
    if (first >> 4) & 0x03 != version.initial_type() {
        return Err(QuicError::NotInitial);
    }
    let dcid_len = usize::from(c.u8()?);
    if dcid_len > MAX_CID {
        return Err(QuicError::CidTooLong);
    }
    let dcid = c.take(dcid_len)?;
    let scid_len = usize::from(c.u8()?);
    if scid_len > MAX_CID {
        return Err(QuicError::CidTooLong);
    }
    let scid = c.take(scid_len)?;
    let token_len = len_of(varint(&mut c)?)?;
    c.skip(token_len)?;
    let length = len_of(varint(&mut c)?)?;
    let pn_offset = datagram.len() - c.remaining();
    let end = pn_offset.checked_add(length).ok_or(QuicError::Truncated)?;
    if end > datagram.len() {
        return Err(QuicError::Truncated);
    }
    Ok(Header {
        version,
        dcid,
        scid,
        pn_offset,
        end,
    })
}

/// The full packet number nearest to `expected` whose low `bits` bits are
/// `truncated` (RFC 9000 appendix A.3).
fn full_packet_number(expected: u64, truncated: u64, bits: u32) -> u64 {
    let win = 1u64 << bits;
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | truncated;
    if candidate.saturating_add(hwin) <= expected && candidate < (1u64 << 62) - win {
        candidate + win
    } else if candidate > expected.saturating_add(hwin) && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

/// A decrypted Initial packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Its packet number.
    pub packet_number: u64,
    /// Its frames, in plaintext.
    pub frames: Vec<u8>,
}

/// Removes header protection from and decrypts the packet `hdr` describes.
/// `largest` is the largest packet number decrypted so far in this
/// direction (for the packet number's upper bits).
pub fn open(
    datagram: &[u8],
    hdr: &Header<'_>,
    keys: &Keys,
    largest: Option<u64>,
) -> Result<Opened, QuicError> {
    let packet = datagram.get(..hdr.end).ok_or(QuicError::Truncated)?;
    // The sample starts 4 bytes after the packet number's first byte.
    let sample: [u8; 16] = packet
        .get(hdr.pn_offset + 4..hdr.pn_offset + 20)
        .and_then(|s| s.try_into().ok())
        .ok_or(QuicError::Truncated)?;
    let mut mask = aes_gcm::aes::Block::from(sample);
    keys.hp.encrypt_block(&mut mask);
    let mut header = packet
        .get(..hdr.pn_offset + 4)
        .ok_or(QuicError::Truncated)?
        .to_vec();
    let first = header.first_mut().ok_or(QuicError::Truncated)?;
    let mask0 = mask.first().copied().unwrap_or(0);
    *first ^= mask0 & 0x0f;
    let pn_len = usize::from(*first & 0x03) + 1;
    header.truncate(hdr.pn_offset + pn_len);
    let mut truncated = 0u64;
    for (i, byte) in header.iter_mut().skip(hdr.pn_offset).enumerate() {
        *byte ^= mask.get(1 + i).copied().unwrap_or(0);
        truncated = truncated << 8 | u64::from(*byte);
    }
    let bits = u32::try_from(pn_len * 8).unwrap_or(32);
    let expected = largest.map_or(0, |l| l.saturating_add(1));
    let packet_number = full_packet_number(expected, truncated, bits);
    let mut nonce = keys.iv;
    for (n, p) in nonce.iter_mut().skip(4).zip(packet_number.to_be_bytes()) {
        *n ^= p;
    }
    let ciphertext = packet
        .get(hdr.pn_offset + pn_len..)
        .ok_or(QuicError::Truncated)?;
    let frames = keys
        .aead
        .decrypt(
            &nonce.into(),
            Payload {
                msg: ciphertext,
                aad: &header,
            },
        )
        .map_err(|_| QuicError::Undecryptable)?;
    Ok(Opened {
        packet_number,
        frames,
    })
}

/// Builds a protected Initial packet carrying `frames` (padded to a
/// 1200-byte datagram), with a one-byte packet number: the inverse of
/// [`open`], for the benchmark's traffic, the fuzz target and tests.
pub fn seal(
    version: Version,
    dcid: &[u8],
    sender: Sender,
    packet_number: u8,
    frames: &[u8],
) -> Vec<u8> {
    let keys = Keys::initial(version, dcid, sender);
    let mut payload = frames.to_vec();
    // 1200 bytes: header (at most 7 + 2 * 21 + 1 + 2 + 1 = 53) + payload + 16-byte tag.
    let header_len = 7 + dcid.len().min(MAX_CID) + 1 + 2 + 1;
    payload.resize(payload.len().max(1200 - 16 - header_len), 0);
    let mut header = vec![0xc0 | version.initial_type() << 4];
    header.extend_from_slice(
        &match version {
            Version::V1 => V1,
            Version::V2 => V2,
        }
        .to_be_bytes(),
    );
    let dcid = dcid.get(..dcid.len().min(MAX_CID)).unwrap_or_default();
    header.push(u8::try_from(dcid.len()).unwrap_or(0));
    header.extend_from_slice(dcid);
    header.extend_from_slice(&[0, 0]); // empty SCID, no token
    let length = u16::try_from(1 + payload.len() + 16)
        .unwrap_or(0x3fff)
        .min(0x3fff)
        | 0x4000;
    header.extend_from_slice(&length.to_be_bytes());
    let pn_offset = header.len();
    header.push(packet_number);
    let mut nonce = keys.iv;
    if let Some(last) = nonce.last_mut() {
        *last ^= packet_number;
    }
    let sealed = keys
        .aead
        .encrypt(
            &nonce.into(),
            Payload {
                msg: &payload,
                aad: &header,
            },
        )
        .unwrap_or_default();
    let mut packet = header;
    packet.extend_from_slice(&sealed);
    let sample: Option<[u8; 16]> = packet
        .get(pn_offset + 4..pn_offset + 20)
        .and_then(|s| s.try_into().ok());
    if let Some(sample) = sample {
        let mut mask = aes_gcm::aes::Block::from(sample);
        keys.hp.encrypt_block(&mut mask);
        let (m0, m1) = (
            mask.first().copied().unwrap_or(0),
            mask.get(1).copied().unwrap_or(0),
        );
        if let Some(first) = packet.first_mut() {
            *first ^= m0 & 0x0f;
        }
        if let Some(pn) = packet.get_mut(pn_offset) {
            *pn ^= m1;
        }
    }
    packet
}

/// A CRYPTO frame carrying `data` at `offset`.
pub fn crypto_frame(offset: u64, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x06];
    for v in [offset, data.len() as u64] {
        // 4-byte varints: enough for any Initial.
        let v = u32::try_from(v.min(0x3fff_ffff)).unwrap_or(0) | 0x8000_0000;
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(data);
    f
}

/// One CRYPTO frame: handshake bytes at a stream offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crypto<'a> {
    /// Offset in the Initial CRYPTO stream.
    pub offset: u64,
    /// The bytes.
    pub data: &'a [u8],
}

/// The CRYPTO frames of a decrypted Initial packet, in order. Frames Initial
/// packets may carry (PADDING, PING, ACK, CONNECTION_CLOSE) are skipped; any
/// other frame type stops the walk with the frames read so far and the error.
pub fn crypto_frames(frames: &[u8]) -> (Vec<Crypto<'_>>, Option<QuicError>) {
    let mut out = Vec::new();
    let mut c = Cursor::new(frames);
    let err = loop {
        if c.remaining() == 0 {
            break None;
        }
        match frame(&mut c) {
            Ok(Some(crypto)) => out.push(crypto),
            Ok(None) => {}
            Err(e) => break Some(e),
        }
    };
    (out, err)
}

fn frame<'a>(c: &mut Cursor<'a>) -> Result<Option<Crypto<'a>>, QuicError> {
    let ty = varint(c)?;
    match ty {
        0x00 | 0x01 => {} // PADDING, PING
        0x02 | 0x03 => {
            // ACK: largest, delay, range count, first range, ranges, ECN counts.
            varint(c)?;
            varint(c)?;
            let ranges = varint(c)?;
            varint(c)?;
            // Each range is two varints of at least one byte: bounded by the input.
            for _ in 0..ranges {
                varint(c)?;
                varint(c)?;
            }
            if ty == 0x03 {
                for _ in 0..3 {
                    varint(c)?;
                }
            }
        }
        0x06 => {
            let offset = varint(c)?;
            let len = len_of(varint(c)?)?;
            let data = c.take(len)?;
            return Ok(Some(Crypto { offset, data }));
        }
        0x1c => {
            // CONNECTION_CLOSE (transport): error code, frame type, reason.
            varint(c)?;
            varint(c)?;
            let len = len_of(varint(c)?)?;
            c.skip(len)?;
        }
        other => return Err(QuicError::Frame(other)),
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn hexb(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// The keys of `Keys`, re-derived through the public API by encrypting a
    /// known block: compares the header-protection key via its mask.
    fn mask(keys: &Keys, sample: [u8; 16]) -> [u8; 16] {
        let mut b = aes_gcm::aes::Block::from(sample);
        keys.hp.encrypt_block(&mut b);
        b.into()
    }

    #[test]
    fn rfc9001_appendix_a_client_initial_keys() {
        // RFC 9001 A.1 (DCID 0x8394c8f03e515708): client iv and, through the
        // A.2 sample, the header-protection mask.
        let k = Keys::initial(Version::V1, &hexb("8394c8f03e515708"), Sender::Client);
        assert_eq!(k.iv.to_vec(), hexb("fa044b2f42a3fd3b46fb255c"));
        let sample: [u8; 16] = hexb("d1b1c98dd7689fb8ec11d242b123dc9b").try_into().unwrap();
        assert_eq!(mask(&k, sample)[..5].to_vec(), hexb("437b9aec36"));
    }

    #[test]
    fn rfc9001_appendix_a_server_initial_iv() {
        let k = Keys::initial(Version::V1, &hexb("8394c8f03e515708"), Sender::Server);
        assert_eq!(k.iv.to_vec(), hexb("0ac1493ca1905853b0bba03e"));
    }

    #[test]
    fn rfc9369_appendix_a_client_initial_iv() {
        let k = Keys::initial(Version::V2, &hexb("8394c8f03e515708"), Sender::Client);
        assert_eq!(k.iv.to_vec(), hexb("91f73e2351d8fa91660e909f"));
    }

    #[test]
    fn packet_numbers_decode_as_rfc9000_a3() {
        // RFC 9000 A.3's example: largest 0xa82f30ea, 16-bit 0x9b32.
        assert_eq!(full_packet_number(0xa82f30eb, 0x9b32, 16), 0xa82f9b32);
        assert_eq!(full_packet_number(0, 0, 8), 0);
        assert_eq!(full_packet_number(1, 1, 8), 1);
    }

    #[test]
    fn varints_decode_as_rfc9000_a1() {
        for (bytes, want) in [
            ("c2197c5eff14e88c", 151_288_809_941_952_652u64),
            ("9d7f3e7d", 494_878_333),
            ("7bbd", 15_293),
            ("25", 37),
            ("4025", 37),
        ] {
            let b = hexb(bytes);
            assert_eq!(varint(&mut Cursor::new(&b)).unwrap(), want, "{bytes}");
        }
    }

    #[test]
    fn headers_are_refused_cleanly() {
        assert_eq!(parse_header(&[]), Err(QuicError::Truncated));
        assert_eq!(
            parse_header(&[0x40, 0, 0, 0, 1]),
            Err(QuicError::ShortHeader)
        );
        assert_eq!(
            parse_header(&[0xc0, 0, 0, 0, 2, 0]),
            Err(QuicError::Version(2))
        );
        assert_eq!(
            parse_header(&[0xe0, 0, 0, 0, 1, 0]),
            Err(QuicError::NotInitial)
        );
        assert_eq!(
            parse_header(&[0xc0, 0, 0, 0, 1, 21]),
            Err(QuicError::CidTooLong)
        );
        // A length that runs past the datagram.
        assert_eq!(
            parse_header(&[0xc0, 0, 0, 0, 1, 0, 0, 0, 0x40, 0x50, 0]),
            Err(QuicError::Truncated)
        );
    }

    #[test]
    fn frames_yield_crypto_and_stop_at_forbidden_types() {
        // PADDING, PING, ACK(largest 5, delay 0, 1 range, first 0, gap 0, len 0),
        // CRYPTO(offset 3, len 2, "hi"), STREAM (0x08): not allowed in Initial.
        let f = [
            0, 1, 0x02, 5, 0, 1, 0, 0, 0, 0x06, 3, 2, b'h', b'i', 0x08, 0,
        ];
        let (crypto, err) = crypto_frames(&f);
        assert_eq!(
            crypto,
            vec![Crypto {
                offset: 3,
                data: b"hi"
            }]
        );
        assert_eq!(err, Some(QuicError::Frame(8)));
        let (crypto, err) = crypto_frames(&[0x06, 0, 5, b'a']);
        assert!(crypto.is_empty());
        assert_eq!(err, Some(QuicError::Truncated));
    }
}
