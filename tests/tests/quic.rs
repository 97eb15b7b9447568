//! QUIC handshakes with real peers (ngtcp2's `gtlsserver` / `gtlsclient`,
//! GnuTLS) in the lab: the kernel copies the Initial datagrams, the TLS
//! worker decrypts them and logs the ClientHello and the ServerHello as EVE
//! `quic` events. Every value is checked against an independent decoder:
//! tshark reading a capture of the same traffic taken on the peer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use palisade_tests::{Daemon, Lab, PEER_IF, SENSOR_IP, base_config, run, wait_for};
use serde_json::Value;

/// tshark's reading of the hellos in `pcap`: one map of fields per hello.
fn tshark_hellos(pcap: &std::path::Path) -> Vec<std::collections::HashMap<&'static str, String>> {
    const FIELDS: [&str; 7] = [
        "tls.handshake.type",
        "tls.handshake.ja3",
        "tls.handshake.ja3_full",
        "tls.handshake.ja3s",
        "tls.handshake.extensions_server_name",
        "quic.dcid",
        "quic.scid",
    ];
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args([
        "-Y",
        "tls.handshake.type == 1 || tls.handshake.type == 2",
        "-T",
        "fields",
        "-E",
        "occurrence=f",
    ]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = run(cmd.stderr(Stdio::null()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            FIELDS
                .iter()
                .copied()
                .zip(l.split('\t').map(str::to_owned))
                .collect()
        })
        .collect()
}

#[test]
fn quic_client_and_server_hellos_match_tshark() {
    let lab = Lab::new("quic");
    let key = lab.dir.join("quic.key");
    let cert = lab.dir.join("quic.crt");
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=quic.example.test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null()));
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    let mut server = lab.sensor("gtlsserver");
    server
        .args(["-q", SENSOR_IP, "4433"])
        .arg(&key)
        .arg(&cert)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    lab.spawn(server);
    wait_for(Duration::from_secs(5), "gtlsserver listening", || {
        let out = lab
            .sensor("ss")
            .args(["-Hlun", "sport = :4433"])
            .output()
            .ok()?;
        (!out.stdout.is_empty()).then_some(())
    });
    let pcap = lab.dir.join("quic.pcapng");
    let mut capture = lab.peer("dumpcap");
    capture
        .args([
            "-q",
            "-i",
            PEER_IF,
            "-f",
            "udp port 4433",
            "-a",
            "duration:8",
            "-w",
        ])
        .arg(&pcap)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut capture = capture.spawn().expect("dumpcap");
    wait_for(Duration::from_secs(5), "dumpcap started", || {
        pcap.exists().then_some(())
    });
    let st = lab
        .peer("gtlsclient")
        .args(["-q", "--exit-on-all-streams-close", "--timeout=3s"])
        .args([
            "--dcid",
            "0123456789abcdef0123",
            "--scid",
            "c1c2c3c4c5c6c7c8",
        ])
        .args([SENSOR_IP, "4433", "https://quic.example.test/"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("gtlsclient");
    assert!(st.success(), "gtlsclient failed: {st}");
    let events = wait_for(
        Duration::from_secs(8),
        "quic client and server hellos",
        || {
            let got: Vec<Value> = daemon
                .events()
                .into_iter()
                .filter(|e| e["event_type"] == "quic")
                .collect();
            (got.len() >= 2).then_some(got)
        },
    );
    let _ = capture.wait();
    let theirs = tshark_hellos(&pcap);
    let client = theirs
        .iter()
        .find(|h| h["tls.handshake.type"] == "1")
        .expect("tshark client hello");
    let server = theirs
        .iter()
        .find(|h| h["tls.handshake.type"] == "2")
        .expect("tshark server hello");
    let ours_client = events
        .iter()
        .find(|e| e["palisade"]["quic"]["handshake"] == "client_hello")
        .expect("our client hello");
    let ours_server = events
        .iter()
        .find(|e| e["palisade"]["quic"]["handshake"] == "server_hello")
        .expect("our server hello");

    let q = &ours_client["quic"];
    assert_eq!(q["version"], "1");
    assert_eq!(q["ja3"]["hash"], client["tls.handshake.ja3"].as_str());
    assert_eq!(
        q["ja3"]["string"],
        client["tls.handshake.ja3_full"].as_str()
    );
    assert_eq!(
        q["sni"],
        client["tls.handshake.extensions_server_name"].as_str()
    );
    assert!(q["ja4"].as_str().unwrap().starts_with("q13"), "{q}");
    let v = &ours_client["palisade"]["quic"];
    assert_eq!(v["dcid"], "0123456789abcdef0123");
    assert_eq!(v["dcid"], client["quic.dcid"].as_str());
    assert_eq!(v["scid"], "c1c2c3c4c5c6c7c8");
    assert_eq!(v["tls_version"], "TLS 1.3");
    assert_eq!(ours_client["proto"], "UDP");
    assert_eq!(ours_client["dest_port"], 4433);

    let s = &ours_server["quic"];
    assert_eq!(s["ja3s"]["hash"], server["tls.handshake.ja3s"].as_str());
    assert_eq!(
        s["sni"], q["sni"],
        "the server's event names the connection's SNI"
    );
    assert_eq!(
        ours_server["palisade"]["quic"]["server_scid"],
        server["quic.scid"].as_str()
    );
    assert_eq!(ours_server["community_id"], ours_client["community_id"]);
    assert_eq!(ours_server["flow_id"], ours_client["flow_id"]);

    // Nothing was lost or undecryptable on the way.
    let tls = &daemon.workers()["tls"];
    assert!(
        tls["drops"].as_array().is_none_or(|d| d.is_empty()),
        "{tls}"
    );
    assert!(!tls["notices"].to_string().contains("quic_"), "{tls}");
}
