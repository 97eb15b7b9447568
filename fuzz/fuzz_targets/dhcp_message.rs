//! The DHCP worker's DHCPv4 parser on arbitrary bytes, and the event objects built from
//! what parsed. Must never panic, and the objects must always serialize to JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_worker_dhcp::{event, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse::parse(data) {
        let (dhcp, vendor) = event::v4(&m);
        assert!(serde_json::to_vec(&dhcp).is_ok());
        assert!(serde_json::to_vec(&vendor).is_ok());
    }
});
