//! IP policy end to end: CIDR block lists enforced by XDP (native, generic)
//! or TCX, real ping and TCP between namespaces, kernel counters and alerts,
//! runtime rules (`palisade block`) taking effect at once and surviving a
//! SIGKILLed supervisor, TTLs honoured by the kernel, reloads that keep the
//! old rules when a list is broken, and `xdp_mode` changes without stale
//! links.
//!
//! Addresses: the peer has 198.18.0.2 (never blocked), 198.18.0.130 (in the
//! listed 198.18.0.128/25) and 198.18.0.77 (blocked at run time); IPv6
//! fd00:ba1::2 (never blocked) and fd00:ba1::bad (listed as a /128).

#![expect(
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::{
    fs,
    net::TcpListener,
    process::Command,
    time::{Duration, Instant},
};

use palisade_tests::{Daemon, Lab, PEER_IF, SENSOR_IF, SENSOR_IP, base_config, run, wait_for};
use serde_json::Value;

const LISTED: &str = "198.18.0.130";
const RUNTIME: &str = "198.18.0.77";
const FREE: &str = "198.18.0.2";
const SENSOR_V6: &str = "fd00:ba1::1";
const FREE_V6: &str = "fd00:ba1::2";
const LISTED_V6: &str = "fd00:ba1::bad";

/// Extra peer addresses (IPv4 and IPv6, no DAD) on top of the lab's.
fn add_addresses(lab: &Lab) {
    for (ns, dev, addr) in [
        (&lab.peer_ns, PEER_IF, format!("{LISTED}/24")),
        (&lab.peer_ns, PEER_IF, format!("{RUNTIME}/24")),
        (&lab.peer_ns, PEER_IF, format!("{FREE_V6}/64")),
        (&lab.peer_ns, PEER_IF, format!("{LISTED_V6}/64")),
        (&lab.sensor_ns, SENSOR_IF, format!("{SENSOR_V6}/64")),
    ] {
        run(Command::new("ip").args(["-n", ns, "addr", "add", &addr, "dev", dev, "nodad"]));
    }
}

fn ip_config(lab: &Lab, mode: &str) -> String {
    let list = lab.dir.join("drop.txt");
    fs::write(
        &list,
        format!("; Spamhaus-style list\n198.18.0.128/25 ; SBL-TEST\n{LISTED_V6}  # v6 host\n"),
    )
    .expect("list");
    base_config(
        lab,
        &format!(
            "[ip]\nblocklists = [\"{}\"]\nxdp_mode = \"{mode}\"\nalerts_per_second = 100\n",
            list.display()
        ),
    )
}

/// One ping from the peer namespace, from `src` to `dst`: did a reply come back?
fn ping_from_peer(lab: &Lab, src: &str, dst: &str) -> bool {
    lab.peer("ping")
        .args(["-c", "1", "-W", "1", "-I", src, dst])
        .output()
        .expect("ping")
        .status
        .success()
}

/// One ping from the sensor namespace (egress on the sensor interface).
fn ping_from_sensor(lab: &Lab, dst: &str) -> bool {
    lab.sensor("ping")
        .args(["-c", "1", "-W", "1", dst])
        .output()
        .expect("ping")
        .status
        .success()
}

/// A TCP connection from the peer (source `src`) to a listener in the sensor namespace:
/// curl exits 52 (empty reply) or 56 (reset) when the connection was made (the listener
/// closes at once), 28 when the handshake timed out.
fn tcp_from_peer(lab: &Lab, src: &str, port: u16) -> bool {
    let out = lab
        .peer("curl")
        .args([
            "-s",
            "--connect-timeout",
            "1",
            "--max-time",
            "2",
            "--interface",
            src,
            &format!("http://{SENSOR_IP}:{port}/"),
        ])
        .output()
        .expect("curl");
    matches!(out.status.code(), Some(52 | 56))
}

/// A listener in the sensor namespace that accepts and closes every connection.
fn listener(lab: &Lab) -> u16 {
    let netns = lab.sensor_netns_fd();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: setns on a valid netns FD, on this thread only.
        assert_eq!(
            unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&netns), libc::CLONE_NEWNET,) },
            0
        );
        let l = TcpListener::bind((SENSOR_IP, 0)).expect("bind");
        tx.send(l.local_addr().expect("addr").port()).expect("send");
        for conn in l.incoming() {
            drop(conn);
        }
    });
    rx.recv().expect("port")
}

fn counter(daemon: &Daemon, name: &str) -> u64 {
    daemon
        .status_json()
        .and_then(|s| {
            s["kernel"].as_array().and_then(|k| {
                k.iter()
                    .find(|c| c["group"] == "ip_policy" && c["counter"] == name)
                    .and_then(|c| c["value"].as_u64())
            })
        })
        .unwrap_or(0)
}

fn block_list(daemon: &Daemon) -> Value {
    let out = daemon.ctl(&["block", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("json")
}

fn rule<'a>(list: &'a Value, cidr: &str) -> Option<&'a Value> {
    list["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["cidr"] == cidr))
}

/// IP policy attachments in `status`: (program, mode, adopted).
fn ip_attachments(daemon: &Daemon) -> Vec<(String, String, bool)> {
    let status = daemon.status_json().expect("status");
    status["interfaces"][0]["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .filter(|a| a["program"].as_str().is_some_and(|p| p.contains("block")))
        .map(|a| {
            (
                a["program"].as_str().unwrap_or_default().to_owned(),
                a["mode"].as_str().unwrap_or_default().to_owned(),
                a["adopted"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// XDP programs on the sensor interface as `ip link` reports them: (`xdp`|`xdpgeneric`, id).
fn xdp_on_link(lab: &Lab) -> Vec<String> {
    let out = run(Command::new("ip").args(["-n", &lab.sensor_ns, "-d", "link", "show", SENSOR_IF]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            (l.starts_with("prog/xdp") || l.contains(" prog/xdp")).then(|| l.to_owned())
        })
        .collect()
}

fn enforce(mode: &str, expected_mode: &str) {
    let lab = Lab::new(&format!("ip{mode}"));
    add_addresses(&lab);
    let port = listener(&lab);
    let daemon = Daemon::start(&lab, &ip_config(&lab, mode), &[]);
    daemon.wait_healthy();

    let atts = ip_attachments(&daemon);
    assert!(
        atts.iter()
            .any(|(p, m, _)| p.contains("block") && m == expected_mode),
        "{mode}: ingress hook {expected_mode} in status: {atts:?}"
    );
    assert!(
        atts.iter()
            .any(|(p, m, _)| p == "pal_tc_block_egress" && m == "tcx"),
        "{atts:?}"
    );

    // Unblocked traffic passes; blocked traffic loses every packet, both ways.
    assert!(ping_from_peer(&lab, FREE, SENSOR_IP), "free address pings");
    assert!(tcp_from_peer(&lab, FREE, port), "free address connects");
    let before = counter(&daemon, "dropped_v4");
    for _ in 0..3 {
        assert!(
            !ping_from_peer(&lab, LISTED, SENSOR_IP),
            "listed source must not ping"
        );
    }
    assert!(
        !tcp_from_peer(&lab, LISTED, port),
        "listed source must not connect"
    );
    assert!(
        !ping_from_sensor(&lab, LISTED),
        "egress to a listed address is dropped"
    );
    let after = counter(&daemon, "dropped_v4");
    assert!(after >= before + 5, "dropped_v4 {before} -> {after}");
    // IPv6 too.
    assert!(
        wait_for_bool(|| ping_from_peer(&lab, FREE_V6, SENSOR_V6)),
        "free v6 pings"
    );
    assert!(
        !ping_from_peer(&lab, LISTED_V6, SENSOR_V6),
        "listed v6 source"
    );
    assert!(counter(&daemon, "dropped_v6") >= 1);

    // Per-rule hits and the rule's source line.
    let list = block_list(&daemon);
    let r = rule(&list, "198.18.0.128/25").expect("listed rule");
    assert!(r["hits"].as_u64().unwrap_or(0) >= 5, "{r}");
    assert_eq!(r["comment"], "SBL-TEST");
    assert!(
        r["source"]
            .as_str()
            .unwrap_or_default()
            .ends_with("drop.txt:2"),
        "{r}"
    );
    assert_eq!(list["kernel_v4"], 1);
    assert_eq!(list["kernel_v6"], 1);

    // Rate-limited alerts with the rule; the flow worker never saw the dropped flows.
    let alert = daemon.wait_event("an IP block alert", Duration::from_secs(5), |e| {
        e["event_type"] == "alert" && e["palisade"]["ip_block"]["cidr"] == "198.18.0.128/25"
    });
    assert_eq!(alert["alert"]["action"], "blocked");
    assert_eq!(alert["alert"]["signature_id"], 9_000_010);
    assert_eq!(alert["src_ip"], LISTED);
    assert_eq!(alert["palisade"]["ip_block"]["rule_id"], r["id"]);
    assert_eq!(
        alert["palisade"]["ip_block"]["hook"],
        if expected_mode == "tcx" { "tc" } else { "xdp" }
    );
    assert!(
        !daemon
            .events()
            .iter()
            .any(|e| e["event_type"] == "flow" && e["src_ip"] == LISTED),
        "the observer must not record dropped packets"
    );
}

fn wait_for_bool(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn generic_xdp_drops_listed_cidrs() {
    enforce("generic", "xdp-generic");
}

#[test]
fn native_xdp_drops_listed_cidrs() {
    enforce("native", "xdp-native");
}

#[test]
fn tc_mode_drops_listed_cidrs_before_the_observer() {
    enforce("tc", "tcx");
    // And `auto` picks TCX on veth (the faster hook there).
    let lab = Lab::new("ipauto");
    let daemon = Daemon::start(&lab, &ip_config(&lab, "auto"), &[]);
    let atts = ip_attachments(&daemon);
    assert!(
        atts.iter()
            .any(|(p, m, _)| p == "pal_tc_block_ingress" && m == "tcx"),
        "auto on veth: {atts:?}"
    );
    assert!(xdp_on_link(&lab).is_empty(), "no XDP under auto on veth");
}

#[test]
fn runtime_rules_apply_at_once_and_survive_sigkill() {
    let lab = Lab::new("iprun");
    add_addresses(&lab);
    let config = ip_config(&lab, "generic");
    let daemon = Daemon::start(&lab, &config, &[]);
    daemon.wait_healthy();
    assert!(ping_from_peer(&lab, RUNTIME, SENSOR_IP));

    let start = Instant::now();
    let out = daemon.ctl(&["block", "add", RUNTIME, "--comment", "incident 42"]);
    let took = start.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert!(
        took < Duration::from_millis(100),
        "block add took {took:?} (kernel updated before it returns)"
    );
    assert!(!ping_from_peer(&lab, RUNTIME, SENSOR_IP), "blocked at once");
    let out = daemon.ctl(&["block", "add", "198.18.0.2/31", "--ttl", "2s"]);
    assert!(out.status.success(), "{out:?}");
    let list = block_list(&daemon);
    let r = rule(&list, "198.18.0.77/32").expect("runtime rule");
    assert_eq!(r["source"], "cli");
    assert_eq!(r["comment"], "incident 42");
    assert!(r["hits"].as_u64().unwrap_or(0) >= 1);
    let state = fs::read_to_string(lab.dir.join("state/ip-rules.json")).expect("state file");
    assert!(state.contains("198.18.0.77/32"), "{state}");

    // Remove takes effect at once too.
    let start = Instant::now();
    let out = daemon.ctl(&["block", "remove", RUNTIME]);
    assert!(out.status.success(), "{out:?}");
    assert!(start.elapsed() < Duration::from_millis(100));
    assert!(
        ping_from_peer(&lab, RUNTIME, SENSOR_IP),
        "unblocked at once"
    );
    assert!(daemon.ctl(&["block", "add", RUNTIME]).status.success());

    // SIGKILL: the kernel keeps enforcing, list and runtime rules alike.
    let pid = daemon.pid();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for(Duration::from_secs(5), "the daemon to die", || {
        (!fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z")))
            .then_some(())
    });
    assert!(
        !ping_from_peer(&lab, LISTED, SENSOR_IP),
        "list rule holds while down"
    );
    assert!(
        !ping_from_peer(&lab, RUNTIME, SENSOR_IP),
        "runtime rule holds while down"
    );
    // The 2 s TTL rule (198.18.0.2/31 covers 198.18.0.2) expires in the kernel itself.
    assert!(
        wait_for_bool(|| ping_from_peer(&lab, FREE, SENSOR_IP)),
        "expired TTL rule stops being enforced while the daemon is down"
    );
    drop(daemon);

    // Restart: adopted, nothing attached twice, rules back from the state file.
    let daemon = Daemon::start(&lab, &config, &[]);
    daemon.wait_healthy();
    let atts = ip_attachments(&daemon);
    assert_eq!(atts.len(), 2, "{atts:?}");
    assert!(atts.iter().all(|(_, _, adopted)| *adopted), "{atts:?}");
    assert_eq!(xdp_on_link(&lab).len(), 1, "{:?}", xdp_on_link(&lab));
    let ingress = lab.tcx_programs(true);
    assert_eq!(
        ingress.len(),
        1,
        "observer only on TCX ingress: {ingress:?}"
    );
    let egress = lab.tcx_programs(false);
    assert_eq!(egress.len(), 2, "block + observer on egress: {egress:?}");
    assert!(egress[0].1.contains("block"), "block first: {egress:?}");
    let list = block_list(&daemon);
    assert!(rule(&list, "198.18.0.77/32").is_some(), "{list}");
    assert!(
        rule(&list, "198.18.0.2/31").is_none(),
        "expired rule gone: {list}"
    );
    assert!(!ping_from_peer(&lab, RUNTIME, SENSOR_IP));

    // Non-root callers may list but not change.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(palisade_tests::bin("palisade"))
        .args(["block", "add", "192.0.2.1", "--control-socket"])
        .arg(&daemon.control)
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(4), "{out:?}");
}

#[test]
fn reload_keeps_rules_on_bad_lists_and_switches_modes_cleanly() {
    let lab = Lab::new("ipreload");
    add_addresses(&lab);
    let daemon = Daemon::start(&lab, &ip_config(&lab, "generic"), &[]);
    assert!(!ping_from_peer(&lab, LISTED, SENSOR_IP));
    assert_eq!(xdp_on_link(&lab).len(), 1);

    // A broken list: the reload is refused with file and line, the old rules stay.
    let list = lab.dir.join("drop.txt");
    fs::write(&list, "198.18.0.128/25\nnot-a-cidr\n").expect("list");
    let out = daemon.ctl(&["reload"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("drop.txt:2"), "{err}");
    assert!(!ping_from_peer(&lab, LISTED, SENSOR_IP), "old rules stay");

    // check-config reports the same.
    let out = Command::new(palisade_tests::bin("palisade"))
        .arg("check-config")
        .arg(&daemon.config)
        .output()
        .expect("check-config");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("drop.txt:2"),
        "{out:?}"
    );

    // A valid reload with another mode: TCX replaces XDP, no stale link.
    fs::write(
        &daemon.config,
        ip_config(&lab, "tc").replace("198.18.0.128/25 ; SBL-TEST", "198.18.0.128/26"),
    )
    .expect("config");
    let out = daemon.ctl(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    assert!(xdp_on_link(&lab).is_empty(), "{:?}", xdp_on_link(&lab));
    let ingress = lab.tcx_programs(true);
    assert_eq!(ingress.len(), 2, "{ingress:?}");
    assert!(ingress[0].1.contains("block"), "block first: {ingress:?}");
    assert!(
        !ping_from_peer(&lab, LISTED, SENSOR_IP),
        "still blocked (in /26)"
    );
    let atts = ip_attachments(&daemon);
    assert!(atts.iter().any(|(_, m, _)| m == "tcx"), "{atts:?}");
    assert!(
        !atts.iter().any(|(_, m, _)| m.starts_with("xdp")),
        "{atts:?}"
    );
}
