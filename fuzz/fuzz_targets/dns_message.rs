//! The DNS worker's parser on arbitrary bytes: whole and partial parses, and the event built
//! from what parsed, serialized as the worker writes it. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_worker_dns::{
    event::DnsBody,
    parse::{parse_message, parse_message_partial},
};
use palisade_worker_runtime::eve::Mac;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse_message(data) {
        let body = DnsBody::new(&m, None, Mac([0; 6]));
        let _ = serde_json::to_string(&body);
    }
    if let Ok(p) = parse_message_partial(data) {
        let _ = format!("{p:?}");
    }
});
