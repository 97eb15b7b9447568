//! `palisade replay`: every capture of the reference corpus (`../shared/corpus`) replays
//! offline, as an ordinary process, into events that validate against Suricata's EVE schema
//! and carry the packets' timestamps. The per-protocol comparisons with the corpus's
//! expected values are the conformance tests' replay modes (conformance_*.rs).

// Indexing a serde_json `Value` yields `Null` when absent; it never panics.
#![allow(clippy::indexing_slicing)]

use std::{path::Path, process::Command};

use palisade_tests::{bin, corpus, eve_schema};
use palisade_worker_runtime::eve::Timestamp;
use serde_json::Value;

fn replay(pcap: &Path, args: &[&str]) -> (Vec<String>, String) {
    let out = Command::new(bin("palisade"))
        .arg("replay")
        .args(args)
        .arg(pcap)
        .output()
        .expect("run palisade replay");
    assert!(
        out.status.success(),
        "palisade replay {}: {out:?}",
        pcap.display()
    );
    (
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_corpus_capture_replays_into_valid_eve() {
    let dir = corpus::dir();
    let mut events = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for sub in ["dns", "dhcp", "flow", "tls"] {
        for pcap in corpus::captures(&dir.join("pcaps").join(sub)) {
            let (lines, _) = replay(&pcap, &[]);
            // Every event is stamped with the time of a packet of the file.
            let stamps: std::collections::BTreeSet<String> = corpus::Capture::read(&pcap)
                .frames
                .iter()
                .map(|f| Timestamp(f.ts_ns / 1000 * 1000).to_string())
                .collect();
            let n = eve_schema::validate_lines(lines.iter().map(String::as_str))
                .unwrap_or_else(|e| panic!("{}: {e}", pcap.display()));
            assert_eq!(n, lines.len());
            for l in &lines {
                let e: Value = serde_json::from_str(l).expect("json");
                kinds.insert(e["event_type"].as_str().unwrap_or_default().to_owned());
                let ts = e["timestamp"].as_str().expect("timestamp");
                assert!(
                    stamps.contains(ts),
                    "{}: {ts} is not a packet's time",
                    pcap.display()
                );
            }
            events += n;
        }
    }
    assert!(events > 100, "only {events} events");
    for k in ["dns", "dhcp", "flow", "tls", "quic"] {
        assert!(kinds.contains(k), "no {k} event in {kinds:?}");
    }
}

#[test]
fn proto_selects_workers_and_out_writes_a_file() {
    let pcap = corpus::dir().join("pcaps/dns/sv_dns-udp-a-txt.pcap");
    let (lines, _) = replay(&pcap, &["--proto", "dns"]);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("\"event_type\":\"dns\"")));
    let dir = std::env::temp_dir().join(format!("palisade-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let out = dir.join("eve.json");
    let (stdout, stderr) = replay(
        &pcap,
        &[
            "--proto",
            "flow",
            "--stats",
            "--out",
            out.to_str().expect("utf-8"),
        ],
    );
    assert!(stdout.is_empty());
    assert!(stderr.contains("packets 4"), "{stderr}");
    let written = std::fs::read_to_string(&out).expect("read --out");
    // Two UDP flows, ended at the end of the file.
    assert_eq!(written.lines().count(), 2, "{written}");
    assert!(
        written
            .lines()
            .all(|l| l.contains("\"reason\":\"timeout\""))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreadable_input_fails_cleanly() {
    let out = Command::new(bin("palisade"))
        .args(["replay", "/nonexistent.pcap"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(bin("palisade"))
        .args(["replay", "--proto", "smtp"])
        .arg(corpus::dir().join("pcaps/dns/sv_dns-udp-a-txt.pcap"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// `--config`: the configuration's worker settings apply as the daemon applies them (here an
/// encrypted-DNS resolver name, an alert, and flow start events); an unreadable or invalid
/// configuration is an error, not the defaults.
#[test]
fn config_applies_the_daemons_worker_settings() {
    let pcap = corpus::dir().join("pcaps/dns/sv_dns-udp-a-txt.pcap");
    let kinds = |lines: &[String]| -> Vec<(String, String)> {
        lines
            .iter()
            .map(|l| {
                let e: Value = serde_json::from_str(l).expect("json");
                (
                    e["event_type"].as_str().unwrap_or_default().to_owned(),
                    e["flow"]["reason"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let (plain, _) = replay(&pcap, &[]);
    let plain = kinds(&plain);
    assert!(!plain.iter().any(|(k, _)| k == "alert"), "{plain:?}");
    assert!(!plain.iter().any(|(_, r)| r == "start"), "{plain:?}");

    let dir = std::env::temp_dir().join(format!("palisade-replay-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let config = dir.join("palisade.toml");
    std::fs::write(
        &config,
        "[dns]\nencrypted_dns_resolvers = [\"google.com\"]\n[flow]\nstart_events = true\n",
    )
    .expect("write config");
    let (lines, _) = replay(&pcap, &["--config", config.to_str().expect("utf-8")]);
    eve_schema::validate_lines(lines.iter().map(String::as_str)).expect("valid EVE");
    let with = kinds(&lines);
    assert_eq!(
        with.iter().filter(|(k, _)| k == "alert").count(),
        1,
        "the google.com query is an encrypted-DNS alert: {with:?}"
    );
    assert_eq!(
        with.iter().filter(|(_, r)| r == "start").count(),
        2,
        "a start event per flow: {with:?}"
    );

    std::fs::write(&config, "[flow]\nidle_timeout_s = 0\n").expect("write config");
    let out = Command::new(bin("palisade"))
        .args(["replay", "--config"])
        .arg(&config)
        .arg(&pcap)
        .output()
        .expect("run palisade replay");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("flow.idle_timeout_s"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "no events from an invalid configuration"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// ARP and neighbour discovery: replay builds the kernel's ARP and ND records, so the DHCP
/// worker's device inventory learns from a capture what it learns live (one `new_device`
/// alert per MAC, with the address each packet binds).
#[test]
fn arp_and_neighbour_discovery_feed_the_device_inventory() {
    let arp = {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
        f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 10, 0, 0, 2]);
        f.resize(60, 0);
        f
    };
    // A solicited neighbour advertisement from 2001:db8::7 (02:00:00:00:00:07), with its
    // target link-layer address option.
    let na = {
        let target = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
        let mut msg = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
        msg.extend_from_slice(&target);
        msg.extend_from_slice(&[2, 1, 2, 0, 0, 0, 0, 7]);
        let mut f = vec![
            2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 7, 0x86, 0xdd, 0x60, 0, 0, 0,
        ];
        f.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        f.extend_from_slice(&[58, 255]);
        f.extend_from_slice(&target);
        f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&msg);
        f
    };
    let mut pcap = Vec::new();
    for v in [0xa1b2_c3d4_u32, 0x0004_0002, 0, 0, 65535, 1] {
        pcap.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in [&arp, &na].into_iter().enumerate() {
        for v in [1_700_000_000 + i as u32, 0, f.len() as u32, f.len() as u32] {
            pcap.extend_from_slice(&v.to_le_bytes());
        }
        pcap.extend_from_slice(f);
    }
    let dir = std::env::temp_dir().join(format!("palisade-replay-nd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("neigh.pcap");
    std::fs::write(&file, &pcap).expect("write pcap");
    let (lines, _) = replay(&file, &["--proto", "dhcp"]);
    eve_schema::validate_lines(lines.iter().map(String::as_str)).expect("valid EVE");
    let devices: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|e| e["palisade"]["change"] == "new_device")
        .map(|e| e["palisade"]["device"].clone())
        .collect();
    assert_eq!(devices.len(), 2, "{lines:?}");
    assert_eq!(devices[0]["mac"], "02:00:00:00:00:01");
    assert_eq!(devices[0]["ipv4"], serde_json::json!(["10.0.0.1"]));
    assert_eq!(devices[1]["mac"], "02:00:00:00:00:07");
    assert_eq!(devices[1]["ipv6"], serde_json::json!(["2001:db8::7"]));
    let _ = std::fs::remove_dir_all(&dir);
}
