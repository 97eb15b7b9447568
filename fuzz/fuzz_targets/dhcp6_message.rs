//! The DHCP worker's DHCPv6 parser on arbitrary bytes (relay messages included), and the
//! event objects built from what parsed. Must never panic, and the objects must always
//! serialize to JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_worker_dhcp::{event, parse6};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse6::parse(data) {
        let (dhcp, vendor) = event::v6(&m, Some([2, 0, 0, 0, 0, 1]));
        assert!(serde_json::to_vec(&dhcp).is_ok());
        assert!(serde_json::to_vec(&vendor).is_ok());
    }
});
