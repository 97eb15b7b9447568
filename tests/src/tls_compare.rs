//! Compares a `tls` event (its `tls` and `palisade.tls` objects) with a
//! record of the corpus' `expected/tls.jsonl`, field by field: the offline
//! and the live TLS conformance tests share it.

// Indexing a serde_json `Value` yields `Null` when absent; it never panics.
#![allow(clippy::indexing_slicing)]

use palisade_worker_tls::parse::ProtocolVersion;
use serde_json::Value;

fn hex_version(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    let n = u16::from_str_radix(s.trim_start_matches("0x"), 16).ok()?;
    Some(ProtocolVersion(n).eve_name())
}

fn or_empty(v: &Value) -> Value {
    if v.is_null() {
        Value::Array(Vec::new())
    } else {
        v.clone()
    }
}

/// Every field of `want` (a corpus record) the event has a different value
/// for, as `field: want X, got Y` lines; empty when all agree.
pub fn differences(want: &Value, tls: &Value, vendor: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |field: &str, want: Value, got: Value| {
        if want != got {
            out.push(format!("{field}: want {want}, got {got}"));
        }
    };
    if let Some(v) = hex_version(&want["client_version"]) {
        check(
            "client_version",
            Value::String(v),
            tls["client_handshake"]["version"].clone(),
        );
    }
    if let Some(list) = want["supported_versions"].as_array() {
        let want_n: Vec<Value> = list
            .iter()
            .filter_map(|v| v.as_str())
            .filter_map(|s| u16::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .map(Value::from)
            .collect();
        check(
            "supported_versions",
            Value::Array(want_n),
            or_empty(&vendor["supported_versions"]),
        );
    }
    check("sni", want["sni"].clone(), tls["sni"].clone());
    if want["alpn_hex"].is_array() {
        check(
            "alpn_hex",
            want["alpn_hex"].clone(),
            vendor["alpns_hex"].clone(),
        );
    } else {
        check("alpn", want["alpn"].clone(), tls["client_alpns"].clone());
    }
    check(
        "ciphers",
        or_empty(&want["ciphers"]),
        or_empty(&tls["client_handshake"]["ciphers"]),
    );
    check(
        "extensions",
        or_empty(&want["extensions"]),
        or_empty(&tls["client_handshake"]["exts"]),
    );
    check(
        "ja3_string",
        want["ja3_string"].clone(),
        tls["ja3"]["string"].clone(),
    );
    check(
        "ja3_hash",
        want["ja3_hash"].clone(),
        tls["ja3"]["hash"].clone(),
    );
    if !want["ja4"].is_null() {
        check("ja4", want["ja4"].clone(), tls["ja4"].clone());
    }
    if !want["ja4_r"].is_null() {
        check("ja4_r", want["ja4_r"].clone(), vendor["ja4_r"].clone());
    }
    out
}
