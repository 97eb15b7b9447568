//! The configuration loader on arbitrary text (`palisade check-config`, reload): every
//! problem must come back as an error naming the key and line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = palisade::config::Config::parse("fuzz.toml", text);
    }
});
