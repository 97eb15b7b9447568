//! The list loaders on arbitrary text: DNS block/allow lines (plain, hosts, AdBlock), IP
//! drop lists. Errors name the line; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::policy::{dns_lists, ip_lists};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut buf = String::new();
        for line in text.lines() {
            let _ = dns_lists::parse_line_with(line, &mut buf, |name, _| {
                assert!(!name.is_empty());
            });
        }
        let _ = ip_lists::parse(std::path::Path::new("fuzz.txt"), text);
    }
});
