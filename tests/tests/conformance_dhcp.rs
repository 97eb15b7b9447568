//! DHCP conformance against the reference corpus (`../shared/corpus`).
//!
//! * `parser_matches_every_dhcp_message_offline`: every UDP 67/68 packet of every capture
//!   under `pcaps/dhcp/` goes through the worker's parser and event builder; the `dhcp`
//!   objects are compared with every record of `expected/dhcp.jsonl` (missing, extra, and
//!   each differing field). It proves the parser without the kernel.
//! * `dhcp_messages_replayed_live_match_expected`: the same records from a live replay
//!   into a lab, through the kernel's capture and the DHCP worker.
//!
//! `ja4d` is not compared: JA4D is under FoxIO's licence and not in the product.

// Indexing a serde_json `Value` yields `Null` when absent; it never panics.
#![allow(clippy::indexing_slicing)]

use std::fmt::Write as _;

use palisade_tests::{
    corpus::{self, Capture},
    dhcp_compare,
};
use palisade_worker_dhcp::{event, parse};
use serde_json::Value;

fn rel(path: &std::path::Path) -> String {
    format!(
        "pcaps/dhcp/{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    )
}

#[test]
fn parser_matches_every_dhcp_message_offline() {
    let dir = corpus::dir();
    let expected = corpus::read_jsonl(&dir.join("expected/dhcp.jsonl"));
    let mut report = String::new();
    let (mut checked, mut matched) = (0, 0);
    for path in corpus::captures(&dir.join("pcaps/dhcp")) {
        let rel = rel(&path);
        let cap = Capture::read(&path);
        let mut found = Vec::new();
        for f in &cap.frames {
            let Some(p) = corpus::decode(&f.data) else {
                continue;
            };
            if p.l4_proto != 17
                || ![p.src_port, p.dst_port]
                    .iter()
                    .any(|p| matches!(p, 67 | 68))
            {
                continue;
            }
            match parse::parse(&p.payload) {
                Ok(m) => {
                    let (dhcp, vendor) = event::v4(&m);
                    found.push((
                        f.number,
                        serde_json::to_value(&dhcp).unwrap_or_default(),
                        serde_json::to_value(&vendor).unwrap_or_default(),
                        false,
                    ));
                }
                Err(e) => {
                    let _ = writeln!(report, "{rel} frame {}: rejected ({e:?})", f.number);
                }
            }
        }
        for want in expected.iter().filter(|r| r["pcap"] == rel.as_str()) {
            checked += 1;
            let frame = want["frame"].as_u64().unwrap_or_default() as usize;
            let Some(got) = found.iter_mut().find(|g| g.0 == frame) else {
                let _ = writeln!(report, "{rel} frame {frame}: missing");
                continue;
            };
            got.3 = true;
            let diffs = dhcp_compare::differences(want, &got.1, &got.2);
            if diffs.is_empty() {
                matched += 1;
            }
            for d in diffs {
                let _ = writeln!(report, "{rel} frame {frame}: {d}");
            }
        }
        for extra in found.iter().filter(|g| !g.3) {
            let _ = writeln!(report, "{rel} frame {}: extra message", extra.0);
        }
    }
    println!("offline: {matched}/{checked} DHCP messages match every field");
    assert!(
        checked >= 23,
        "the corpus has 23 DHCP messages, checked {checked}"
    );
    assert!(report.is_empty(), "differences from the corpus:\n{report}");
}

/// Matches `events` (dhcp message events of one capture) to its expected records `want`
/// (same tuple, transaction id and message type, in order) and compares them field by field;
/// every missing record, extra event and differing field goes into `report`. Returns
/// (checked, matched).
fn compare_events(
    rel: &str,
    want: Vec<&Value>,
    events: &[Value],
    report: &mut String,
) -> (usize, usize) {
    let (mut checked, mut matched) = (0, 0);
    let mut used = vec![false; events.len()];
    for r in want {
        checked += 1;
        let frame = r["frame"].as_u64().unwrap_or_default();
        let t = tuple(&r["src_ip"], &r["src_port"], &r["dst_ip"], &r["dst_port"]);
        let kind = r["msg_type"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let Some(i) = (0..events.len()).find(|&i| {
            let e = &events[i];
            !used[i]
                && tuple(&e["src_ip"], &e["src_port"], &e["dest_ip"], &e["dest_port"]) == t
                && e["dhcp"]["id"] == r["xid"]
                && e["dhcp"]["dhcp_type"] == kind.as_str()
        }) else {
            let _ = writeln!(report, "{rel} frame {frame}: missing ({t} {kind})");
            continue;
        };
        used[i] = true;
        let e = &events[i];
        let diffs = dhcp_compare::differences(r, &e["dhcp"], &e["palisade"]["dhcp"]);
        if diffs.is_empty() {
            matched += 1;
        }
        for d in diffs {
            let _ = writeln!(report, "{rel} frame {frame}: {d}");
        }
    }
    for (e, _) in events.iter().zip(&used).filter(|(_, u)| !**u) {
        let _ = writeln!(report, "{rel}: extra dhcp event {}", e["dhcp"]);
    }
    (checked, matched)
}

/// The replay mode: the same comparison over `palisade replay --proto dhcp` (the user-space
/// record builder and the worker's protocol in process), no lab.
#[test]
fn dhcp_messages_replayed_offline_match_expected() {
    let dir = corpus::dir();
    let expected = corpus::read_jsonl(&dir.join("expected/dhcp.jsonl"));
    let mut report = String::new();
    let (mut checked, mut matched) = (0, 0);
    for path in corpus::captures(&dir.join("pcaps/dhcp")) {
        let rel = rel(&path);
        let mut want: Vec<&Value> = expected
            .iter()
            .filter(|r| r["pcap"] == rel.as_str())
            .collect();
        want.sort_by_key(|r| r["frame"].as_u64());
        let out = std::process::Command::new(palisade_tests::bin("palisade"))
            .args(["replay", "--proto", "dhcp"])
            .arg(&path)
            .output()
            .expect("run palisade replay");
        assert!(out.status.success(), "{rel}: {out:?}");
        let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON lines"))
            .filter(|e| e["event_type"] == "dhcp" && e["dhcp"]["dhcp_type"].is_string())
            .collect();
        let (c, m) = compare_events(&rel, want, &events, &mut report);
        checked += c;
        matched += m;
    }
    println!("replay: {matched}/{checked} DHCP messages match every field");
    assert!(
        checked >= 23,
        "the corpus has 23 DHCP messages, checked {checked}"
    );
    assert!(report.is_empty(), "differences from the corpus:\n{report}");
}

/// Replay rate: slow enough to keep order and lose nothing.
const PPS: u32 = 200;

fn tuple(src_ip: &Value, src_port: &Value, dst_ip: &Value, dst_port: &Value) -> String {
    format!("{src_ip}:{src_port}->{dst_ip}:{dst_port}")
}

/// Every record of `expected/dhcp.jsonl`, replayed live: each capture goes out of the
/// peer's veth end (tcpreplay), the kernel program copies the DHCP payloads to the DHCP
/// worker's ring, and the worker's `dhcp` events are matched to the records (same tuple,
/// transaction id and message type, in order) and compared field by field. The report lists
/// every missing record, extra event and differing field; the test fails if there is
/// anything in it.
#[test]
fn dhcp_messages_replayed_live_match_expected() {
    use palisade_tests::{Daemon, Lab, base_config, corpus::EventCursor};
    use std::time::Duration;

    let dir = corpus::dir();
    let expected = corpus::read_jsonl(&dir.join("expected/dhcp.jsonl"));
    let lab = Lab::new("conf-dhcp");
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    let mut cursor = EventCursor::now(&daemon);
    let mut report = String::new();
    let (mut checked, mut matched) = (0, 0);
    for path in corpus::captures(&dir.join("pcaps/dhcp")) {
        let rel = rel(&path);
        let mut want: Vec<&Value> = expected
            .iter()
            .filter(|r| r["pcap"] == rel.as_str())
            .collect();
        want.sort_by_key(|r| r["frame"].as_u64());
        Capture::read(&path).replay(&lab, PPS);
        // Messages, not the `incomplete` events of transactions that expire later.
        let events = cursor.take(
            &daemon,
            want.len(),
            Duration::from_millis(300),
            Duration::from_millis(1500),
            Duration::from_secs(10),
            |e| e["event_type"] == "dhcp" && e["dhcp"]["dhcp_type"].is_string(),
        );
        let (c, m) = compare_events(&rel, want, &events, &mut report);
        checked += c;
        matched += m;
    }
    println!("live: {matched}/{checked} DHCP messages match every field");
    assert!(
        checked >= 23,
        "the corpus has 23 DHCP messages, checked {checked}"
    );
    assert!(report.is_empty(), "differences from the corpus:\n{report}");
}
