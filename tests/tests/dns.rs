//! DNS monitoring end to end: correlation, round-trip time, unanswered
//! queries, DNS over TCP.

#![expect(
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::{net::UdpSocket, time::Duration};

use palisade_tests::{Daemon, Lab, PEER_IP, SENSOR_IP, Side, base_config, dns_query, wait_for};
use serde_json::Value;

/// A counter of the DNS worker's status entry (`drops` or `notices`), by reason.
fn dns_counter(daemon: &Daemon, family: &str, reason: &str) -> u64 {
    daemon.workers()["dns"]["stats"][family]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["reason"] == reason))
        .and_then(|d| d["count"].as_u64())
        .unwrap_or(0)
}

/// More queries than the correlation table holds (16,384), none answered: every query is
/// still logged, the ones without room only lose their RTT/`unanswered` record, which is
/// a notice, not a drop; a stop counts the queries still pending.
#[test]
fn a_full_correlation_table_loses_no_event_and_a_stop_counts_what_was_pending() {
    const QUERIES: u64 = 17_000;
    const TABLE: u64 = 16_384;
    let lab = Lab::new("dnsfull");
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    let before = daemon.workers()["dns"]["stats"]["events"]
        .as_u64()
        .unwrap_or(0);
    // Nothing listens on the peer's port 53: no query is ever answered.
    lab.in_netns(Side::Sensor, || {
        let s = UdpSocket::bind((SENSOR_IP, 0)).expect("bind");
        for i in 0..QUERIES {
            s.send_to(&dns_query(i as u16, "full.example.test"), (PEER_IP, 53))
                .expect("send");
            if i % 500 == 499 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    wait_for(Duration::from_secs(4), "every query logged", || {
        let events = daemon.workers()["dns"]["stats"]["events"]
            .as_u64()
            .unwrap_or(0);
        (events >= before + QUERIES).then_some(())
    });
    assert_eq!(
        daemon.kernel_counter("dns", "ring_full"),
        Some(0),
        "the ring kept every record"
    );
    assert_eq!(dns_counter(&daemon, "drops", "dns_correlation_full"), 0);
    assert_eq!(
        dns_counter(&daemon, "notices", "dns_correlation_full"),
        QUERIES - TABLE
    );
    // A graceful stop: what is still pending is counted (or was already reported).
    let out = daemon.ctl(&["restart", "dns"]);
    assert!(out.status.success(), "{out:?}");
    let pending = wait_for(
        Duration::from_secs(5),
        "the stopped worker's counters",
        || Some(dns_counter(&daemon, "notices", "dns_pending_at_shutdown")).filter(|n| *n > 0),
    );
    let unanswered = daemon
        .events()
        .iter()
        .filter(|e: &&Value| e["dns"]["type"] == "unanswered")
        .count() as u64;
    assert_eq!(
        pending + unanswered,
        TABLE,
        "{pending} pending, {unanswered} reported"
    );
}

#[test]
fn answers_carry_rtt_and_unanswered_queries_are_reported() {
    let lab = Lab::new("dnscorr");
    lab.start_dnsmasq();
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();

    lab.dig(&["+short", "rtt.example.test", "A"]);
    let answer = daemon.wait_event("answer with rtt", Duration::from_secs(5), |e| {
        e["event_type"] == "dns"
            && e["dns"]["type"] == "answer"
            && e["dns"]["rrname"] == "rtt.example.test"
    });
    let rtt = answer["palisade"]["dns"]["rtt_ms"]
        .as_f64()
        .expect("rtt_ms on the answer");
    assert!(rtt > 0.0 && rtt < 1000.0, "{answer}");
    let query = daemon.wait_event("the query", Duration::from_secs(1), |e| {
        e["dns"]["type"] == "query" && e["dns"]["rrname"] == "rtt.example.test"
    });
    assert_eq!(
        answer["palisade"]["dns"]["query_timestamp"],
        query["timestamp"]
    );
    assert_eq!(
        answer["palisade"]["dns"]["client_mac"],
        query["ether"]["src_mac"]
    );

    // A resolver address nobody answers for: a static neighbour entry lets
    // the query leave the sensor (and cross its egress hook); the peer
    // drops the frame (not its MAC).
    palisade_tests::run(lab.sensor("ip").args([
        "neigh",
        "add",
        "198.18.0.3",
        "lladdr",
        "02:00:00:00:00:03",
        "dev",
        palisade_tests::SENSOR_IF,
    ]));
    let out = lab
        .sensor("dig")
        .args([
            "@198.18.0.3",
            "+tries=1",
            "+time=1",
            "lost.example.test",
            "A",
        ])
        .output()
        .expect("dig");
    assert!(
        !out.status.success() || String::from_utf8_lossy(&out.stdout).contains("timed out"),
        "nobody answers 198.18.0.3"
    );
    let unanswered =
        daemon.wait_event("the unanswered-query event", Duration::from_secs(10), |e| {
            e["event_type"] == "dns"
                && e["dns"]["type"] == "unanswered"
                && e["dns"]["rrname"] == "lost.example.test"
        });
    assert_eq!(unanswered["palisade"]["dns"]["timeout_ms"], 5000);
    assert_eq!(unanswered["dest_ip"], "198.18.0.3");
    assert!(unanswered["palisade"]["dns"]["rtt_ms"].is_null());
    // No answered query is ever reported as unanswered.
    assert!(
        !daemon
            .events()
            .iter()
            .any(|e| e["dns"]["type"] == "unanswered" && e["dns"]["rrname"] == "rtt.example.test")
    );
}

#[test]
fn dns_over_tcp_is_reassembled() {
    let lab = Lab::new("dnstcp");
    lab.start_dnsmasq();
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    // Several queries over one TCP connection (dig +keepopen).
    let out = lab.dig(&[
        "+tcp",
        "+keepopen",
        "+short",
        "one.example.test",
        "A",
        "two.example.test",
        "AAAA",
        "three.example.test",
        "A",
    ]);
    assert!(
        out.contains("198.18.0.99") && out.contains("2001:db8::99"),
        "{out}"
    );
    for (name, ty) in [
        ("one.example.test", "A"),
        ("two.example.test", "AAAA"),
        ("three.example.test", "A"),
    ] {
        let a = daemon.wait_event(
            &format!("TCP answer for {name}"),
            Duration::from_secs(5),
            |e| e["proto"] == "TCP" && e["dns"]["type"] == "answer" && e["dns"]["rrname"] == name,
        );
        assert_eq!(a["dns"]["rrtype"], ty);
        assert!(
            a["palisade"]["dns"]["rtt_ms"].is_f64(),
            "TCP answers are correlated too: {a}"
        );
    }
}

#[test]
fn event_logs_are_reopened_after_rotation_without_losing_events() {
    let lab = Lab::new("reopen");
    lab.start_dnsmasq();
    let daemon = Daemon::start_with(&lab, &base_config(&lab, ""), &[], false);
    daemon.wait_healthy();
    let log = lab.dir.join("log").join("dns.json");
    let rotated = lab.dir.join("log").join("dns.json.1");
    let contains = |path: &std::path::Path, name: &str| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .contains(&format!("\"rrname\":\"{name}\""))
    };
    lab.dig(&["+short", "before.example.test", "A"]);
    palisade_tests::wait_for(Duration::from_secs(5), "first event in dns.json", || {
        contains(&log, "before.example.test").then_some(())
    });

    // logrotate's create mode: rename, then tell the daemon.
    std::fs::rename(&log, &rotated).expect("rotate");
    let out = daemon.ctl(&["reopen-logs"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("dns"),
        "{out:?}"
    );
    lab.dig(&["+short", "after.example.test", "A"]);
    palisade_tests::wait_for(Duration::from_secs(5), "event in the new dns.json", || {
        contains(&log, "after.example.test").then_some(())
    });
    assert!(contains(&rotated, "before.example.test"));
    assert!(
        !contains(&rotated, "after.example.test"),
        "new events go to the new file"
    );

    // SIGHUP does the same.
    std::fs::rename(&log, &rotated).expect("rotate again");
    // SAFETY: kill(2) on our daemon.
    unsafe { libc::kill(daemon.pid() as i32, libc::SIGHUP) };
    palisade_tests::wait_for(
        Duration::from_secs(5),
        "dns.json recreated after SIGHUP",
        || log.exists().then_some(()),
    );
    lab.dig(&["+short", "hup.example.test", "A"]);
    palisade_tests::wait_for(Duration::from_secs(5), "event after SIGHUP", || {
        contains(&log, "hup.example.test").then_some(())
    });
    daemon.wait_healthy();
}
