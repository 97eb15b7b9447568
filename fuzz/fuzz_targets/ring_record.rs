//! What a worker does with each ring-buffer item before any parser: the record header check
//! (magic, ABI, kind, lengths), then the fixed-size payloads (flow records, IP block alerts).
//! Must never panic; every record it accepts must be self-consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_abi::{FlowRecord, IpBlockRecord, RecordHeader};

fuzz_target!(|data: &[u8]| {
    if let Ok((hdr, payload)) = RecordHeader::read(data) {
        assert_eq!(payload.len() as u64, u64::from(hdr.payload_len));
        assert!(payload.len() <= data.len());
        let _ = FlowRecord::read(payload);
        let _ = IpBlockRecord::read(payload);
        let _ = (hdr.src_ip(), hdr.dst_ip());
    }
});
