//! The DHCP worker's parser on arbitrary bytes. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = palisade_worker_dhcp::parse::parse(data) {
        let _ = format!("{m:?}");
    }
});
