//! The TLS worker's QUIC tracker on arbitrary datagrams, both raw (headers, lengths and
//! coalesced packets chosen by the input) and sealed as real Initial packets (so the
//! decrypted side, CRYPTO frames and their reassembly, sees arbitrary frames too).
//! Must never panic and must stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_abi::RecordHeader;
use palisade_worker_tls::quic::{
    Tracker,
    packet::{self, Sender, Version},
};

fuzz_target!(|data: &[u8]| {
    let mut t = Tracker::new();
    let mut client = RecordHeader {
        ip_version: 4,
        l4_proto: 17,
        src_port: 50000,
        dst_port: 443,
        ..RecordHeader::default()
    };
    client.src_addr[0] = 1;
    let mut server = client;
    std::mem::swap(&mut server.src_addr, &mut server.dst_addr);
    std::mem::swap(&mut server.src_port, &mut server.dst_port);
    // Each piece: mode (1 byte), length (2 bytes), bytes.
    let mut rest = data;
    let mut ts = 0u64;
    while let [mode, l1, l2, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*l1, *l2])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        ts += 1;
        let mut h = if mode & 1 == 0 { client } else { server };
        h.ts_boot_ns = ts;
        let datagram = if mode & 2 == 0 {
            bytes.to_vec()
        } else {
            let version = if mode & 4 == 0 { Version::V1 } else { Version::V2 };
            let sender = if mode & 1 == 0 { Sender::Client } else { Sender::Server };
            packet::seal(version, b"fuzzdcid", sender, mode >> 3, bytes)
        };
        let _ = t.datagram(&h, &datagram);
        rest = next;
    }
    let _ = t.expire(u64::MAX);
    assert!(t.is_empty());
});
