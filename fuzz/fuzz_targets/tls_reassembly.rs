//! The TLS worker's connection tracker on arbitrary segment records: offsets, directions,
//! flags and bytes chosen by the input (retransmissions, overlaps, gaps, garbage). Must
//! never panic and must stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_abi::{RecordHeader, TlsSeg};
use palisade_worker_tls::conn::Tracker;

fuzz_target!(|data: &[u8]| {
    let mut t = Tracker::new();
    let hdr = RecordHeader {
        ip_version: 4,
        l4_proto: 6,
        ..RecordHeader::default()
    };
    // Each piece: offset (2 bytes), direction/flags (1 byte), length (1 byte), bytes.
    let mut rest = data;
    let mut ts = 0u64;
    while let [o1, o2, f, n, tail @ ..] = rest {
        let len = usize::from(*n).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        let seg = TlsSeg {
            conn_ns: u64::from(*f >> 4),
            offset: u32::from(u16::from_be_bytes([*o1, *o2])),
            dir: f & 1,
            flags: (f >> 1) & 0x07,
            ..TlsSeg::default()
        };
        ts += 1;
        let mut h = hdr;
        h.ts_boot_ns = ts;
        let _ = t.segment(&h, &seg, bytes);
        rest = next;
    }
    let _ = t.expire(u64::MAX);
    assert!(t.is_empty());
});
