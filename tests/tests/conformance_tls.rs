//! TLS conformance against the reference corpus (`../shared/corpus`).
//!
//! * `parser_matches_every_tcp_client_hello_offline`: every TCP stream of every
//!   capture under `pcaps/tls/` is put in order by the worker's own reassembler
//!   (offsets from the SYN) and fed to its parser and event builder; the
//!   resulting `tls` objects are compared with every TCP record of
//!   `expected/tls.jsonl` (missing, extra, and each differing field). It proves
//!   the parser and the fingerprints without the kernel.
//! * `client_hellos_replayed_live_match_expected`: every record (TCP and QUIC)
//!   from a live replay into a lab, through the kernel's capture and the worker.
//!
//! * `quic_client_hellos_match_every_record_offline`: every UDP datagram of every
//!   capture goes through the worker's QUIC tracker (Initial keys, header
//!   protection, AEAD, CRYPTO frames across packets); the `quic` events'
//!   ClientHellos are compared with every QUIC record of `expected/tls.jsonl`.
//!   The live test above checks the QUIC records too (the kernel copies the
//!   Initial datagrams).

// Indexing a serde_json `Value` yields `Null` when absent; it never panics.
#![allow(clippy::indexing_slicing)]

use std::{collections::HashMap, fmt::Write as _};

use palisade_tests::{
    corpus::{self, Capture, Direction},
    tls_compare,
};
use palisade_worker_tls::{
    event,
    fingerprint::Transport,
    parse::{HandshakeStream, Message, parse_message},
    reassembly::Reassembler,
};
use serde_json::Value;

/// One ClientHello found offline: where, and its event objects.
struct Found {
    frame: usize,
    src: (String, u16),
    tls: Value,
    vendor: Value,
    used: bool,
}

fn client_hellos(cap: &Capture) -> Vec<Found> {
    // Per direction: the sequence number of stream offset 0 (the SYN's plus one, or the
    // first data segment's), the worker's own reassembler and handshake stream.
    let mut streams: HashMap<Direction, (u32, Reassembler, HandshakeStream)> = HashMap::new();
    let mut out = Vec::new();
    for f in &cap.frames {
        let Some(p) = corpus::decode(&f.data) else {
            continue;
        };
        if p.l4_proto != 6 {
            continue;
        }
        let dir = (p.src_ip, p.src_port, p.dst_ip, p.dst_port);
        let syn = p.tcp_flags & 0x02 != 0;
        let data_seq = p.tcp_seq.wrapping_add(u32::from(syn));
        if syn
            && streams
                .get(&dir)
                .is_some_and(|(base, ..)| *base != data_seq)
        {
            streams.remove(&dir); // a new connection on the tuple
        }
        let (base, bytes, stream) = streams
            .entry(dir)
            .or_insert_with(|| (data_seq, Reassembler::new(), HandshakeStream::new()));
        let off = data_seq.wrapping_sub(*base);
        if off > 1 << 30 {
            continue; // before the stream's start
        }
        let mut in_order = Vec::new();
        bytes.push(u64::from(off), &p.payload, &mut in_order);
        for raw in stream.push(&in_order) {
            if let Ok(Message::ClientHello(h)) = parse_message(&raw) {
                let (tls, vendor) = event::client(&h, Transport::Tcp);
                out.push(Found {
                    frame: f.number,
                    src: (p.src_ip.to_string(), p.src_port),
                    tls: serde_json::to_value(&tls).unwrap_or_default(),
                    vendor: serde_json::to_value(&vendor).unwrap_or_default(),
                    used: false,
                });
            }
        }
    }
    out
}

#[test]
fn parser_matches_every_tcp_client_hello_offline() {
    let dir = corpus::dir();
    let expected = corpus::read_jsonl(&dir.join("expected/tls.jsonl"));
    let mut report = String::new();
    let (mut checked, mut matched) = (0, 0);
    for path in corpus::captures(&dir.join("pcaps/tls")) {
        let rel = format!(
            "pcaps/tls/{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        );
        let mut found = client_hellos(&Capture::read(&path));
        for want in expected
            .iter()
            .filter(|r| r["pcap"] == rel.as_str() && r["transport"] == "tcp")
        {
            checked += 1;
            let src = (
                want["src_ip"].as_str().unwrap_or_default().to_owned(),
                want["src_port"].as_u64().unwrap_or_default() as u16,
            );
            let frame = want["frame"].as_u64().unwrap_or_default() as usize;
            let Some(got) = found
                .iter_mut()
                .find(|g| !g.used && g.src == src && g.frame == frame)
            else {
                let _ = writeln!(report, "{rel} frame {frame}: missing");
                continue;
            };
            got.used = true;
            let diffs = tls_compare::differences(want, &got.tls, &got.vendor);
            if diffs.is_empty() {
                matched += 1;
            }
            for d in diffs {
                let _ = writeln!(report, "{rel} frame {frame}: {d}");
            }
        }
        for extra in found.iter().filter(|g| !g.used) {
            let _ = writeln!(report, "{rel} frame {}: extra ClientHello", extra.frame);
        }
    }
    println!("offline: {matched}/{checked} TCP ClientHellos match every field");
    assert!(
        checked >= 100,
        "the corpus has 100 TCP ClientHellos, checked {checked}"
    );
    assert!(report.is_empty(), "differences from the corpus:\n{report}");
}

/// The `quic` event's hello as a `tls` object and its `palisade` part: what
/// [`tls_compare::differences`] reads.
fn quic_view(quic: &Value, vendor: &Value) -> (Value, Value) {
    let mut tls = vendor.clone();
    if let (Some(t), Some(q)) = (tls.as_object_mut(), quic.as_object()) {
        for (k, v) in q {
            t.insert(k.clone(), v.clone());
        }
    }
    (tls, vendor.clone())
}

#[test]
fn quic_client_hellos_match_every_record_offline() {
    use palisade_abi::RecordHeader;
    use palisade_worker_tls::{conn::Hello, quic::Tracker};

    let dir = corpus::dir();
    let expected = corpus::read_jsonl(&dir.join("expected/tls.jsonl"));
    let mut report = String::new();
    let (mut checked, mut matched) = (0, 0);
    for path in corpus::captures(&dir.join("pcaps/tls")) {
        let rel = format!(
            "pcaps/tls/{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        );
        let mut found = Vec::new();
        let mut tracker = Tracker::new();
        for f in &Capture::read(&path).frames {
            let Some(p) = corpus::decode(&f.data) else {
                continue;
            };
            if p.l4_proto != 17 || p.payload.len() < 1200 {
                continue;
            }
            let mut hdr = RecordHeader {
                l4_proto: 17,
                ts_boot_ns: f.ts_ns,
                src_port: p.src_port,
                dst_port: p.dst_port,
                ..RecordHeader::default()
            };
            for (ip, out) in [(p.src_ip, &mut hdr.src_addr), (p.dst_ip, &mut hdr.dst_addr)] {
                match ip {
                    std::net::IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
                    std::net::IpAddr::V6(a) => out.copy_from_slice(&a.octets()),
                }
            }
            hdr.ip_version = if p.src_ip.is_ipv4() { 4 } else { 6 };
            for q in tracker.datagram(&hdr, &p.payload).hellos {
                if !matches!(q.ready.hello, Hello::Client(_)) {
                    continue;
                }
                let (body, vendor) =
                    event::quic(&q.ready.hello, q.version, [&q.dcid, &q.scid], None);
                let (tls, vendor) = quic_view(
                    &serde_json::to_value(&body).unwrap_or_default(),
                    &serde_json::to_value(&vendor).unwrap_or_default(),
                );
                found.push(Found {
                    frame: f.number,
                    src: (p.src_ip.to_string(), p.src_port),
                    tls,
                    vendor,
                    used: false,
                });
            }
        }
        for want in expected
            .iter()
            .filter(|r| r["pcap"] == rel.as_str() && r["transport"] == "quic")
        {
            checked += 1;
            let src = (
                want["src_ip"].as_str().unwrap_or_default().to_owned(),
                want["src_port"].as_u64().unwrap_or_default() as u16,
            );
            let frame = want["frame"].as_u64().unwrap_or_default() as usize;
            let Some(got) = found
                .iter_mut()
                .find(|g| !g.used && g.src == src && g.frame == frame)
            else {
                let _ = writeln!(report, "{rel} frame {frame}: missing");
                continue;
            };
            got.used = true;
            let diffs = tls_compare::differences(want, &got.tls, &got.vendor);
            if diffs.is_empty() {
                matched += 1;
            }
            for d in diffs {
                let _ = writeln!(report, "{rel} frame {frame}: {d}");
            }
        }
        for extra in found.iter().filter(|g| !g.used) {
            let _ = writeln!(
                report,
                "{rel} frame {}: extra QUIC ClientHello",
                extra.frame
            );
        }
    }
    println!("offline: {matched}/{checked} QUIC ClientHellos match every field");
    assert!(
        checked >= 21,
        "the corpus has 21 QUIC ClientHellos, checked {checked}"
    );
    assert!(report.is_empty(), "differences from the corpus:\n{report}");
}

/// Counts of one comparison.
#[derive(Default)]
struct Tally {
    checked: usize,
    matched: usize,
    tcp: usize,
    quic: usize,
}

/// Matches `events` (client_hello `tls` and `quic` events of one capture) to its expected
/// records `want` (same tuple and transport, in order) and compares them field by field;
/// every missing record, extra event and differing field goes into `report`.
fn compare_events(
    rel: &str,
    want: Vec<&Value>,
    events: &[Value],
    report: &mut String,
    tally: &mut Tally,
) {
    let mut used = vec![false; events.len()];
    for r in want {
        tally.checked += 1;
        let frame = r["frame"].as_u64().unwrap_or_default();
        let t = expected_tuple(r);
        let kind = if r["transport"] == "quic" {
            "quic"
        } else {
            "tls"
        };
        let Some(i) = (0..events.len())
            .find(|&i| !used[i] && tuple(&events[i]) == t && events[i]["event_type"] == kind)
        else {
            let _ = writeln!(report, "{rel} frame {frame}: missing ({t:?})");
            continue;
        };
        used[i] = true;
        let e = &events[i];
        let diffs = if kind == "quic" {
            let (tls, vendor) = quic_view(&e["quic"], &e["palisade"]["quic"]);
            tls_compare::differences(r, &tls, &vendor)
        } else {
            tls_compare::differences(r, &e["tls"], &e["palisade"]["tls"])
        };
        if diffs.is_empty() {
            tally.matched += 1;
            if kind == "quic" {
                tally.quic += 1;
            } else {
                tally.tcp += 1;
            }
        }
        for d in diffs {
            let _ = writeln!(report, "{rel} frame {frame}: {d}");
        }
    }
    for (e, _) in events.iter().zip(&used).filter(|(_, u)| !**u) {
        let _ = writeln!(
            report,
            "{rel}: extra {} client_hello {:?}",
            e["event_type"],
            tuple(e)
        );
    }
}

impl Tally {
    fn assert_complete(&self, mode: &str, report: &str) {
        println!(
            "{mode}: {}/{} ClientHellos match every field ({} over TCP, {} in QUIC)",
            self.matched, self.checked, self.tcp, self.quic
        );
        assert!(
            self.checked >= 124,
            "the corpus has 103 TCP and 21 QUIC ClientHellos, checked {}",
            self.checked
        );
        assert!(report.is_empty(), "differences from the corpus:\n{report}");
    }
}

fn is_client_hello(e: &Value) -> bool {
    (e["event_type"] == "tls"
        && e["proto"] == "TCP"
        && e["palisade"]["tls"]["handshake"] == "client_hello")
        || (e["event_type"] == "quic" && e["palisade"]["quic"]["handshake"] == "client_hello")
}

/// The replay mode: the same comparison over `palisade replay --proto tls` (the user-space
/// twin of the kernel's handshake following and QUIC Initial copy, and the worker's
/// protocol in process), no lab. Each capture is replayed on its own, as the live test
/// sends each one after the previous one's handshakes ended.
#[test]
fn client_hellos_replayed_offline_match_expected() {
    let dir = corpus::dir();
    let expected = corpus::read_jsonl(&dir.join("expected/tls.jsonl"));
    let mut report = String::new();
    let mut tally = Tally::default();
    for path in corpus::captures(&dir.join("pcaps/tls")) {
        let rel = format!(
            "pcaps/tls/{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        );
        let mut want: Vec<&Value> = expected
            .iter()
            .filter(|r| r["pcap"] == rel.as_str())
            .collect();
        want.sort_by_key(|r| r["frame"].as_u64());
        let out = std::process::Command::new(palisade_tests::bin("palisade"))
            .args(["replay", "--proto", "tls"])
            .arg(&path)
            .output()
            .expect("run palisade replay");
        assert!(out.status.success(), "{rel}: {out:?}");
        let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON lines"))
            .filter(is_client_hello)
            .collect();
        compare_events(&rel, want, &events, &mut report, &mut tally);
    }
    tally.assert_complete("replay", &report);
}

/// Replay rate: slow enough to keep order and lose nothing.
const PPS: u32 = 2000;

/// A `tls` event's tuple, as the corpus writes it.
fn tuple(e: &Value) -> (String, u64, String, u64) {
    (
        e["src_ip"].as_str().unwrap_or_default().to_owned(),
        e["src_port"].as_u64().unwrap_or_default(),
        e["dest_ip"].as_str().unwrap_or_default().to_owned(),
        e["dest_port"].as_u64().unwrap_or_default(),
    )
}

fn expected_tuple(r: &Value) -> (String, u64, String, u64) {
    (
        r["src_ip"].as_str().unwrap_or_default().to_owned(),
        r["src_port"].as_u64().unwrap_or_default(),
        r["dst_ip"].as_str().unwrap_or_default().to_owned(),
        r["dst_port"].as_u64().unwrap_or_default(),
    )
}

/// Every record (TCP and QUIC) of `expected/tls.jsonl`, replayed live: each capture goes
/// out of the peer's veth end (tcpreplay), the daemon's kernel programs
/// follow the handshakes, and the TLS worker's `client_hello` events are
/// matched to the records (same tuple, in order) and compared field by
/// field. The report lists every missing record, extra event and differing
/// field; the test fails if there is anything in it.
#[test]
fn client_hellos_replayed_live_match_expected() {
    use palisade_tests::{Daemon, Lab, PEER_IF, SENSOR_IF, base_config, corpus::EventCursor};
    use std::time::Duration;

    let dir = corpus::dir();
    let expected = corpus::read_jsonl(&dir.join("expected/tls.jsonl"));
    let lab = Lab::new("conf-tls");
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    // Some captures were taken on the sender, before segmentation offload cut
    // them (sv_tls13-googlevideo: a 1918-byte segment): a jumbo MTU lets
    // them through the veth as they are.
    for (cmd, ifname) in [(lab.peer("ip"), PEER_IF), (lab.sensor("ip"), SENSOR_IF)] {
        let mut cmd = cmd;
        let st = cmd
            .args(["link", "set", "dev", ifname, "mtu", "9000"])
            .status();
        assert!(st.is_ok_and(|s| s.success()), "setting the MTU of {ifname}");
    }
    let mut cursor = EventCursor::now(&daemon);
    let mut report = String::new();
    let mut tally = Tally::default();
    let mut seen = std::collections::HashSet::new();
    for path in corpus::captures(&dir.join("pcaps/tls")) {
        let rel = format!(
            "pcaps/tls/{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        );
        let mut want: Vec<&Value> = expected
            .iter()
            .filter(|r| r["pcap"] == rel.as_str())
            .collect();
        want.sort_by_key(|r| r["frame"].as_u64());
        let cap = Capture::read(&path);
        // Two captures of the corpus share a connection (ja4_tls-non-ascii-alpn is
        // ja4_tls-sni-many's first ClientHello with its ALPN edited: same tuple, same
        // sequence numbers, no SYN). Replayed back to back, the second one's hello is a
        // retransmission with other bytes to the kernel, which still follows the first.
        // Waiting out the kernel's time bound makes it a new handshake, as a real
        // reused tuple would be after its handshake ended.
        let tuples: Vec<_> = want.iter().map(|r| expected_tuple(r)).collect();
        if tuples.iter().any(|t| seen.contains(t)) {
            std::thread::sleep(
                Duration::from_nanos(palisade_abi::TLS_MAX_NS) + Duration::from_millis(500),
            );
        }
        seen.extend(tuples);
        cap.replay(&lab, PPS);
        let events = cursor.take(
            &daemon,
            want.len(),
            Duration::from_millis(300),
            Duration::from_millis(1500),
            Duration::from_secs(10),
            is_client_hello,
        );
        compare_events(&rel, want, &events, &mut report, &mut tally);
    }
    tally.assert_complete("live", &report);
}
