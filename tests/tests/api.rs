//! The REST/JSON API on the control socket, driven with curl against a real daemon: every
//! route of docs/openapi.json answers as documented, an undocumented one is a 404, callers
//! are authorised like the CLI's, and oversized, malformed and slow requests are refused
//! without holding up the daemon.

#![expect(
    clippy::indexing_slicing,
    reason = "JSON values are indexed; a missing key is null and fails the assertion"
)]

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use palisade_tests::{Daemon, Lab, base_config, run_in_sensor, wait_for};
use serde_json::Value;

/// One answer: HTTP status (0: no answer), headers, body.
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// `curl --unix-socket` with `prefix` (e.g. setpriv) in front, `extra` curl arguments.
fn curl_as(prefix: &[&str], socket: &Path, method: &str, target: &str, extra: &[&str]) -> Answer {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg("curl");
            c
        }
        None => Command::new("curl"),
    };
    cmd.args(["--unix-socket"]).arg(socket);
    curl_run(cmd, method, &format!("http://localhost{target}"), extra)
}

/// Runs `cmd` (curl and its first arguments) on `url`: the answer, status 0 when none came.
fn curl_run(mut cmd: Command, method: &str, url: &str, extra: &[&str]) -> Answer {
    let out = cmd
        .args(["-sS", "-i", "--max-time", "10"])
        .args(["-X", method, "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (answer, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (headers, body) = answer.split_once("\r\n\r\n").unwrap_or(("", answer));
    Answer {
        status: code.trim().parse().unwrap_or(0),
        headers: headers.to_owned(),
        body: body.to_owned(),
    }
}

fn curl(daemon: &Daemon, method: &str, target: &str, extra: &[&str]) -> Answer {
    curl_as(&[], &daemon.control, method, target, extra)
}

/// The OpenAPI description shipped in docs/.
fn openapi() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let text = std::fs::read_to_string(&path).expect("docs/openapi.json");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn every_documented_route_answers_as_documented() {
    let lab = Lab::new("apidoc");
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    let spec = openapi();
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() >= 17, "{} paths documented", paths.len());
    let mut checked = 0;
    // Paths in sorted order: an add (POST /v1/block) comes before its removal
    // (DELETE /v1/block/{cidr}), so both succeed.
    let mut sorted: Vec<_> = paths.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (path, ops) in sorted {
        for (method, op) in ops.as_object().expect("operations") {
            let method = method.to_uppercase();
            let mut target = path.clone();
            let mut query = Vec::new();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let example = match &p["example"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                match p["in"].as_str() {
                    Some("path") => {
                        target = target.replace(
                            &format!("{{{}}}", p["name"].as_str().expect("name")),
                            &example,
                        )
                    }
                    Some("query") => query.push(format!(
                        "{}={}",
                        p["name"].as_str().expect("name"),
                        enc(&example)
                    )),
                    other => panic!("{path}: parameter in {other:?}"),
                }
            }
            if !query.is_empty() {
                target = format!("{target}?{}", query.join("&"));
            }
            let body = op["requestBody"]["content"]["application/json"]["example"].to_string();
            let mut extra = Vec::new();
            if op["requestBody"].is_object() {
                extra = vec![
                    "-H",
                    "Content-Type: application/json",
                    "--data-binary",
                    &body,
                ];
            }
            let answer = curl(&daemon, &method, &target, &extra);
            let (want, doc) = op["responses"]
                .as_object()
                .expect("responses")
                .iter()
                .find(|(code, _)| code.starts_with('2'))
                .expect("a success response");
            assert_eq!(
                answer.status.to_string(),
                *want,
                "{method} {target}: {}",
                answer.body
            );
            let (ctype, media) = doc["content"]
                .as_object()
                .and_then(|c| c.iter().next())
                .expect("documented content");
            let got = answer.header("content-type").unwrap_or_default();
            assert!(
                got.starts_with(ctype.as_str()),
                "{method} {target}: {got} (documented {ctype})"
            );
            if ctype == "application/json" {
                let value = answer.json();
                let schema = &media["schema"];
                match schema["type"].as_str() {
                    Some("array") => assert!(value.is_array(), "{method} {target}: {value}"),
                    _ => assert!(value.is_object(), "{method} {target}: {value}"),
                }
                for key in schema["required"].as_array().into_iter().flatten() {
                    let key = key.as_str().expect("key");
                    assert!(
                        value.get(key).is_some(),
                        "{method} {target}: no {key} in {value}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 19, "{checked} operations checked");
    // Routes nobody documented: 404 with the error document.
    for (method, target) in [
        ("GET", "/v1/nothing"),
        ("GET", "/v2/status"),
        ("GET", "/v1/status/extra"),
        ("GET", "/"),
        ("POST", "/v1/restart/ftp"),
    ] {
        let a = curl(&daemon, method, target, &[]);
        assert_eq!(a.status, 404, "{method} {target}: {}", a.body);
        assert_eq!(a.json()["error"]["kind"], "not_found", "{}", a.body);
    }
    // A documented path with a method it does not take: 405 and Allow.
    let a = curl(&daemon, "DELETE", "/v1/status", &[]);
    assert_eq!(a.status, 405, "{}", a.body);
    assert_eq!(a.header("allow").as_deref(), Some("GET"));
    // The API's status is the CLI's.
    let api = curl(&daemon, "GET", "/v1/status", &[]).json();
    let cli = daemon.status_json().expect("status --json");
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    assert_eq!(keys(&api), keys(&cli));
    assert_eq!(api["workers"].as_array().map(Vec::len), Some(4));
    // What the API added, the CLI sees (and the other way round).
    let added = curl(
        &daemon,
        "POST",
        "/v1/block",
        &[
            "--data-binary",
            r#"{"cidr":"203.0.113.7","comment":"from the API"}"#,
        ],
    );
    assert_eq!(added.status, 200, "{}", added.body);
    let list = daemon.ctl(&["block", "list", "--json"]);
    let list: Value = serde_json::from_slice(&list.stdout).expect("block list --json");
    assert!(
        list["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .any(|r| r["cidr"] == "203.0.113.7/32" && r["comment"] == "from the API"),
        "{list}"
    );
    let removed = curl(&daemon, "DELETE", "/v1/block/203.0.113.7%2F32", &[]);
    assert_eq!(removed.status, 200, "{}", removed.body);
    let again = curl(&daemon, "DELETE", "/v1/block/203.0.113.7/32", &[]);
    assert_eq!(again.status, 422, "removing it twice: {}", again.body);
    assert_eq!(again.json()["error"]["kind"], "failed");
    daemon.assert_alive();
}

#[test]
fn the_api_authorises_limits_and_times_out_its_clients() {
    let lab = Lab::new("apilimits");
    let daemon = Daemon::start(
        &lab,
        &base_config(&lab, "[control]\ngroup = \"nogroup\"\n"),
        &[],
    );
    daemon.wait_healthy();
    let member = [
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
    ];
    let outsider = [
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65533",
        "--clear-groups",
    ];
    // The control group reads...
    let a = curl_as(&member, &daemon.control, "GET", "/v1/status", &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let a = curl_as(&member, &daemon.control, "GET", "/metrics", &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("palisade_up"), "{}", a.body);
    // ...but changes nothing.
    for (method, target) in [
        ("POST", "/v1/reload"),
        ("POST", "/v1/restart/dns"),
        ("DELETE", "/v1/block/192.0.2.1"),
    ] {
        let a = curl_as(&member, &daemon.control, method, target, &[]);
        assert_eq!(a.status, 403, "{method} {target}: {}", a.body);
        assert_eq!(a.json()["error"]["kind"], "permission_denied");
    }
    // Outside the group: the socket file refuses the connection itself.
    let a = curl_as(&outsider, &daemon.control, "GET", "/v1/status", &[]);
    assert_eq!(a.status, 0, "an outsider got an answer: {}", a.body);

    // Too large: a 9 KiB header, a body declared beyond 16 KiB.
    let pad = format!("X-Pad: {}", "a".repeat(9 * 1024));
    let a = curl(&daemon, "GET", "/v1/status", &["-H", &pad]);
    assert_eq!(a.status, 413, "{}", a.body);
    let big = format!(
        "{{\"cidr\":\"192.0.2.1\",\"comment\":\"{}\"}}",
        "c".repeat(20 * 1024)
    );
    let a = curl(&daemon, "POST", "/v1/block", &["--data-binary", &big]);
    assert_eq!(a.status, 413, "{}", a.body);
    assert_eq!(a.json()["error"]["kind"], "too_large");
    // Malformed JSON, an unknown field, chunked encoding, another protocol version.
    let a = curl(
        &daemon,
        "POST",
        "/v1/block",
        &["--data-binary", "{\"cidr\":"],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    let a = curl(
        &daemon,
        "POST",
        "/v1/block",
        &["--data-binary", "{\"cidr\":\"192.0.2.1\",\"ttl\":5}"],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    let a = curl(
        &daemon,
        "POST",
        "/v1/block",
        &["-H", "Transfer-Encoding: chunked", "--data-binary", "{}"],
    );
    assert_eq!(a.status, 501, "{}", a.body);
    let old = format!(
        "Accept: application/vnd.palisade.v{}+bincode",
        palisade_ipc::PROTOCOL_VERSION - 1
    );
    let a = curl(&daemon, "GET", "/v1/status", &["-H", &old]);
    assert_eq!(a.status, 406, "{}", a.body);

    // A slow client: half a request, then nothing. The daemon answers others meanwhile and
    // gives it a 408 after its 5 s.
    let mut slow = UnixStream::connect(&daemon.control).expect("connect");
    slow.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x")
        .expect("write");
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let a = curl(&daemon, "GET", "/v1/version", &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "version took {:?}",
        t.elapsed()
    );
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = String::new();
    slow.read_to_string(&mut answer).expect("read the answer");
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        (Duration::from_secs(4)..Duration::from_secs(8)).contains(&waited),
        "408 after {waited:?}"
    );
    // A client that trickles a byte at a time is cut off at the same deadline.
    let mut trickle = UnixStream::connect(&daemon.control).expect("connect");
    let started = Instant::now();
    let mut cut = false;
    for b in b"GET /v1/status HTTP/1.1\r\nX-Slow: "
        .iter()
        .chain(std::iter::repeat(&b'a'))
    {
        if trickle.write_all(&[*b]).is_err() || started.elapsed() > Duration::from_secs(10) {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        cut && started.elapsed() < Duration::from_secs(8),
        "trickling client kept for {:?}",
        started.elapsed()
    );
    for kind in ["dns", "dhcp", "tls", "flow"] {
        assert_eq!(
            daemon.workers()[kind]["restarts"],
            0,
            "{kind} was restarted"
        );
    }
    daemon.assert_alive();
}

#[test]
fn promtool_accepts_the_live_metrics() {
    let lab = Lab::new("apiprom");
    lab.start_dnsmasq();
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    // Traffic, so that the labelled families have samples (records, events, kernel counters).
    lab.dig(&["metrics.example"]);
    wait_for(Duration::from_secs(10), "a DNS event counted", || {
        (daemon.workers()["dns"]["stats"]["events"].as_u64() > Some(0)).then_some(())
    });
    let a = curl(&daemon, "GET", "/metrics", &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        a.header("content-type")
    );
    for family in [
        "palisade_up{",
        "palisade_worker_up{",
        "palisade_worker_events_total{worker=\"dns\"}",
        "palisade_kernel_events_total{",
        "palisade_interface_attached{",
    ] {
        assert!(a.body.contains(family), "no {family} in\n{}", a.body);
    }
    // promtool reads the exposition on stdin: a format error or a lint problem (a counter
    // without _total, a bad name or label, a duplicate sample) fails the check.
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/deps installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(a.body.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        a.body
    );
    // `palisade metrics` (node exporter's textfile collector) prints the same families.
    let cli = daemon.ctl(&["metrics"]);
    assert!(cli.status.success(), "{cli:?}");
    let names = |text: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // (A family without samples is left out of an exposition: the levels workers report
    // (`palisade_worker_level`) come and go with their reports, between the two reads.)
    let stable = |v: Vec<String>| {
        v.into_iter()
            .filter(|n| !n.starts_with("palisade_worker_level "))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        stable(names(&String::from_utf8_lossy(&cli.stdout))),
        stable(names(&a.body))
    );
}

#[test]
fn log_levels_change_at_run_time() {
    let lab = Lab::new("apilog");
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    let log = || std::fs::read_to_string(&daemon.log).unwrap_or_default();
    // A malformed request is logged at debug level: not under the start-up filter (info).
    let malformed = || {
        let mut c = UnixStream::connect(&daemon.control).expect("connect");
        c.write_all(b"BAD REQUEST\r\n\r\n").expect("write");
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    };
    let debug_lines = || log().matches("bad control request").count();
    malformed();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        debug_lines(),
        0,
        "debug line under the info filter:\n{}",
        log()
    );

    let out = daemon.ctl(&["log-level", "debug"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "supervisor log level: debug"
    );
    malformed();
    wait_for(Duration::from_secs(5), "the debug line", || {
        (debug_lines() == 1).then_some(())
    });
    // Back to info through the API: the line is not logged again.
    let a = curl(
        &daemon,
        "POST",
        "/v1/log-level",
        &["--data-binary", r#"{"level":"info"}"#],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["level"], "info");
    assert!(a.json()["worker"].is_null());
    malformed();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(debug_lines(), 1, "{}", log());
    // A filter tracing cannot parse changes nothing.
    let out = daemon.ctl(&["log-level", "palisade=notalevel"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // A worker: it acknowledges the level it applies, and a restarted worker gets it again.
    let acks = |pid: u64| {
        log()
            .lines()
            .filter(|l| {
                l.contains("log level now warn")
                    && l.contains("worker=\"dns\"")
                    && l.contains(&format!("pid={pid}"))
            })
            .count()
    };
    let pid = daemon.workers()["dns"]["pid"].as_u64().expect("dns pid");
    let out = daemon.ctl(&["log-level", "warn", "--worker", "dns", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v, serde_json::json!({"level": "warn", "worker": "dns"}));
    wait_for(Duration::from_secs(5), "the worker's ack", || {
        (acks(pid) == 1).then_some(())
    });
    let out = daemon.ctl(&["restart", "dns"]);
    assert!(out.status.success(), "{out:?}");
    let new = palisade_tests::wait_for(Duration::from_secs(5), "a new dns worker", || {
        let w = &daemon.workers()["dns"];
        let p = w["pid"].as_u64()?;
        (p != pid && w["state"] == "running").then_some(p)
    });
    wait_for(Duration::from_secs(5), "the new worker's ack", || {
        (acks(new) == 1).then_some(())
    });
    // Workers have no debug lines: refused, not silently accepted.
    let out = daemon.ctl(&["log-level", "debug", "--worker", "dns"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error, warn or info"),
        "{out:?}"
    );
    daemon.assert_alive();
}

/// The `status:` of a dig answer.
fn dig_status(dig: &str) -> &str {
    dig.lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO ANSWER")
}

/// One ping from the sensor namespace to the peer: did a reply come back?
fn ping_peer(lab: &Lab) -> bool {
    lab.sensor("ping")
        .args(["-c", "1", "-W", "1", palisade_tests::PEER_IP])
        .output()
        .expect("ping")
        .status
        .success()
}

fn switches(daemon: &Daemon) -> Vec<(String, bool)> {
    daemon.status_json().expect("status")["features"]
        .as_array()
        .expect("features in status")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or_default().to_owned(),
                f["enabled"].as_bool().unwrap_or(true),
            )
        })
        .collect()
}

/// A lab with dnsmasq on the peer and a daemon whose DNS block list holds
/// `blocked.example.test`, plus `extra` config: (lab, config, healthy daemon).
fn blocking_lab(name: &str, extra: &str) -> (Lab, String, Daemon) {
    let lab = Lab::new(name);
    lab.start_dnsmasq();
    std::fs::write(lab.dir.join("block.txt"), "blocked.example.test\n").expect("list");
    let config = base_config(
        &lab,
        &format!(
            "[dns]\nblocklists = [\"{}\"]\n{extra}",
            lab.dir.join("block.txt").display()
        ),
    );
    let daemon = Daemon::start(&lab, &config, &[]);
    daemon.wait_healthy();
    (lab, config, daemon)
}

#[test]
fn features_switch_blocking_off_and_on_under_traffic_and_across_a_restart() {
    let (lab, config, daemon) = blocking_lab("apifeat", "");
    let on = vec![
        ("dns-blocking".to_owned(), true),
        ("ip-blocking".to_owned(), true),
        ("tls-rules".to_owned(), true),
        ("dhcp-guard".to_owned(), true),
        ("capture-dns".to_owned(), true),
        ("capture-dhcp".to_owned(), true),
        ("capture-tls".to_owned(), true),
        ("capture-flow".to_owned(), true),
    ];
    assert_eq!(switches(&daemon), on);
    // Both enforce: the listed name gets the kernel's NXDOMAIN, the peer (the resolver
    // too, so DNS is checked first) blocked at run time answers no ping.
    assert_eq!(
        dig_status(&lab.dig(&["blocked.example.test", "A"])),
        "NXDOMAIN"
    );
    assert!(ping_peer(&lab), "the peer answers before it is blocked");
    let out = daemon.ctl(&["block", "add", palisade_tests::PEER_IP]);
    assert!(out.status.success(), "{out:?}");
    assert!(!ping_peer(&lab), "the blocked peer still answers");

    // Off, through the CLI and the API: blocking stops at once.
    let out = daemon.ctl(&["feature", "disable", "ip-blocking"]);
    assert!(out.status.success(), "{out:?}");
    let a = curl(&daemon, "POST", "/v1/features/dns-blocking/disable", &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["features"][0]["enabled"], false, "{}", a.body);
    assert!(
        ping_peer(&lab),
        "ip-blocking off, yet the peer is still dropped"
    );
    let dig = lab.dig(&["blocked.example.test", "A"]);
    assert_eq!(dig_status(&dig), "NOERROR", "dns-blocking off: {dig}");
    assert!(dig.contains("198.18.0.99"), "{dig}");
    // Visible in status and the metrics.
    let off = vec![
        ("dns-blocking".to_owned(), false),
        ("ip-blocking".to_owned(), false),
        ("tls-rules".to_owned(), true),
        ("dhcp-guard".to_owned(), true),
        ("capture-dns".to_owned(), true),
        ("capture-dhcp".to_owned(), true),
        ("capture-tls".to_owned(), true),
        ("capture-flow".to_owned(), true),
    ];
    assert_eq!(switches(&daemon), off);
    let metrics = curl(&daemon, "GET", "/metrics", &[]).body;
    assert!(
        metrics.contains("palisade_feature_enabled{feature=\"ip-blocking\"} 0"),
        "{metrics}"
    );
    // The drift check agrees with the switched state (nothing to repair).
    let out = daemon.ctl(&["check", "--json"]);
    assert!(out.status.success(), "drift after switching off: {out:?}");

    // A restart keeps the switches: still not enforced.
    let state_dir = lab.dir.clone();
    drop(daemon);
    let daemon = Daemon::start(&lab, &config, &[]);
    daemon.wait_healthy();
    assert_eq!(
        switches(&daemon),
        off,
        "switches lost in a restart ({state_dir:?})"
    );
    assert!(ping_peer(&lab), "ip-blocking came back on after a restart");
    assert_eq!(
        dig_status(&lab.dig(&["blocked.example.test", "A"])),
        "NOERROR"
    );
    let out = daemon.ctl(&["feature", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("feature list --json");
    assert_eq!(list["features"][1]["name"], "ip-blocking");
    assert_eq!(list["features"][1]["enabled"], false);

    // On again: the rules kept meanwhile are enforced again (DNS first: once the peer is
    // blocked again, so is its resolver).
    let out = daemon.ctl(&["feature", "enable", "dns-blocking"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        dig_status(&lab.dig(&["blocked.example.test", "A"])),
        "NXDOMAIN"
    );
    let out = daemon.ctl(&["feature", "enable", "ip-blocking"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(switches(&daemon), on);
    assert!(!ping_peer(&lab), "ip-blocking on, yet the peer answers");
    let out = daemon.ctl(&["check", "--json"]);
    assert!(out.status.success(), "drift after switching on: {out:?}");
    // An unknown feature: a usage error for the CLI, 422 for the API.
    assert_eq!(
        daemon
            .ctl(&["feature", "disable", "warp-drive"])
            .status
            .code(),
        Some(2)
    );
    let a = curl(&daemon, "POST", "/v1/features/warp-drive/disable", &[]);
    assert_eq!(a.status, 422, "{}", a.body);
    daemon.assert_alive();
}

/// The API over TCP (`[control] listen`): the bearer token or a 401; the token's rights are
/// reads unless `tcp_changes`; `/metrics` open with `metrics_without_token`; a rotated token
/// takes effect without a restart, a broken one leaves the old in force; a token file others
/// may read stops the start.
#[test]
fn the_api_over_tcp_needs_its_token() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new("api-tcp");
    let token_file = lab.dir.join("api-token");
    let token = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    std::fs::write(&token_file, format!("{token}\n")).expect("write the token");
    let chmod = |mode| {
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    chmod(0o644);
    let tcp = |extra: &str| {
        base_config(
            &lab,
            &format!(
                "[control]\nlisten = \"127.0.0.1:9611\"\ntoken_file = \"{}\"\n{extra}",
                token_file.display()
            ),
        )
    };
    // Others may read the token: check-config and the daemon say what to fix.
    let config = lab.dir.join("tcp.toml");
    std::fs::write(&config, tcp("")).expect("write config");
    let out = Command::new(palisade_tests::bin("palisade"))
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("check-config");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("chmod 600"), "{err}");
    let out = run_in_sensor(&lab, &config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("control.token_file") && err.contains("chmod 600"),
        "{out:?}"
    );
    chmod(0o600);

    let daemon = Daemon::start(&lab, &tcp(""), &[]);
    daemon.wait_healthy();
    let call = |method: &str, target: &str, auth: Option<&str>| {
        let mut cmd = lab.sensor("curl");
        if let Some(t) = auth {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        curl_run(cmd, method, &format!("http://127.0.0.1:9611{target}"), &[])
    };
    // No token, a wrong one: 401 with the challenge, for the API and /metrics alike.
    for auth in [None, Some("0000000000000000000000000000000000000000")] {
        for target in ["/v1/status", "/metrics"] {
            let a = call("GET", target, auth);
            assert_eq!(a.status, 401, "{target} {auth:?}: {}", a.body);
            assert!(
                a.headers.contains("WWW-Authenticate: Bearer"),
                "{}",
                a.headers
            );
            assert_eq!(a.json()["error"]["kind"], "permission_denied");
        }
    }
    // The token: reads work; changes are refused (reads only by default).
    let a = call("GET", "/v1/status", Some(token));
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.json()["workers"].is_array(), "{}", a.body);
    let a = call("GET", "/metrics", Some(token));
    assert_eq!(a.status, 200);
    assert!(a.body.contains("palisade_up"), "{}", a.body);
    let a = call("POST", "/v1/features/ip-blocking/disable", Some(token));
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("tcp_changes"), "{}", a.body);
    // The socket is as it was.
    assert_eq!(curl(&daemon, "GET", "/v1/status", &[]).status, 200);

    // Rotation: the new token works at once, the old one no longer; a broken file keeps it.
    let rotated = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let staged = lab.dir.join("api-token.new");
    std::fs::write(&staged, rotated).expect("write");
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::rename(&staged, &token_file).expect("rename");
    assert_eq!(call("GET", "/v1/status", Some(rotated)).status, 200);
    assert_eq!(call("GET", "/v1/status", Some(token)).status, 401);
    std::fs::write(&token_file, "short\n").expect("write");
    assert_eq!(call("GET", "/v1/status", Some(rotated)).status, 200);
    drop(daemon);

    // tcp_changes and metrics_without_token.
    std::fs::write(&token_file, format!("{token}\n")).expect("write");
    let daemon = Daemon::start(
        &lab,
        &tcp("tcp_changes = true\nmetrics_without_token = true\n"),
        &[],
    );
    daemon.wait_healthy();
    let a = call("GET", "/metrics", None);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(call("GET", "/v1/status", None).status, 401);
    let a = call("POST", "/v1/features/ip-blocking/disable", Some(token));
    assert_eq!(a.status, 200, "{}", a.body);
    let a = call("POST", "/v1/features/ip-blocking/enable", Some(token));
    assert_eq!(a.status, 200, "{}", a.body);
}

/// `capture-dns` and `capture-flow` switched off: the kernel makes no DNS or flow records
/// (counted as `capture_off`), while the DNS policy still answers NXDOMAIN; switched on
/// again, events come back.
#[test]
fn capture_switches_stop_records_not_enforcement() {
    let (lab, _, daemon) = blocking_lab("apicap", "[flow]\nstart_events = true\n");
    let dns_event = |name: &'static str| {
        move |e: &Value| e["event_type"] == "dns" && e["dns"]["rrname"] == name
    };
    let flow_to = |port: u16| move |e: &Value| e["event_type"] == "flow" && e["dest_port"] == port;
    let send_udp = |port: u16| {
        lab.in_netns(palisade_tests::Side::Sensor, || {
            let s = std::net::UdpSocket::bind((palisade_tests::SENSOR_IP, 0)).expect("bind");
            s.send_to(b"x", (palisade_tests::PEER_IP, port))
                .expect("send");
        });
    };
    // Capture on: a query and a datagram make their DNS and flow events.
    let captured = |name: &'static str, port: u16, when: &str| {
        lab.dig(&[name, "A"]);
        daemon.wait_event(
            &format!("the DNS event ({when})"),
            Duration::from_secs(5),
            dns_event(name),
        );
        send_udp(port);
        daemon.wait_event(
            &format!("the flow start ({when})"),
            Duration::from_secs(5),
            flow_to(port),
        );
    };
    captured("one.example.test", 31_001, "capture on");

    for name in ["capture-dns", "capture-flow"] {
        let out = daemon.ctl(&["feature", "disable", name]);
        assert!(out.status.success(), "{out:?}");
    }
    let counter = |group: &str| daemon.kernel_counter(group, "capture_off").unwrap_or(0);
    lab.dig(&["two.example.test", "A"]);
    assert_eq!(
        dig_status(&lab.dig(&["blocked.example.test", "A"])),
        "NXDOMAIN",
        "the policy still decides with capture-dns off"
    );
    send_udp(31_002);
    wait_for(Duration::from_secs(5), "records not made, counted", || {
        (counter("dns") >= 2 && counter("flow") >= 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let events = daemon.events();
    for e in &events {
        assert!(
            !dns_event("two.example.test")(e) && !dns_event("blocked.example.test")(e),
            "a DNS event with capture-dns off: {e}"
        );
        assert!(
            !flow_to(31_002)(e),
            "a flow event with capture-flow off: {e}"
        );
    }
    let check = daemon.ctl(&["check", "--json"]);
    assert!(check.status.success(), "drift: {check:?}");

    for name in ["capture-dns", "capture-flow"] {
        let out = daemon.ctl(&["feature", "enable", name]);
        assert!(out.status.success(), "{out:?}");
    }
    captured("three.example.test", 31_003, "capture on again");
}

/// `palisade trace` in the background against `daemon`, printing JSON lines.
fn trace_cli(daemon: &Daemon, args: &[&str]) -> std::process::Child {
    Command::new(palisade_tests::bin("palisade"))
        .arg("trace")
        .args(args)
        .args(["--json", "--control-socket"])
        .arg(&daemon.control)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("palisade trace")
}

#[test]
fn a_trace_shows_each_program_s_verdict_for_passed_and_blocked_packets() {
    let (lab, _, daemon) = blocking_lab("apitrace", "");
    let peer = palisade_tests::PEER_IP;
    let sensor = palisade_tests::SENSOR_IP;
    let trace_events = || daemon.kernel_counter("trace", "events").unwrap_or(0);

    // Off: the programs write no trace events, whatever passes.
    assert!(ping_peer(&lab));
    assert_eq!(trace_events(), 0, "trace events with no trace running");
    let idle = curl(&daemon, "GET", "/v1/trace", &[]).json();
    assert_eq!(
        (idle["active"].clone(), idle["next"].clone()),
        (false.into(), 0.into())
    );

    // ICMP with the peer, through the CLI: one passed ping, then the peer blocked at run time
    // (dropped on the way out), then pinging us (dropped on the way in). A DNS query to the
    // peer meanwhile is not ICMP: not traced.
    let cli = trace_cli(
        &daemon,
        &["--host", peer, "--proto", "icmp", "--duration", "60s"],
    );
    wait_for(Duration::from_secs(5), "the trace running", || {
        curl(&daemon, "GET", "/v1/trace", &[]).json()["active"]
            .as_bool()
            .filter(|a| *a)
    });
    // One trace at a time.
    let second = curl(
        &daemon,
        "POST",
        "/v1/trace",
        &["--data-binary", r#"{"port":53}"#],
    );
    assert_eq!(second.status, 422, "{}", second.body);
    assert!(
        second.body.contains("a trace is running"),
        "{}",
        second.body
    );
    assert!(ping_peer(&lab), "the peer answers before it is blocked");
    lab.dig(&["passed.example.test", "A"]);
    let out = daemon.ctl(&["block", "add", peer]);
    assert!(out.status.success(), "{out:?}");
    let rules = daemon.ctl(&["block", "list", "--json"]);
    let rules: Value = serde_json::from_slice(&rules.stdout).expect("block list --json");
    let rule_id = rules["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["cidr"] == format!("{peer}/32")))
        .and_then(|r| r["id"].as_u64())
        .unwrap_or_else(|| panic!("the runtime rule's id: {rules}"));
    assert!(!ping_peer(&lab), "the blocked peer still answers");
    let from_peer = lab
        .peer("ping")
        .args(["-c", "1", "-W", "1", sensor])
        .output()
        .expect("ping from the peer");
    assert!(!from_peer.status.success(), "the blocked peer reached us");
    // Ended from another shell, as an operator would.
    let stop = daemon.ctl(&["trace", "--stop"]);
    assert!(stop.status.success(), "{stop:?}");
    let out = cli.wait_with_output().expect("palisade trace");
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (end, events) = lines.split_last().expect("output");
    assert_eq!(end["trace_end"]["ended"], "stopped", "{end}");
    assert_eq!(end["trace_end"]["kernel_lost"], 0, "{end}");
    assert_eq!(
        end["trace_end"]["events"].as_u64(),
        Some(events.len() as u64)
    );
    let show = || {
        events
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    for e in events {
        assert_eq!(e["proto"], "ICMP", "only the filter's packets: {e}");
        assert!(e["src_ip"] == peer || e["dest_ip"] == peer, "{e}");
        assert_eq!(e["interface"], palisade_tests::SENSOR_IF, "{e}");
    }
    let find = |what: &str, f: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| f(e))
            .unwrap_or_else(|| panic!("no event for {what} in:\n{}", show()))
            .clone()
    };
    // The passed request: through the IP policy and the observer, which accounts it to its
    // flow (flow records are written at the flow's end: none for this packet).
    find("the passed request at the IP policy", &|e| {
        e["hook"] == "tc-block"
            && e["direction"] == "egress"
            && e["dest_ip"] == peer
            && e["verdict"] == "pass"
            && e.get("decided_by").is_none()
    });
    let seen = find("the passed request at the observer", &|e| {
        e["hook"] == "observer" && e["direction"] == "egress" && e["verdict"] == "pass"
    });
    assert_eq!(seen["flow"], "tracked", "{seen}");
    assert_eq!(seen["lost"], serde_json::json!([]), "{seen}");
    find("the reply", &|e| {
        e["direction"] == "ingress" && e["src_ip"] == peer && e["verdict"] == "pass"
    });
    // The blocked request: dropped by the rule, which the event names; the observer never
    // saw it.
    let dropped = find("the blocked request", &|e| {
        e["direction"] == "egress" && e["verdict"] == "drop"
    });
    assert_eq!(dropped["hook"], "tc-block", "{dropped}");
    assert_eq!(dropped["decided_by"], "ip-policy", "{dropped}");
    assert_eq!(dropped["rule_id"].as_u64(), Some(rule_id), "{dropped}");
    assert_eq!(dropped["rule"], format!("{peer}/32"), "{dropped}");
    assert_eq!(dropped["matched"], "dest", "{dropped}");
    let blocked_in = find("the blocked peer's ping", &|e| {
        e["direction"] == "ingress" && e["src_ip"] == peer && e["verdict"] == "drop"
    });
    assert!(
        blocked_in["hook"] == "xdp" || blocked_in["hook"] == "tc-block",
        "{blocked_in}"
    );
    assert_eq!(blocked_in["matched"], "src", "{blocked_in}");
    assert_eq!(
        blocked_in["rule_id"].as_u64(),
        Some(rule_id),
        "{blocked_in}"
    );
    let observer_drops = events
        .iter()
        .filter(|e| e["hook"] == "observer" && e["verdict"] == "drop")
        .count();
    assert_eq!(
        observer_drops,
        0,
        "dropped packets reached the observer:\n{}",
        show()
    );

    // Stopped, the programs trace nothing again.
    let after_stop = trace_events();
    assert!(
        after_stop >= events.len() as u64,
        "{after_stop} < {}",
        events.len()
    );
    let out = daemon.ctl(&["block", "remove", peer]);
    assert!(out.status.success(), "{out:?}");
    assert!(ping_peer(&lab));
    assert_eq!(
        trace_events(),
        after_stop,
        "trace events after the trace stopped"
    );
    // A trace switched on behind the daemon's back (every packet, for years) is drift:
    // switched off again by the check, so nothing fills the trace ring unread.
    let config = lab.pin_dir().join("maps").join("pal_trace_config");
    let mut value = vec!["0xff".to_owned(); 8];
    value.extend(std::iter::repeat_n("0".to_owned(), 24));
    let out = Command::new("bpftool")
        .args(["map", "update", "pinned"])
        .arg(&config)
        .args(["key", "0", "0", "0", "0", "value"])
        .args(&value)
        .output()
        .expect("bpftool");
    assert!(out.status.success(), "{out:?}");
    assert!(ping_peer(&lab));
    assert!(
        trace_events() > after_stop,
        "the foreign trace traced nothing"
    );
    let check = daemon.ctl(&["check", "--json"]);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let report: Value = serde_json::from_slice(&check.stdout).expect("check --json");
    assert!(
        report["findings"].as_array().is_some_and(|f| f
            .iter()
            .any(|f| f["object"] == "map pal_trace_config" && f["repaired"] == true)),
        "{report}"
    );
    let repaired = trace_events();
    assert!(ping_peer(&lab));
    assert_eq!(trace_events(), repaired, "trace events after the repair");

    // Through the API: the DNS policy's verdict on a blocked name (answered by the kernel,
    // redirected back), and a passed query recorded for the DNS worker; the trace ends by
    // its duration.
    let start = curl(
        &daemon,
        "POST",
        "/v1/trace",
        &[
            "--data-binary",
            r#"{"proto":"udp","port":53,"duration_s":3}"#,
        ],
    );
    assert_eq!(start.status, 200, "{}", start.body);
    assert_eq!(start.json()["active"], true, "{}", start.body);
    assert_eq!(
        dig_status(&lab.dig(&["blocked.example.test", "A"])),
        "NXDOMAIN"
    );
    assert_eq!(
        dig_status(&lab.dig(&["passed.example.test", "A"])),
        "NOERROR"
    );
    let mut events: Vec<Value> = Vec::new();
    let mut after = 0;
    let ended = wait_for(Duration::from_secs(10), "the trace's end", || {
        let r = curl(&daemon, "GET", &format!("/v1/trace?after={after}"), &[]).json();
        events.extend(r["events"].as_array().cloned().unwrap_or_default());
        after = r["next"].as_u64().unwrap_or(after);
        (r["active"] == false && r["events"].as_array().is_some_and(Vec::is_empty)).then_some(r)
    });
    assert_eq!(ended["ended"], "duration", "{ended}");
    let show = events
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let blocked = events
        .iter()
        .find(|e| e["hook"] == "observer" && e["decided_by"] == "dns-policy")
        .unwrap_or_else(|| panic!("no DNS policy verdict in:\n{show}"));
    assert_eq!(blocked["verdict"], "redirect", "{blocked}");
    assert_eq!(blocked["dest_port"], 53, "{blocked}");
    // Which rule: its id and its line, as `palisade dns blocked-hits` names it.
    assert!(blocked["rule_id"].as_u64() >= Some(1), "{blocked}");
    let rule = blocked["rule"].as_str().unwrap_or_default();
    assert!(
        rule.starts_with("block ")
            && rule.contains("blocked.example.test")
            && rule.contains("block.txt:1"),
        "{blocked}"
    );
    // The passed query decided nothing: no rule.
    assert!(
        events.iter().any(|e| e["hook"] == "observer"
            && e["verdict"] == "pass"
            && e["dest_port"] == 53
            && e.get("decided_by").is_none()
            && e.get("rule").is_none()),
        "no undecided query in:\n{show}"
    );
    assert!(
        events.iter().any(|e| e["hook"] == "observer"
            && e["verdict"] == "pass"
            && e["src_port"] == 53
            && e["records"]
                .as_array()
                .is_some_and(|r| r.contains(&"dns".into()))),
        "no recorded answer in:\n{show}"
    );
    // Bad filters are refused before the kernel sees them.
    for body in [
        r#"{"host":"example.org"}"#,
        r#"{"proto":"icmp","port":7}"#,
        r#"{"duration_s":0}"#,
    ] {
        let a = curl(&daemon, "POST", "/v1/trace", &["--data-binary", body]);
        assert_eq!(a.status, 422, "{body}: {}", a.body);
    }
    daemon.assert_alive();
}
