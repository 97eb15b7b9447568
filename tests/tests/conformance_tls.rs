//! TLS conformance against the reference corpus (`../shared/corpus`).
//!
//! `parser_matches_every_tcp_client_hello_offline`: every TCP stream of every
//! capture under `pcaps/tls/` is reassembled here (in frame order, by
//! sequence number) and fed to the TLS worker's parser and event builder; the
//! resulting `tls` objects are compared with every TCP record of
//! `expected/tls.jsonl` (missing, extra, and each differing field). It proves
//! the parser and the fingerprints; the live test below proves the capture.

// Indexing a serde_json `Value` yields `Null` when absent; it never panics.
#![allow(clippy::indexing_slicing)]

use std::{collections::HashMap, fmt::Write as _};

use palisade_tests::{
    corpus::{self, Capture, Direction, TcpFollower},
    tls_compare,
};
use palisade_worker_tls::{
    event,
    fingerprint::Transport,
    parse::{HandshakeStream, Message, parse_message},
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
    let mut follower = TcpFollower::default();
    let mut streams: HashMap<Direction, HandshakeStream> = HashMap::new();
    let mut out = Vec::new();
    for f in &cap.frames {
        let Some(p) = corpus::decode(&f.data) else {
            continue;
        };
        if p.l4_proto != 6 {
            continue;
        }
        let dir = (p.src_ip, p.src_port, p.dst_ip, p.dst_port);
        if p.tcp_flags & 0x02 != 0 {
            streams.remove(&dir);
        }
        let buf = follower.push(&p);
        let bytes = std::mem::take(buf);
        let stream = streams.entry(dir).or_default();
        for raw in stream.push(&bytes) {
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
