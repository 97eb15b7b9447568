//! The DNS worker's parser on arbitrary bytes: whole and partial parses, and the event
//! written from what parsed, as the worker writes it (`DnsEvent::write`). Must never panic,
//! and the event must always be valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_abi::RecordHeader;
use palisade_worker_dns::{
    event::DnsEvent,
    parse::{parse_message, parse_message_partial},
};
use palisade_worker_runtime::{
    eve::{Common, Context, Mac},
    json::JsonWriter,
};

fuzz_target!(|data: &[u8]| {
    let common = Common::new(&Context::default(), "dns", &RecordHeader::default());
    if let Ok(m) = parse_message(data) {
        let mut out = Vec::new();
        DnsEvent::of_message(&m, None, Mac([0; 6])).write(&mut JsonWriter::new(&mut out), &common);
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
    }
    if let Ok(p) = parse_message_partial(data) {
        let _ = format!("{p:?}");
    }
});
