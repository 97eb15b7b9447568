//! Compares a `dhcp` event (its `dhcp` and `palisade.dhcp` objects) with a record of the
//! corpus' `expected/dhcp.jsonl`, field by field: the offline and the live DHCP
//! conformance tests share it.

// Indexing a serde_json `Value` yields `Null` when absent; it never panics.
#![allow(clippy::indexing_slicing)]

use serde_json::Value;

/// Record fields that are not DHCP values: where the message is (matched by the caller),
/// where the value came from, and `ja4d` (JA4D is under FoxIO's licence: not in the
/// product, docs/dhcp.md).
const NOT_COMPARED: [&str; 11] = [
    "pcap",
    "frame",
    "src_ip",
    "dst_ip",
    "src_port",
    "dst_port",
    "transport",
    "source",
    "peer_fields",
    "disagreements",
    "ja4d",
];

/// Every field of `want` (a corpus record) the event has a different value for, and every
/// optional field the event has that the record has not, as `field: want X, got Y` lines;
/// empty when all agree. A record field this does not know is a difference too.
pub fn differences(want: &Value, dhcp: &Value, vendor: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let upper = |v: &Value| Value::from(v.as_str().map(str::to_ascii_uppercase));
    // (corpus field, the event's value of it)
    let fields: [(&str, Value); 13] = [
        ("op", dhcp["type"].clone()),
        ("xid", dhcp["id"].clone()),
        ("client_mac", dhcp["client_mac"].clone()),
        ("ciaddr", dhcp["client_ip"].clone()),
        ("yiaddr", dhcp["assigned_ip"].clone()),
        ("options", vendor["options"].clone()),
        ("msg_type", upper(&dhcp["dhcp_type"])),
        ("hostname", dhcp["hostname"].clone()),
        ("param_req_list", vendor["params"].clone()),
        ("client_id", dhcp["client_id"].clone()),
        ("requested_ip", dhcp["requested_ip"].clone()),
        ("server_id", vendor["server_id"].clone()),
        ("vendor_class", dhcp["vendor_class_identifier"].clone()),
    ];
    for (field, got) in &fields {
        let w = &want[*field];
        if *w != *got {
            out.push(format!("{field}: want {w}, got {got}"));
        }
    }
    if let Some(obj) = want.as_object() {
        for k in obj.keys() {
            if !NOT_COMPARED.contains(&k.as_str()) && !fields.iter().any(|(f, _)| f == k) {
                out.push(format!("{k}: field not compared by dhcp_compare"));
            }
        }
    }
    out
}
