//! Events as a SIEM ingests them: every event type Palisade writes validates against
//! Suricata's own EVE schema (`../shared/schemas`, see `palisade_tests::eve_schema`; every
//! other integration test's daemon is validated the same way when it stops), and every dns,
//! tls, dhcp and alert event carries the `flow_id` and `community_id` of its flow, so it
//! joins the flow's record as Suricata's do.
//!
//! Real peers: dnsmasq (DNS and DHCP server), dig, udhcpc, openssl s_server/s_client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::{
    collections::BTreeSet,
    net::TcpStream,
    process::{Command, Stdio},
    time::Duration,
};

use palisade_tests::{
    Daemon, Lab, PEER_IP, SENSOR_IF, SENSOR_IP, Side, base_config, eve_schema, run, wait_for,
};
use serde_json::Value;

const TLS_PORT: u16 = 4433;
const DOT_PORT: u16 = 853;

/// The flow event that ends the flow whose events carry `flow_id`.
fn flow_end(daemon: &Daemon, what: &str, flow_id: &Value) -> Value {
    assert!(flow_id.is_u64(), "{what}: no flow_id");
    daemon.wait_event(what, Duration::from_secs(8), |e| {
        e["event_type"] == "flow" && &e["flow_id"] == flow_id
    })
}

/// Starts `openssl s_server` on the peer; waits until it accepts.
fn tls_server(lab: &Lab) {
    let key = lab.dir.join("tls.key");
    let cert = lab.dir.join("tls.crt");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=tls.example.test",
            "-days",
            "1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null()));
    let mut server = lab.peer("openssl");
    server
        .args(["s_server", "-quiet", "-alpn", "h2", "-accept"])
        .arg(format!("{PEER_IP}:{TLS_PORT}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    lab.spawn(server);
    wait_for(Duration::from_secs(5), "openssl s_server", || {
        let out = lab
            .peer("ss")
            .args(["-Hltn", &format!("sport = :{TLS_PORT}")])
            .output()
            .expect("ss");
        (!out.stdout.is_empty()).then_some(())
    });
}

#[test]
fn every_event_type_validates_and_joins_its_flow() {
    let lab = Lab::new("eve");
    let leases = lab.dir.join("dnsmasq.leases");
    lab.start_dnsmasq_with(
        Side::Peer,
        &[
            "--dhcp-range=198.18.0.100,198.18.0.150,255.255.255.0,1h",
            "--dhcp-authoritative",
            &format!("--dhcp-leasefile={}", leases.display()),
        ],
    );
    tls_server(&lab);
    let cfg = base_config(&lab, "[flow]\nidle_timeout_s = 1\ntcp_idle_timeout_s = 2\n");
    let daemon = Daemon::start(&lab, &cfg, &[]);
    daemon.wait_healthy();

    // DNS: a query from the sensor and dnsmasq's answer.
    let answer = lab.dig(&["+short", "join.example.test", "A"]);
    assert!(answer.contains("198.18.0.99"), "{answer}");
    // TLS: a full handshake with SNI and ALPN; TLS 1.2, whose ServerHello carries the
    // chosen ALPN in the clear (TLS 1.3 encrypts it).
    let out = lab
        .sensor("openssl")
        .args(["s_client", "-tls1_2", "-connect"])
        .arg(format!("{PEER_IP}:{TLS_PORT}"))
        .args(["-servername", "tls.example.test", "-alpn", "h2,http/1.1"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ALPN protocol: h2"),
        "{out:?}"
    );
    // DHCP: udhcpc takes a lease from dnsmasq (DISCOVER, OFFER, REQUEST, ACK); its script
    // is `true`, so the interface keeps its address.
    let out = lab
        .sensor("udhcpc")
        .args([
            "-i",
            SENSOR_IF,
            "-n",
            "-q",
            "-f",
            "-t",
            "5",
            "-T",
            "1",
            "-s",
            "/bin/true",
        ])
        .output()
        .expect("udhcpc");
    assert!(out.status.success(), "udhcpc got no lease: {out:?}");
    // An encrypted-DNS alert: a connection attempt to the DoT port (refused by a RST).
    let dot = lab.in_netns(Side::Sensor, || {
        TcpStream::connect_timeout(
            &(PEER_IP.parse::<std::net::IpAddr>().expect("ip"), DOT_PORT).into(),
            Duration::from_secs(1),
        )
    });
    assert!(dot.is_err(), "nothing listens on {DOT_PORT}");

    // Each dns, tls, dhcp and alert event names its flow: the flow's own event has the
    // same flow_id and community_id.
    let is_dns = |kind: &'static str| {
        move |e: &Value| {
            e["event_type"] == "dns"
                && e["dns"]["rrname"] == "join.example.test"
                && e["dns"]["type"] == kind
        }
    };
    let query = daemon.wait_event("the DNS query", Duration::from_secs(5), is_dns("query"));
    let answer = daemon.wait_event("the DNS answer", Duration::from_secs(5), is_dns("answer"));
    assert_eq!(query["flow_id"], answer["flow_id"], "{query}\n{answer}");
    assert_eq!(query["community_id"], answer["community_id"]);
    let flow = flow_end(&daemon, "the DNS query's flow", &query["flow_id"]);
    assert_eq!(flow["community_id"], query["community_id"], "{flow}");
    assert_eq!(flow["src_port"], query["src_port"], "{flow}");
    assert_eq!(flow["dest_port"], 53);

    let hello = |side: &'static str| {
        move |e: &Value| e["event_type"] == "tls" && e["palisade"]["tls"]["handshake"] == side
    };
    let client = daemon.wait_event(
        "the ClientHello",
        Duration::from_secs(5),
        hello("client_hello"),
    );
    let server = daemon.wait_event(
        "the ServerHello",
        Duration::from_secs(5),
        hello("server_hello"),
    );
    assert_eq!(client["tls"]["sni"], "tls.example.test", "{client}");
    assert_eq!(
        client["tls"]["client_alpns"],
        serde_json::json!(["h2", "http/1.1"])
    );
    assert!(
        client["tls"]["client_handshake"]["ciphers"].is_array(),
        "{client}"
    );
    assert_eq!(
        server["tls"]["server_alpns"],
        serde_json::json!(["h2"]),
        "{server}"
    );
    assert!(
        server["tls"]["server_handshake"]["cipher"].is_u64(),
        "{server}"
    );
    assert_eq!(server["tls"]["version"], "TLS 1.2", "{server}");
    assert_eq!(client["flow_id"], server["flow_id"], "{client}\n{server}");
    let flow = flow_end(&daemon, "the TLS connection's flow", &client["flow_id"]);
    assert_eq!(flow["community_id"], client["community_id"]);
    assert_eq!(flow["dest_port"], TLS_PORT, "{flow}");

    let dhcp: Vec<Value> = wait_for(Duration::from_secs(5), "four DHCP messages", || {
        let d: Vec<Value> = daemon
            .events()
            .into_iter()
            .filter(|e| e["event_type"] == "dhcp")
            .collect();
        (d.len() >= 4).then_some(d)
    });
    let types: BTreeSet<&str> = dhcp
        .iter()
        .filter_map(|e| e["dhcp"]["dhcp_type"].as_str())
        .collect();
    for t in ["discover", "offer", "request", "ack"] {
        assert!(types.contains(t), "{t} missing: {dhcp:?}");
    }
    for e in &dhcp {
        let flow = flow_end(&daemon, "a DHCP message's flow", &e["flow_id"]);
        assert_eq!(flow["community_id"], e["community_id"], "{e}\n{flow}");
    }

    let alert = daemon.wait_event("the DoT alert", Duration::from_secs(5), |e| {
        e["event_type"] == "alert" && e["dest_port"] == DOT_PORT
    });
    assert_eq!(alert["alert"]["signature_id"], 9_000_001, "{alert}");
    let flow = flow_end(&daemon, "the DoT attempt's flow", &alert["flow_id"]);
    assert_eq!(flow["community_id"], alert["community_id"]);
    assert_eq!(flow["flow"]["reason"], "rst", "{flow}");

    // A packet the IP policy drops never forms a flow: its alert has a community_id to
    // join flows of the same tuple, and no flow_id.
    let out = daemon.ctl(&["block", "add", &format!("{PEER_IP}/32")]);
    assert!(out.status.success(), "{out:?}");
    lab.in_netns(Side::Sensor, || {
        let s = std::net::UdpSocket::bind((SENSOR_IP, 0)).expect("bind");
        for _ in 0..3 {
            let _ = s.send_to(b"blocked", (PEER_IP, 9));
        }
    });
    let blocked = daemon.wait_event("the IP block alert", Duration::from_secs(5), |e| {
        e["event_type"] == "alert" && e["palisade"]["ip_block"].is_object()
    });
    assert!(blocked.get("flow_id").is_none(), "{blocked}");
    assert!(
        blocked["community_id"]
            .as_str()
            .is_some_and(|c| c.starts_with("1:")),
        "{blocked}"
    );

    // Every event so far, against Suricata's schema (the daemon's drop checks them again,
    // with whatever came after).
    let lines = daemon.raw_lines();
    let checked = eve_schema::validate_lines(lines.iter().map(String::as_str))
        .unwrap_or_else(|report| panic!("{report}"));
    let kinds: BTreeSet<String> = daemon
        .events()
        .iter()
        .filter_map(|e| e["event_type"].as_str().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = ["alert", "dhcp", "dns", "flow", "tls"]
        .map(str::to_owned)
        .into();
    assert!(kinds.is_superset(&want), "{kinds:?}");
    assert!(checked >= 12, "{checked} events checked");
}

/// The validator itself: Suricata's own output passes, a field Suricata does not have
/// fails, and so does a Suricata field of the wrong type (no root needed).
#[test]
fn the_schema_check_can_fail() {
    let suricata = r#"{"timestamp":"2026-12-04T10:00:00.000000+0000","flow_id":1,"in_iface":"eth0","event_type":"dns","src_ip":"10.0.0.1","src_port":5353,"dest_ip":"10.0.0.2","dest_port":53,"proto":"UDP","dns":{"version":2,"type":"query","id":1,"rrname":"a.example","rrtype":"A","tx_id":0,"opcode":0}}"#;
    assert_eq!(eve_schema::validate_lines([suricata]), Ok(1));
    let vendor = suricata.replacen(
        "\"dns\":",
        "\"palisade\":{\"iface_direction\":\"ingress\"},\"dns\":",
        1,
    );
    assert_eq!(eve_schema::validate_lines([vendor.as_str()]), Ok(1));
    let unknown = suricata.replacen("\"rrtype\":\"A\"", "\"rrtype\":\"A\",\"rtt_ms\":1.5", 1);
    let err = eve_schema::validate_lines([unknown.as_str()]).expect_err("rtt_ms is not Suricata's");
    assert!(err.contains("rtt_ms"), "{err}");
    let top = suricata.replacen("\"proto\"", "\"iface_direction\":\"ingress\",\"proto\"", 1);
    assert!(eve_schema::validate_lines([top.as_str()]).is_err());
    let typed = suricata.replacen("\"id\":1", "\"id\":\"1\"", 1);
    assert!(eve_schema::validate_lines([typed.as_str()]).is_err());
}
