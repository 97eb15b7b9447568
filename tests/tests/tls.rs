//! TLS handshakes with real peers (openssl s_server / s_client) in the lab:
//! the kernel follows each handshake across segments and the worker logs
//! every hello with its fingerprints.
//!
//! * A ClientHello with a 1 KiB key share (ffdhe8192, the size class of a
//!   post-quantum hybrid share) sent in 200-byte segments (the server's route
//!   advertises MSS 200), seen arriving on the sensor: logged whole, with its JA3/JA4 and key share group.
//! * A HelloRetryRequest: the client shares an X25519 key, the server only
//!   takes P-256; both ClientHellos and both ServerHellos are logged, the
//!   second ones numbered (`palisade.tls.hello_index`).
//! * TLS 1.2: the ServerHello event carries the leaf certificate's subject,
//!   issuer, serial, SHA-1 fingerprint and validity, equal to what
//!   `openssl x509` reads from the server's certificate file.
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

use palisade_tests::{
    Daemon, Lab, PEER_IF, PEER_IP, SENSOR_IF, SENSOR_IP, base_config, run, wait_for,
};
use serde_json::Value;

/// Makes a self-signed P-256 certificate for `cn` in the lab directory.
fn certificate(lab: &Lab, cn: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = lab.dir.join(format!("{cn}.key"));
    let cert = lab.dir.join(format!("{cn}.crt"));
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-subj",
            &format!("/CN={cn}/O=Palisade Test"),
            "-days",
            "1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null()));
    (key, cert)
}

/// Starts `openssl s_server` on the sensor at `port` with `extra` options (the
/// client's segments then arrive on the sensor's ingress one by one, as a
/// router sees them: the sender's egress would show them before segmentation
/// offload cuts them).
fn server(lab: &Lab, port: u16, extra: &[&str]) {
    let (key, cert) = certificate(lab, "server.example.test");
    let mut s = lab.sensor("openssl");
    s.args(["s_server", "-quiet", "-accept"])
        .arg(format!("{SENSOR_IP}:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    lab.spawn(s);
    wait_for(Duration::from_secs(5), "openssl s_server", || {
        let out = lab
            .sensor("ss")
            .args(["-Hltn", &format!("sport = :{port}")])
            .output()
            .expect("ss");
        (!out.stdout.is_empty()).then_some(())
    });
}

/// Runs `openssl s_client` from the peer; returns its stdout.
fn client(lab: &Lab, port: u16, args: &[&str]) -> String {
    let out = lab
        .peer("openssl")
        .args(["s_client", "-connect", &format!("{SENSOR_IP}:{port}")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hellos(daemon: &Daemon, sni: &str, side: &str, want: usize) -> Vec<Value> {
    let what = format!("{want} {side} events with SNI {sni}");
    wait_for(Duration::from_secs(8), &what, || {
        let got: Vec<Value> = daemon
            .events()
            .into_iter()
            .filter(|e| {
                e["event_type"] == "tls"
                    && e["tls"]["sni"] == sni
                    && e["palisade"]["tls"]["handshake"] == side
            })
            .collect();
        (got.len() >= want).then_some(got)
    })
}

#[test]
fn hellos_across_small_segments_and_after_a_hello_retry_request() {
    let lab = Lab::new("tls-seg");
    server(&lab, 4433, &[]);
    server(&lab, 4434, &["-groups", "P-256"]);
    // The server advertises MSS 200: the client's hello goes out in 200-byte segments.
    run(lab.sensor("ip").args([
        "route",
        "replace",
        &format!("{PEER_IP}/32"),
        "dev",
        SENSOR_IF,
        "advmss",
        "200",
    ]));
    // No segmentation offload on the client's side: a veth hands GSO packets over
    // whole, and a real NIC puts segments on the wire.
    run(lab
        .peer("ethtool")
        .args(["-K", PEER_IF, "tso", "off", "gso", "off"]));
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();

    // A 1 KiB key share, in segments of 200 bytes.
    let out = client(
        &lab,
        4433,
        &[
            "-tls1_3",
            "-groups",
            "ffdhe8192",
            "-servername",
            "big.example.test",
        ],
    );
    assert!(out.contains("TLSv1.3"), "{out}");
    let ch = &hellos(&daemon, "big.example.test", "client_hello", 1)[0];
    let p = &ch["palisade"]["tls"];
    assert_eq!(p["key_share_groups"], serde_json::json!([260]), "{ch}");
    assert_eq!(ch["tls"]["version"], "TLS 1.3", "{ch}");
    assert!(
        ch["tls"]["ja3"]["hash"]
            .as_str()
            .is_some_and(|h| h.len() == 32),
        "{ch}"
    );
    assert!(
        ch["tls"]["ja4"]
            .as_str()
            .is_some_and(|j| j.starts_with("t13d")),
        "{ch}"
    );
    assert!(p["ja4_r"].is_string(), "{ch}");
    assert!(p["hello_index"].is_null(), "{ch}");
    let sh = &hellos(&daemon, "big.example.test", "server_hello", 1)[0];
    assert_eq!(sh["tls"]["version"], "TLS 1.3", "{sh}");
    assert_eq!(
        sh["palisade"]["tls"]["key_share_groups"],
        serde_json::json!([260]),
        "{sh}"
    );
    assert!(
        sh["tls"]["ja3s"]["string"]
            .as_str()
            .is_some_and(|s| s.starts_with("771,")),
        "{sh}"
    );
    assert_eq!(ch["flow_id"], sh["flow_id"], "{ch}\n{sh}");
    let segments = daemon
        .kernel_counter("tls_capture", "segments")
        .unwrap_or(0);
    assert!(
        segments >= 8,
        "a 1.3 KB hello in 200-byte segments: {segments} segments copied"
    );

    // HelloRetryRequest: X25519 offered first, the server wants P-256.
    let out = client(
        &lab,
        4434,
        &[
            "-tls1_3",
            "-groups",
            "X25519:P-256",
            "-servername",
            "hrr.example.test",
        ],
    );
    assert!(out.contains("TLSv1.3"), "{out}");
    let chs = hellos(&daemon, "hrr.example.test", "client_hello", 2);
    let shs = hellos(&daemon, "hrr.example.test", "server_hello", 2);
    assert_eq!(chs.len(), 2, "{chs:?}");
    assert_eq!(shs.len(), 2, "{shs:?}");
    assert_eq!(
        chs[0]["palisade"]["tls"]["key_share_groups"],
        serde_json::json!([29])
    );
    assert_eq!(
        chs[1]["palisade"]["tls"]["key_share_groups"],
        serde_json::json!([23])
    );
    assert_eq!(chs[1]["palisade"]["tls"]["hello_index"], 2, "{}", chs[1]);
    assert_eq!(
        shs[0]["palisade"]["tls"]["hello_retry_request"], true,
        "{}",
        shs[0]
    );
    assert_eq!(
        shs[0]["palisade"]["tls"]["key_share_groups"],
        serde_json::json!([23])
    );
    assert!(
        shs[1]["palisade"]["tls"]["hello_retry_request"].is_null(),
        "{}",
        shs[1]
    );
    assert_eq!(shs[1]["palisade"]["tls"]["hello_index"], 2, "{}", shs[1]);
    assert_eq!(chs[0]["flow_id"], chs[1]["flow_id"]);
    let tls = &daemon.workers()["tls"];
    assert!(
        tls["drops"].as_array().is_none_or(|d| d.is_empty()),
        "{tls}"
    );
}

/// `openssl x509 -noout OPTION -in cert`, the value after `=`.
fn x509_field(cert: &std::path::Path, option: &str) -> String {
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", option, "-in"])
        .arg(cert));
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    text.split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or(text)
}

#[test]
fn tls12_server_hello_carries_the_certificate() {
    let lab = Lab::new("tls-cert");
    server(&lab, 4435, &[]);
    let cert = lab.dir.join("server.example.test.crt");
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    let out = client(&lab, 4435, &["-tls1_2", "-servername", "cert.example.test"]);
    assert!(out.contains("TLSv1.2"), "{out}");
    let sh = &hellos(&daemon, "cert.example.test", "server_hello", 1)[0];
    let tls = &sh["tls"];
    assert_eq!(tls["version"], "TLS 1.2", "{sh}");
    assert_eq!(
        tls["subject"], "CN=server.example.test, O=Palisade Test",
        "{sh}"
    );
    assert_eq!(tls["issuerdn"], tls["subject"], "self-signed: {sh}");
    let fingerprint = x509_field(&cert, "-fingerprint").to_lowercase();
    assert_eq!(tls["fingerprint"], fingerprint.as_str(), "{sh}");
    let serial = tls["serial"].as_str().unwrap_or_default().replace(':', "");
    assert_eq!(
        serial.trim_start_matches("00"),
        x509_field(&cert, "-serial").trim_start_matches("00"),
        "{sh}"
    );
    let date = regex_free_date(tls["notbefore"].as_str().unwrap_or_default());
    assert!(date, "{sh}");
    assert!(tls["notbefore"].as_str() < tls["notafter"].as_str(), "{sh}");
    // The validity is one day (-days 1): notafter is notbefore + 24 h.
    assert_eq!(
        &tls["notafter"].as_str().unwrap_or_default()[11..],
        &tls["notbefore"].as_str().unwrap_or_default()[11..],
        "{sh}"
    );
}

/// `YYYY-MM-DDTHH:MM:SS`, as Suricata's schema wants it.
fn regex_free_date(s: &str) -> bool {
    s.len() == 19
        && s.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            _ => c.is_ascii_digit(),
        })
}
