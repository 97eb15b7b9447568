//! TLS rules with real peers (openssl s_server -www / s_client) in the lab.
//!
//! * A rule file with `sni blocked.example.test block`: the hello to that name is an
//!   `alert` (action `blocked`), the supervisor writes the connection into the kernel's
//!   flow-block map, and the HTTP request the client sends a second after the handshake gets
//!   no answer; the same client to another name gets its page. `tls rules list` shows the
//!   cut connection and the hello-to-block latency; the kernel counted the dropped packets.
//! * `palisade tls rules add ja3 HASH` (alert only) at run time: the next hello with that
//!   JA3 is an `alert` with action `allowed` and its connection works; added again with
//!   `--block`, the next connection with that JA3 is cut while curl (another JA3) gets its
//!   page; the rule is in the state file and comes back after a daemon restart; `remove`
//!   takes it away.
//! * A bad rule file line is refused by `check-config` with its line number.
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

use palisade_tests::{Daemon, Lab, SENSOR_IP, base_config, bin, run, wait_for};
use serde_json::Value;

const PORT: u16 = 4443;
const BLOCKED_PORT: u16 = 4444;
const JA3_BLOCKED_PORT: u16 = 4445;

/// `openssl s_server -www` on the sensor at `port` (answers `GET /` with a status page;
/// one connection at a time, so a cut connection keeps its server busy: the blocked
/// connection gets a server of its own).
fn server(lab: &Lab, port: u16) {
    let key = lab.dir.join(format!("server{port}.key"));
    let cert = lab.dir.join(format!("server{port}.crt"));
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=server.example.test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null()));
    let mut s = lab.sensor("openssl");
    s.args(["s_server", "-www", "-accept"])
        .arg(format!("{SENSOR_IP}:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    lab.spawn(s);
    wait_for(Duration::from_secs(5), "openssl s_server", || {
        let out = lab
            .sensor("ss")
            .args(["-Hltn", &format!("sport = :{port}")])
            .output()
            .ok()?;
        (!out.stdout.is_empty()).then_some(())
    });
}

/// A TLS connection to `sni` that sends `GET /` a second after the handshake; whether the
/// page came back.
fn fetch(lab: &Lab, port: u16, sni: &str) -> bool {
    let script = format!(
        "(sleep 1; printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 2) | timeout 6 openssl s_client -quiet -connect {SENSOR_IP}:{port} -servername {sni} 2>/dev/null"
    );
    let out = lab
        .peer("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    String::from_utf8_lossy(&out.stdout).contains("HTTP/1.0 200 ok")
}

fn alerts(daemon: &Daemon, sni: &str) -> Vec<Value> {
    daemon
        .events()
        .into_iter()
        .filter(|e| e["event_type"] == "alert" && e["tls"]["sni"] == sni)
        .collect()
}

fn list(daemon: &Daemon) -> Value {
    let out = daemon.ctl(&["tls", "rules", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn blocking_sni_and_ja3_rules_cut_connections_and_alert_only_rules_do_not() {
    let lab = Lab::new("tls-pol");
    server(&lab, PORT);
    server(&lab, BLOCKED_PORT);
    server(&lab, JA3_BLOCKED_PORT);
    let rules = lab.dir.join("tls-rules.txt");
    std::fs::write(
        &rules,
        "# test rules\nsni blocked.example.test block # cut it\nsni-suffix never.example.invalid\n",
    )
    .unwrap();
    let config = base_config(
        &lab,
        &format!(
            "[tls]\nrules = [\"{}\"]\nblock_ttl_secs = 60\n",
            rules.display()
        ),
    );
    let daemon = Daemon::start(&lab, &config, &[]);
    daemon.wait_healthy();

    // Control: another name works and raises nothing.
    assert!(
        fetch(&lab, PORT, "open.example.test"),
        "an unmatched connection must work"
    );
    assert!(alerts(&daemon, "open.example.test").is_empty());

    // The blocked name: alert, then the connection is cut before the request gets through;
    // traced meanwhile, to see which rule the kernel dropped its packets for.
    let tracer = Command::new(bin("palisade"))
        .args([
            "trace",
            "--port",
            &BLOCKED_PORT.to_string(),
            "--duration",
            "60s",
        ])
        .args(["--json", "--control-socket"])
        .arg(&daemon.control)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("palisade trace");
    wait_for(Duration::from_secs(5), "the trace running", || {
        let out = Command::new("curl")
            .args(["-s", "--unix-socket"])
            .arg(&daemon.control)
            .arg("http://localhost/v1/trace")
            .output()
            .expect("curl");
        let state: Value = serde_json::from_slice(&out.stdout).ok()?;
        (state["active"] == true).then_some(())
    });
    assert!(
        !fetch(&lab, BLOCKED_PORT, "blocked.example.test"),
        "the blocked connection answered"
    );
    assert!(daemon.ctl(&["trace", "--stop"]).status.success());
    let traced = tracer.wait_with_output().expect("palisade trace");
    let cut: Vec<Value> = String::from_utf8_lossy(&traced.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["decided_by"] == "tls-cut")
        .collect();
    let first = cut
        .first()
        .unwrap_or_else(|| panic!("no tls-cut in the trace: {traced:?}"));
    assert_eq!(first["verdict"], "drop", "{first}");
    assert_eq!(first["hook"], "observer", "{first}");
    assert_eq!(first["rule_id"], 1, "{first}");
    assert_eq!(
        first["rule"],
        format!("sni blocked.example.test ({}:2)", rules.display()),
        "{first}"
    );
    let a = wait_for(Duration::from_secs(5), "alert for the blocked SNI", || {
        alerts(&daemon, "blocked.example.test").into_iter().next()
    });
    assert_eq!(a["alert"]["action"], "blocked", "{a}");
    assert_eq!(a["alert"]["signature_id"], 9_000_040);
    assert_eq!(a["palisade"]["tls_rule"]["kind"], "sni");
    assert_eq!(a["palisade"]["tls_rule"]["id"], 1);
    assert_eq!(a["proto"], "TCP");
    assert!(
        a["flow_id"].is_u64() && a["community_id"].is_string(),
        "{a}"
    );
    let l = list(&daemon);
    assert_eq!(l["total_rules"], 2, "{l}");
    assert_eq!(l["rules"][0]["blocks"], 1, "{l}");
    assert_eq!(l["total_blocks"], 1, "{l}");
    let b = &l["blocks"][0];
    assert_eq!(b["proto"], "TCP");
    let latency = b["latency_us"].as_u64().unwrap();
    println!("hello to kernel block: {latency} us");
    assert!(latency < 1_000_000, "hello to block took {latency} us");
    assert!(b["expires_in_secs"].as_u64().unwrap() <= 60);
    assert!(
        daemon
            .kernel_counter("flow_table", "blocked_packets")
            .unwrap()
            > 0,
        "flow_table/blocked_packets"
    );

    // A runtime JA3 rule (alert only), learned from the control connection's event.
    let ja3 = daemon
        .events()
        .into_iter()
        .find(|e| e["event_type"] == "tls" && e["tls"]["sni"] == "open.example.test")
        .expect("tls event")["tls"]["ja3"]["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = daemon.ctl(&[
        "tls",
        "rules",
        "add",
        "ja3",
        &ja3,
        "--comment",
        "lab client",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["source"], "cli");
    assert!(
        fetch(&lab, PORT, "again.example.test"),
        "an alert-only rule must not cut"
    );
    let a = wait_for(Duration::from_secs(5), "alert for the JA3 rule", || {
        alerts(&daemon, "again.example.test").into_iter().next()
    });
    assert_eq!(a["alert"]["action"], "allowed");
    assert_eq!(a["palisade"]["tls_rule"]["value"], ja3.as_str());
    let saved = std::fs::read_to_string(lab.dir.join("state/tls-rules.json")).unwrap();
    assert!(saved.contains(&ja3), "{saved}");

    // The same JA3 rule made blocking (add again with --block): the next connection of
    // that client is cut; curl, another TLS client (another JA3), still gets its page.
    let out = daemon.ctl(&["tls", "rules", "add", "ja3", &ja3, "--block"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !fetch(&lab, JA3_BLOCKED_PORT, "ja3.example.test"),
        "a connection with the blocked JA3 answered"
    );
    let a = wait_for(
        Duration::from_secs(5),
        "alert for the blocking JA3 rule",
        || alerts(&daemon, "ja3.example.test").into_iter().next(),
    );
    assert_eq!(a["alert"]["action"], "blocked", "{a}");
    assert_eq!(a["tls"]["ja3"]["hash"], ja3.as_str());
    let l = list(&daemon);
    assert_eq!(l["total_blocks"], 2, "{l}");
    assert!(
        l["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["rule_id"] == added["id"]),
        "{l}"
    );
    let curl = lab
        .peer("curl")
        .args(["-sk", "--max-time", "5", "--resolve"])
        .arg(format!("curl.example.test:{PORT}:{SENSOR_IP}"))
        .arg(format!("https://curl.example.test:{PORT}/"))
        .output()
        .expect("curl");
    assert!(
        String::from_utf8_lossy(&curl.stdout).contains("s_server"),
        "curl got no page: {curl:?}"
    );
    let curl_ja3 = wait_for(Duration::from_secs(5), "curl's hello", || {
        daemon
            .events()
            .into_iter()
            .find(|e| e["event_type"] == "tls" && e["tls"]["sni"] == "curl.example.test")
    })["tls"]["ja3"]["hash"]
        .clone();
    assert_ne!(curl_ja3, ja3.as_str(), "curl and openssl share a JA3 here");
    assert!(alerts(&daemon, "curl.example.test").is_empty());
    drop(daemon);

    // Back after a restart; then removed.
    let daemon = Daemon::start(&lab, &config, &[]);
    daemon.wait_healthy();
    let l = list(&daemon);
    assert_eq!(l["total_rules"], 3, "{l}");
    assert!(l["rules"].to_string().contains(&ja3), "{l}");
    let out = daemon.ctl(&["tls", "rules", "remove", "ja3", &ja3]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(list(&daemon)["total_rules"], 2);
    let bad = daemon.ctl(&["tls", "rules", "add", "ja3", "not-a-hash"]);
    assert!(!bad.status.success(), "an invalid JA3 must be refused");

    // The `tls-rules` feature switched off: the blocks in force are lifted, the blocked
    // name gets through without an alert, and the worker applies the empty rule set (drift
    // clean); switched on: cut again.
    let out = daemon.ctl(&["feature", "disable", "tls-rules"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(list(&daemon)["total_blocks"], 0, "blocks lifted");
    let alerts_before = alerts(&daemon, "blocked.example.test").len();
    wait_for(
        Duration::from_secs(20),
        "the blocked name passes (tls-rules off)",
        || fetch(&lab, BLOCKED_PORT, "blocked.example.test").then_some(()),
    );
    assert_eq!(
        alerts(&daemon, "blocked.example.test").len(),
        alerts_before,
        "no TLS alert while the rules are off"
    );
    let check = daemon.ctl(&["check", "--json"]);
    assert!(
        check.status.success(),
        "the worker applies the empty set: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let out = daemon.ctl(&["feature", "enable", "tls-rules"]);
    assert!(out.status.success(), "{out:?}");
    wait_for(Duration::from_secs(20), "cut again (tls-rules on)", || {
        (!fetch(&lab, BLOCKED_PORT, "blocked.example.test")).then_some(())
    });
}

#[test]
fn check_config_names_every_bad_rule_line() {
    let lab = Lab::new("tls-chk");
    let rules = lab.dir.join("bad.txt");
    std::fs::write(&rules, "sni ok.example\nja3 xyz\nsni-regex (\n").unwrap();
    let config = lab.dir.join("p.toml");
    std::fs::write(
        &config,
        base_config(&lab, &format!("[tls]\nrules = [\"{}\"]\n", rules.display())),
    )
    .unwrap();
    let out = Command::new(bin("palisade"))
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("check-config");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("bad.txt:2:") && text.contains("bad.txt:3:"),
        "{text}"
    );
}
