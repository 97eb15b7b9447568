//! The TLS worker's ClientHello/ServerHello parser on arbitrary bytes. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(hello) = palisade_worker_tls::parse::parse_record(data) {
        let _ = hello.version();
        let _ = format!("{hello:?}");
    }
});
