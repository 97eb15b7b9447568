//! The DHCP worker's protocol run offline (`palisade_worker_runtime::offline`): DHCPv4 and
//! DHCPv6 records as the kernel writes them, the events written, transactions and the
//! inventory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a panic is a test failure"
)]

use std::{fs::File, io::Read, os::fd::OwnedFd};

use palisade_abi::{KIND_DHCP, RECORD_MAGIC, RecordHeader};
use palisade_ipc::messages::{FdRole, InterfaceName};
use palisade_worker_dhcp::worker::Dhcp;
use palisade_worker_runtime::offline::Offline;
use serde_json::Value;

fn record(sport: u16, dport: u16, v6: bool, src_mac: [u8; 6], ts: u64, payload: &[u8]) -> Vec<u8> {
    let hdr = RecordHeader {
        magic: RECORD_MAGIC,
        abi_version: palisade_abi::ABI_VERSION,
        kind: KIND_DHCP,
        len: (RecordHeader::SIZE + payload.len()) as u32,
        ifindex: 2,
        ts_boot_ns: ts,
        ip_version: if v6 { 6 } else { 4 },
        l4_proto: 17,
        src_port: sport,
        dst_port: dport,
        src_mac,
        payload_len: payload.len() as u32,
        orig_payload_len: payload.len() as u32,
        ..RecordHeader::default()
    };
    let mut out = hdr.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn opt6(code: u16, value: &[u8]) -> Vec<u8> {
    let mut o = code.to_be_bytes().to_vec();
    o.extend((value.len() as u16).to_be_bytes());
    o.extend(value);
    o
}

const MAC: [u8; 6] = [0x00, 0x11, 0x32, 1, 2, 3];

fn duid() -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend(MAC);
    d
}

fn v6_message(kind: u8, xid: [u8; 3], server: bool) -> Vec<u8> {
    let mut m = vec![kind, xid[0], xid[1], xid[2]];
    m.extend(opt6(1, &duid()));
    if server {
        m.extend(opt6(2, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 9]));
        let mut ia = vec![0, 0, 0, 1, 0, 0, 0x0e, 0x10, 0, 0, 0x15, 0x18];
        let mut a = vec![0x20, 0x01, 0x0d, 0xb8];
        a.extend([0u8; 11]);
        a.push(0x42);
        a.extend([0, 0, 0x0e, 0x10, 0, 0, 0x1c, 0x20]);
        ia.extend(opt6(5, &a));
        m.extend(opt6(3, &ia));
    } else {
        m.extend(opt6(6, &[0, 23, 0, 24]));
        m.extend(opt6(39, &[0, 6, b'v', b'6', b'h', b'o', b's', b't', 0]));
        m.extend(opt6(3, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
    }
    m
}

fn run(records: &[Vec<u8>], state: Option<&std::path::Path>) -> (Vec<Value>, Vec<(String, u64)>) {
    let out = tempfile("events");
    let sink = OwnedFd::from(File::create(&out).unwrap());
    let mut w = Offline::new(
        Dhcp::with_timeout(1_000_000_000),
        sink,
        &[InterfaceName {
            ifindex: 2,
            name: "eth0".into(),
        }],
    );
    if let Some(p) = state {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .unwrap();
        w.fds(vec![(FdRole::State, OwnedFd::from(f))]).unwrap();
    }
    for r in records {
        w.record(r);
    }
    w.tick();
    let stats = w.finish();
    let mut text = String::new();
    File::open(&out).unwrap().read_to_string(&mut text).unwrap();
    let _ = std::fs::remove_file(&out);
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let gauges = stats
        .gauges
        .into_iter()
        .map(|g| (g.reason, g.count))
        .collect();
    (events, gauges)
}

fn tempfile(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "palisade-dhcp-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ))
}

#[test]
fn dhcpv6_exchange_is_a_transaction_and_a_device() {
    let state = tempfile("state");
    let _ = std::fs::remove_file(&state);
    let records = [
        record(546, 547, true, MAC, 1_000, &v6_message(1, [1, 2, 3], false)),
        record(
            547,
            546,
            true,
            [2, 0, 0, 0, 0, 9],
            2_000,
            &v6_message(2, [1, 2, 3], true),
        ),
        record(546, 547, true, MAC, 3_000, &v6_message(3, [4, 5, 6], false)),
        record(
            547,
            546,
            true,
            [2, 0, 0, 0, 0, 9],
            4_000,
            &v6_message(7, [4, 5, 6], true),
        ),
    ];
    let (events, gauges) = run(&records, Some(&state));
    let dhcp: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "dhcp")
        .collect();
    assert_eq!(dhcp.len(), 4, "{events:?}");
    assert_eq!(dhcp[0]["dhcp"]["dhcp_type"], "solicit");
    assert_eq!(dhcp[0]["dhcp"]["client_mac"], "00:11:32:01:02:03");
    assert_eq!(dhcp[0]["dhcp"]["hostname"], "v6host");
    assert_eq!(dhcp[0]["palisade"]["dhcp"]["version"], 6);
    assert_eq!(
        dhcp[0]["palisade"]["dhcp"]["params"],
        serde_json::json!([23, 24])
    );
    assert_eq!(
        dhcp[1]["palisade"]["dhcp"]["transaction"]["state"],
        "complete"
    );
    assert_eq!(dhcp[3]["dhcp"]["dhcp_type"], "reply");
    assert_eq!(dhcp[3]["dhcp"]["assigned_ip"], "2001:db8::42");
    assert_eq!(
        dhcp[3]["palisade"]["dhcp"]["transaction"]["messages"],
        serde_json::json!(["request", "reply"])
    );
    let alerts: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "alert")
        .collect();
    assert_eq!(alerts.len(), 1, "one new_device: {alerts:?}");
    assert_eq!(alerts[0]["palisade"]["device"]["mac"], "00:11:32:01:02:03");
    assert!(gauges.contains(&("dhcp_open_transactions".into(), 0)));
    assert!(gauges.contains(&("dhcp_devices".into(), 1)));
    // Persisted at shutdown, read back by the next worker: no new_device again.
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(
        saved.contains("\"duid\":\"00:03:00:01:00:11:32:01:02:03\""),
        "{saved}"
    );
    assert!(saved.contains("\"ipv6\":[\"2001:db8::42\"]"), "{saved}");
    let (events, gauges) = run(&records[..1], Some(&state));
    assert!(
        events.iter().all(|e| e["event_type"] != "alert"),
        "{events:?}"
    );
    assert!(gauges.contains(&("dhcp_devices".into(), 1)));
    // The SOLICIT never answered: written as incomplete at shutdown.
    assert!(
        events
            .iter()
            .any(|e| e["palisade"]["dhcp"]["transaction"]["state"] == "incomplete")
    );
    let _ = std::fs::remove_file(&state);
}

#[test]
fn hostname_change_is_an_alert() {
    let discover = |host: &[u8]| {
        let mut m = vec![1, 1, 6, 0, 0, 0, 0, 7, 0, 0, 0, 0];
        m.extend([0u8; 16]);
        m.extend(MAC);
        m.extend([0u8; 10 + 64 + 128]);
        m.extend([0x63, 0x82, 0x53, 0x63, 53, 1, 1, 12, host.len() as u8]);
        m.extend(host);
        m.extend([55, 3, 1, 3, 6, 255]);
        m
    };
    let records = [
        record(68, 67, false, MAC, 1_000, &discover(b"one")),
        record(68, 67, false, MAC, 2_000, &discover(b"two")),
    ];
    let (events, _) = run(&records, None);
    let changes: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "alert")
        .map(|e| &e["palisade"]["change"])
        .collect();
    assert_eq!(changes, vec!["new_device", "hostname"], "{events:?}");
}

/// `record`, with the kernel's guard flags in the header.
fn flagged(mut rec: Vec<u8>, flags: u8) -> Vec<u8> {
    let mut hdr = RecordHeader::from_bytes(&rec[..RecordHeader::SIZE]).unwrap();
    hdr.flags = flags;
    rec[..RecordHeader::SIZE].copy_from_slice(&hdr.to_bytes());
    rec
}

#[test]
fn guard_flags_become_alerts_one_a_second_per_sender() {
    use palisade_abi::{FLAG_GUARD_DROPPED, FLAG_GUARD_ROGUE};
    let rogue = [2, 0, 0, 0, 0, 0x66];
    let advertise = |ts| {
        flagged(
            record(547, 546, true, rogue, ts, &v6_message(2, [7, 7, 7], true)),
            FLAG_GUARD_ROGUE | FLAG_GUARD_DROPPED,
        )
    };
    // A reply the guard dropped: alerted, logged, but no lease on the client's device.
    let reply = flagged(
        record(
            547,
            546,
            true,
            rogue,
            3_500_000_000,
            &v6_message(7, [8, 8, 8], true),
        ),
        FLAG_GUARD_ROGUE | FLAG_GUARD_DROPPED,
    );
    // The same server allowed (no flags): no alert.
    let allowed = record(
        547,
        546,
        true,
        [2, 0, 0, 0, 0, 9],
        4_000_000_000,
        &v6_message(2, [9, 9, 9], true),
    );
    let (events, _) = run(
        &[
            advertise(1_000),
            advertise(500_000_000),
            advertise(2_000_000_000),
            reply,
            allowed,
        ],
        None,
    );
    let alerts: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == 9_000_030)
        .collect();
    assert_eq!(alerts.len(), 3, "{alerts:?}");
    let g: Vec<&Value> = alerts.iter().map(|a| &a["palisade"]["guard"]).collect();
    assert_eq!(alerts[0]["alert"]["action"], "blocked");
    assert_eq!(g[0]["message"], "dhcpv6");
    assert_eq!(g[0]["dhcp_type"], "advertise");
    assert_eq!(g[0]["server_mac"], "02:00:00:00:00:66");
    assert_eq!(g[0]["dropped"], true);
    assert_eq!(
        (g[0]["count"].as_u64(), g[0]["suppressed"].as_u64()),
        (Some(1), Some(0))
    );
    // The second, 0.5 s later, was left out and is counted in the third.
    assert_eq!(
        (g[1]["count"].as_u64(), g[1]["suppressed"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(g[2]["dhcp_type"], "reply");
    // Every message still has its dhcp event.
    assert_eq!(
        events.iter().filter(|e| e["event_type"] == "dhcp").count(),
        5
    );
    // The dropped REPLY gave its client no lease: no device at all (ADVERTISEs make none).
    assert!(
        !events
            .iter()
            .any(|e| e["palisade"]["change"] == "new_device"),
        "{events:?}"
    );
}

fn arp_record(sender_mac: [u8; 6], sender_ip: [u8; 4], ts: u64) -> Vec<u8> {
    let mut p = vec![0, 1, 8, 0, 6, 4, 0, 2];
    p.extend(sender_mac);
    p.extend(sender_ip);
    p.extend([0xff; 6]);
    p.extend(sender_ip);
    p.resize(46, 0);
    let hdr = RecordHeader {
        magic: RECORD_MAGIC,
        abi_version: palisade_abi::ABI_VERSION,
        kind: palisade_abi::KIND_ARP,
        len: (RecordHeader::SIZE + p.len()) as u32,
        ifindex: 2,
        ts_boot_ns: ts,
        src_mac: sender_mac,
        dst_mac: [0xff; 6],
        payload_len: p.len() as u32,
        orig_payload_len: p.len() as u32,
        ..RecordHeader::default()
    };
    let mut out = hdr.to_bytes().to_vec();
    out.extend(p);
    out
}

#[test]
fn arp_feeds_bindings_and_a_moved_one_is_an_alert() {
    let a = [2, 0, 0, 0, 0, 0xa];
    let b = [2, 0, 0, 0, 0, 0xb];
    let (events, gauges) = run(
        &[
            arp_record(a, [198, 18, 0, 5], 1_000),
            arp_record(a, [198, 18, 0, 5], 2_000),
            arp_record(b, [198, 18, 0, 5], 3_000),
            // A probe (no sender address) binds nothing.
            arp_record(b, [0, 0, 0, 0], 4_000),
        ],
        None,
    );
    let moved: Vec<&Value> = events
        .iter()
        .filter(|e| e["alert"]["signature_id"] == 9_000_023)
        .collect();
    assert_eq!(moved.len(), 1, "{events:?}");
    let m = moved[0];
    assert_eq!(m["palisade"]["change"], "binding");
    assert_eq!(m["palisade"]["ip"], "198.18.0.5");
    assert_eq!(m["palisade"]["previous"], "02:00:00:00:00:0a");
    assert_eq!(m["palisade"]["source"], "arp");
    assert_eq!(m["palisade"]["device"]["mac"], "02:00:00:00:00:0b");
    assert_eq!(m["src_ip"], "198.18.0.5");
    assert!(
        m.get("flow_id").is_none() && m.get("community_id").is_none(),
        "{m}"
    );
    // Both MACs are devices (two new_device alerts), each with the address.
    assert_eq!(
        events
            .iter()
            .filter(|e| e["palisade"]["change"] == "new_device")
            .count(),
        2
    );
    assert!(
        gauges.contains(&("dhcp_bindings".to_owned(), 1)),
        "{gauges:?}"
    );
    assert!(
        gauges.contains(&("dhcp_devices".to_owned(), 2)),
        "{gauges:?}"
    );
}

/// A rogue router that is also a rogue DHCPv6 server sends both from one link-local
/// address: its RA's alert does not hide its ADVERTISE's (one a second per message kind).
#[test]
fn a_rogue_router_and_dhcpv6_server_on_one_address_gets_both_alerts() {
    use palisade_abi::{FLAG_GUARD_DROPPED, FLAG_GUARD_ROGUE, KIND_RA};
    let rogue = [2, 0, 0, 0, 0, 0x66];
    let mut ra_payload = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    ra_payload.extend([1, 1]);
    ra_payload.extend(rogue);
    let mut ra = flagged(
        record(0, 0, true, rogue, 1_000, &ra_payload),
        FLAG_GUARD_ROGUE | FLAG_GUARD_DROPPED,
    );
    let mut hdr = RecordHeader::from_bytes(&ra[..RecordHeader::SIZE]).unwrap();
    hdr.kind = KIND_RA;
    hdr.l4_proto = 58;
    ra[..RecordHeader::SIZE].copy_from_slice(&hdr.to_bytes());
    let advertise = flagged(
        record(
            547,
            546,
            true,
            rogue,
            200_000_000,
            &v6_message(2, [7, 7, 7], true),
        ),
        FLAG_GUARD_ROGUE | FLAG_GUARD_DROPPED,
    );
    let (events, _) = run(&[ra, advertise], None);
    let sids: Vec<u64> = events
        .iter()
        .filter(|e| e["event_type"] == "alert")
        .filter_map(|e| e["alert"]["signature_id"].as_u64())
        .collect();
    assert_eq!(sids, vec![9_000_031, 9_000_030], "{events:?}");
}
